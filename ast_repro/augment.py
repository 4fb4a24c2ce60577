"""Training-time augmentation: waveform mixup, SpecAugment masks, noise-and-roll.

The paper (section 3.1) trains with mixup (rate 0.5, Beta(10, 10)), frequency and time masking
(SpecAugment) and, for Speech Commands (section 3.2), random noise. The original applies them
per clip inside `AudiosetDataset.__getitem__` in this order (original_ast.md section 1.10):
mixup on the waveform (1.4) -> Kaldi fbank -> pad/crop (1.5) -> one frequency mask and one time
mask set to 0.0 (1.6) -> normalize (1.7) -> uniform noise and a circular time shift (1.8).

Two paths follow that recipe with the same deterministic `apply_*` functions:
- `process_sample`: one clip in a DataLoader worker (the original's place);
- `BatchFrontEnd`: a zero-padded batch of waveforms on any device, no loop over the batch.
All randomness is drawn up front by `FrontEndConfig.draw` into `AugmentationDraws` from an
explicit `torch.Generator`, so both paths give the same features for the same draws and a run
is reproducible from (seed, epoch, index) alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from ast_repro.features import NormStats, frame_geometry, kaldi_fbank, normalize, pad_or_crop

# Mixup weight lambda ~ Beta(10, 10) (original dataloader: `np.random.beta(10, 10)`).
MIXUP_BETA_SHAPE = 10
# Noise amplitude: `fbank + torch.rand(T, F) * np.random.rand() / 10` (original, section 1.8).
NOISE_SCALE_DIVISOR = 10.0
# Circular time shift `np.random.randint(-10, 10)`: k in {-10, ..., 9} frames (section 1.8).
ROLL_LOW, ROLL_HIGH = -10, 10
# Masked cells are set to this value before normalization (torchaudio's default mask_value).
MASK_VALUE = 0.0


def sample_lambda(generator: torch.Generator, size: int = 1) -> torch.Tensor:
    """Mixup weights lambda ~ Beta(10, 10).

    Returns:
        (size,) float32 on the generator's device.
    """
    # NOTE: the original draws lambda with np.random.beta. Here Beta(a, a) = G1 / (G1 + G2) with
    # G ~ Gamma(a, 1) = -sum of a log-uniforms (a = 10 is an integer): the same distribution,
    # drawn from an explicit torch generator on any device.
    u = torch.rand(2, size, MIXUP_BETA_SHAPE, generator=generator, device=generator.device)
    gamma = -torch.log1p(-u).sum(dim=-1)  # (2, size); log1p(-u) = log(1 - u), finite for u < 1
    return gamma[0] / (gamma[0] + gamma[1])


def mixup_waveforms(w1: torch.Tensor, w2: torch.Tensor, lam: torch.Tensor | float) -> torch.Tensor:
    """Mix two clips as the original: center both, fit w2 to w1's length, mix, center again.

    Args:
        w1: (N1,) first waveform; its length is kept.
        w2: (N2,) partner, zero-padded or truncated at the end to N1.
        lam: weight of w1.

    Returns:
        (N1,) lam * w1 + (1 - lam) * w2, mean removed.
    """
    w1 = w1 - w1.mean()
    w2 = w2 - w2.mean()
    if w2.shape[0] < w1.shape[0]:
        w2 = torch.nn.functional.pad(w2, (0, w1.shape[0] - w2.shape[0]))
    else:
        w2 = w2[: w1.shape[0]]
    mixed = lam * w1 + (1 - lam) * w2
    return mixed - mixed.mean()


def mix_labels(y1: torch.Tensor, y2: torch.Tensor, lam: torch.Tensor | float) -> torch.Tensor:
    """Soft multi-hot labels lam * y1 + (1 - lam) * y2; a class in both stays 1.0 exactly."""
    return lam * y1 + (1 - lam) * y2


def mask_interval(
    u_width: torch.Tensor, u_start: torch.Tensor, *, size: int, mask_param: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """[start, end) of a SpecAugment mask from two uniforms, as torchaudio's `mask_along_axis`.

    width = floor(u_width * param) in [0, param - 1]; start = floor(u_start * (size - u_width *
    param)) (original_ast.md section 1.6), computed in float32 like torchaudio.

    Args:
        u_width, u_start: (B,) float32 uniforms in [0, 1).
        size: length of the masked axis (F bins or T frames).
        mask_param: freqm or timem; 0 gives empty masks.

    Returns:
        (start, end), each (B,) int64.
    """
    value = u_width.float() * mask_param
    min_value = u_start.float() * (size - value)
    start = min_value.long()
    return start, start + value.long()


def apply_masks(
    fbank: torch.Tensor,
    freq: tuple[torch.Tensor, torch.Tensor],
    time: tuple[torch.Tensor, torch.Tensor],
) -> torch.Tensor:
    """Set one frequency band and one time span per sample to `MASK_VALUE`.

    Args:
        fbank: (B, T, F) un-normalized log-mel features.
        freq, time: (start, end) pairs of (B,) int64 from `mask_interval`.

    Returns:
        (B, T, F) masked copy.
    """
    steps = torch.arange(fbank.shape[1], device=fbank.device)
    bins = torch.arange(fbank.shape[2], device=fbank.device)
    in_time = (steps[None] >= time[0][:, None]) & (steps[None] < time[1][:, None])  # (B, T)
    in_freq = (bins[None] >= freq[0][:, None]) & (bins[None] < freq[1][:, None])  # (B, F)
    return fbank.masked_fill(in_time[:, :, None] | in_freq[:, None, :], MASK_VALUE)


def apply_noise_and_roll(
    fbank: torch.Tensor, noise: torch.Tensor, amplitude: torch.Tensor, shift: torch.Tensor
) -> torch.Tensor:
    """Add uniform noise scaled by amplitude / 10, then roll each sample along time.

    Args:
        fbank: (B, T, F) normalized features.
        noise: (B, T, F) uniforms in [0, 1).
        amplitude: (B,) uniforms in [0, 1), one per sample.
        shift: (B,) int64 frames; sample b equals `torch.roll(x_b, shift[b], dims=0)`.

    Returns:
        (B, T, F).
    """
    fbank = fbank + noise * amplitude[:, None, None] / NOISE_SCALE_DIVISOR
    frames = fbank.shape[1]
    steps = torch.arange(frames, device=fbank.device)
    source = torch.remainder(steps[None] - shift[:, None], frames)  # (B, T)
    return fbank.gather(1, source[:, :, None].expand_as(fbank))


def spec_augment(
    fbank: torch.Tensor, *, freqm: int, timem: int, generator: torch.Generator
) -> torch.Tensor:
    """One frequency mask (up to freqm - 1 bins) then one time mask (up to timem - 1 frames).

    Draws four uniforms in torchaudio's order (frequency width, start, time width, start).

    Args:
        fbank: (T, F) un-normalized log-mel features.

    Returns:
        (T, F) masked copy.
    """
    frames, bins = fbank.shape
    u = [torch.rand(1, generator=generator, device=generator.device) for _ in range(4)]
    freq = mask_interval(u[0], u[1], size=bins, mask_param=freqm)
    time = mask_interval(u[2], u[3], size=frames, mask_param=timem)
    return apply_masks(fbank[None], freq, time)[0]


def noise_and_roll(fbank: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Speech Commands noise: + U(0,1)^(T x F) * u / 10, then roll by k in {-10..9} frames.

    Args:
        fbank: (T, F) normalized features.

    Returns:
        (T, F).
    """
    device = generator.device
    noise = torch.rand(1, *fbank.shape, generator=generator, device=device)
    amplitude = torch.rand(1, generator=generator, device=device)
    shift = torch.randint(ROLL_LOW, ROLL_HIGH, (1,), generator=generator, device=device)
    return apply_noise_and_roll(fbank[None], noise, amplitude, shift)[0]


@dataclass(frozen=True)
class AugmentationDraws:
    """Every random number one batch (or one clip, B = 1) needs; all tensors on one device."""

    mix: torch.Tensor  # (B,) bool: mix this sample with its partner
    partner: torch.Tensor  # (B,) int64: index into the batch (batch path) or the dataset
    lam: torch.Tensor  # (B,) float32 mixup weight of the sample itself
    freq: tuple[torch.Tensor, torch.Tensor]  # (B,) start, (B,) end of the frequency mask
    time: tuple[torch.Tensor, torch.Tensor]  # (B,) start, (B,) end of the time mask
    noise: torch.Tensor | None = None  # (B, T, F) uniforms, None when noise is off
    amplitude: torch.Tensor | None = None  # (B,) noise amplitudes
    shift: torch.Tensor | None = None  # (B,) roll in frames

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> AugmentationDraws:
        def optional(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else fn(x)

        return AugmentationDraws(
            mix=fn(self.mix),
            partner=fn(self.partner),
            lam=fn(self.lam),
            freq=(fn(self.freq[0]), fn(self.freq[1])),
            time=(fn(self.time[0]), fn(self.time[1])),
            noise=optional(self.noise),
            amplitude=optional(self.amplitude),
            shift=optional(self.shift),
        )

    def to(self, device: str | torch.device) -> AugmentationDraws:
        """The same draws on another device."""
        return self._map(lambda x: x.to(device))

    def select(self, index: int) -> AugmentationDraws:
        """The draws of sample `index`, as a batch of one."""
        return self._map(lambda x: x[index : index + 1])


@dataclass(frozen=True, kw_only=True)
class FrontEndConfig:
    """The front-end recipe shared by the per-sample and the batched path.

    Each augmentation is off at 0 / False (ablations); `draw` still draws the same numbers
    for the others, so switching one off leaves the rest of a seeded run unchanged.
    """

    sample_rate: int = 16_000
    target_length: int
    num_mel_bins: int = 128
    norm: NormStats
    mixup: float = 0.0  # probability that a training sample is mixed
    freqm: int = 0  # frequency-mask parameter (bins)
    timem: int = 0  # time-mask parameter (frames)
    noise: bool = False  # Speech Commands noise and roll

    def __post_init__(self) -> None:
        if not 0.0 <= self.mixup <= 1.0:
            raise ValueError(f"mixup is a probability in [0, 1], got {self.mixup}")
        if self.target_length < 1 or self.num_mel_bins < 1:
            raise ValueError("target_length and num_mel_bins must be positive")
        if not 0 <= self.freqm <= self.num_mel_bins:
            raise ValueError(f"freqm must be in [0, num_mel_bins={self.num_mel_bins}]")
        if not 0 <= self.timem <= self.target_length:
            raise ValueError(f"timem must be in [0, target_length={self.target_length}]")

    def draw(
        self, generator: torch.Generator, *, batch_size: int, num_partners: int | None = None
    ) -> AugmentationDraws:
        """Draw one batch's augmentation on the generator's device.

        Args:
            generator: the only source of randomness.
            batch_size: B.
            num_partners: None for the batch path (partners are a random permutation of the
                batch); the dataset size for the per-sample path (a uniform random clip).
        """
        device = generator.device

        def uniform() -> torch.Tensor:
            return torch.rand(batch_size, generator=generator, device=device)

        mix = uniform() < self.mixup
        if num_partners is None:
            # NOTE: the original picks the partner uniformly from the whole dataset; the batch
            # path pairs within the batch (no extra reads), and under shuffling a batch
            # neighbour is still a uniform random clip.
            partner = torch.randperm(batch_size, generator=generator, device=device)
        else:
            partner = torch.randint(num_partners, (batch_size,), generator=generator, device=device)
        lam = sample_lambda(generator, batch_size)
        freq_u, time_u = (uniform(), uniform()), (uniform(), uniform())
        freq = mask_interval(*freq_u, size=self.num_mel_bins, mask_param=self.freqm)
        time = mask_interval(*time_u, size=self.target_length, mask_param=self.timem)
        draws = AugmentationDraws(mix=mix, partner=partner, lam=lam, freq=freq, time=time)
        if not self.noise:
            return draws
        shape = (batch_size, self.target_length, self.num_mel_bins)
        return replace(
            draws,
            noise=torch.rand(shape, generator=generator, device=device),
            amplitude=uniform(),
            shift=torch.randint(
                ROLL_LOW, ROLL_HIGH, (batch_size,), generator=generator, device=device
            ),
        )


def _finish(
    fbank: torch.Tensor, config: FrontEndConfig, draws: AugmentationDraws | None
) -> torch.Tensor:
    """Masks -> normalize -> noise and roll on (B, target_length, F) features."""
    if draws is not None:
        fbank = apply_masks(fbank, draws.freq, draws.time)
    fbank = normalize(fbank, config.norm)
    if draws is not None and draws.noise is not None:
        fbank = apply_noise_and_roll(fbank, draws.noise, draws.amplitude, draws.shift)
    return fbank


def process_sample(
    config: FrontEndConfig,
    waveform: torch.Tensor,
    labels: torch.Tensor,
    *,
    draws: AugmentationDraws | None = None,
    partner_waveform: torch.Tensor | None = None,
    partner_labels: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The original `__getitem__` front end for one clip.

    Args:
        config: the recipe.
        waveform: (N,) float32 at `config.sample_rate`.
        labels: (C,) 0/1 targets.
        draws: draws of this clip (B = 1); None for evaluation (no augmentation).
        partner_waveform, partner_labels: (N2,), (C,) the partner; needed when draws.mix.

    Returns:
        fbank (target_length, F) normalized, labels (C,) possibly soft.
    """
    if draws is not None and bool(draws.mix[0]):
        if partner_waveform is None or partner_labels is None:
            raise ValueError("draws ask for mixup but no partner waveform/labels were given")
        waveform = mixup_waveforms(waveform, partner_waveform, draws.lam[0])
        labels = mix_labels(labels, partner_labels, draws.lam[0])
    else:
        waveform = waveform - waveform.mean()
    fbank = pad_or_crop(
        kaldi_fbank(waveform, config.sample_rate, config.num_mel_bins), config.target_length
    )
    return _finish(fbank[None], config, draws)[0], labels


class BatchFrontEnd:
    """The same front end for a zero-padded batch of waveforms, on the batch's device."""

    def __init__(self, config: FrontEndConfig) -> None:
        self.config = config

    def draw(self, generator: torch.Generator, batch_size: int) -> AugmentationDraws:
        """Training draws for one batch (partners within the batch)."""
        return self.config.draw(generator, batch_size=batch_size)

    def __call__(
        self,
        waveforms: torch.Tensor,
        lengths: torch.Tensor,
        labels: torch.Tensor,
        draws: AugmentationDraws | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and labels for a batch.

        Args:
            waveforms: (B, N) float32, clip b valid in [0, lengths[b]) and zero after.
            lengths: (B,) int64 samples per clip.
            labels: (B, C) 0/1 targets.
            draws: from `draw` for training; None for evaluation. Every tensor, draws
                included, must be on one device; compute in float32 (outside autocast).

        Returns:
            fbank (B, target_length, F) normalized, labels (B, C) possibly soft.
        """
        config = self.config
        window, shift, _ = frame_geometry(config.sample_rate)
        lengths = lengths.to(waveforms.device)
        if int(lengths.min()) < window or int(lengths.max()) > waveforms.shape[1]:
            raise ValueError(
                f"lengths must lie in [{window}, {waveforms.shape[1]}] samples (one 25 ms frame "
                f"to the padded width), got {lengths.min().item()}..{lengths.max().item()}"
            )
        steps = torch.arange(waveforms.shape[1], device=waveforms.device)
        valid = (steps[None] < lengths[:, None]).to(waveforms.dtype)  # (B, N)
        count = lengths.to(waveforms.dtype)[:, None]

        def centered(x: torch.Tensor) -> torch.Tensor:
            # each clip's mean over its own samples only; the padded tail stays zero
            return (x - (x * valid).sum(dim=1, keepdim=True) / count) * valid

        waveforms = centered(waveforms)
        if draws is not None:
            lam = draws.lam[:, None]
            partner = waveforms[draws.partner] * valid  # zero-pad or truncate to own length
            mixed = centered(lam * waveforms + (1 - lam) * partner)
            waveforms = torch.where(draws.mix[:, None], mixed, waveforms)
            soft = mix_labels(labels, labels[draws.partner], lam)
            labels = torch.where(draws.mix[:, None], soft, labels)
        fbank = pad_or_crop(
            kaldi_fbank(waveforms, config.sample_rate, config.num_mel_bins), config.target_length
        )  # (B, target_length, F)
        # The original pads features, not waveforms: frames past a clip's own frame count
        # become 0.0, exactly what `pad_or_crop` appends to a short clip.
        own_frames = 1 + torch.div(lengths - window, shift, rounding_mode="floor")  # (B,)
        frame_index = torch.arange(fbank.shape[1], device=fbank.device)
        fbank = fbank.masked_fill(frame_index[None, :, None] >= own_frames[:, None, None], 0.0)
        return _finish(fbank, config, draws), labels
