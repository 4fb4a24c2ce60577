"""Training-time augmentation: waveform mixup, SpecAugment masks, noise-and-roll.

The paper (section 3.1) trains with mixup (rate 0.5, Beta(10, 10)), frequency and time masking
(SpecAugment) and, for Speech Commands (section 3.2), random noise; the original applies them
per clip in `AudiosetDataset.__getitem__` (`src/dataloader.py`). This module holds each
augmentation as a deterministic function of explicit random numbers (`mixup_waveforms`,
`apply_masks`, `apply_noise_and_roll`), one-clip versions that draw their own numbers
(`spec_augment`, `noise_and_roll`), the seeded generators the numbers come from
(`derive_seed`, `make_generator`, `sample_lambda`) and `AugmentationDraws`, every number one
batch needs. `ast_repro.frontend` applies them in the original's order, per clip or for a
whole batch on the device, so a run is reproducible from (seed, epoch, index) alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

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
    param)) (original `src/dataloader.py`), computed in float32 like torchaudio.

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
