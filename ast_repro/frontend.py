"""The front end: waveform -> model input (paper sections 2.1 and 3.1).

The original computes a clip's model input in `AudiosetDataset.__getitem__`
(`src/dataloader.py`), in this order: mixup on the waveform -> Kaldi fbank (`_wav2fbank`) ->
pad/crop to `target_length` -> one frequency mask and one time mask set to 0.0 -> normalize
to mean 0, std 0.5 -> uniform noise and a circular time shift (Speech Commands only).

`FrontEndConfig` is that recipe. Two paths follow it with the same deterministic steps of
`ast_repro.augment` and `ast_repro.features`:
- `process_sample`: one clip in a DataLoader worker (the original's place);
- `BatchFrontEnd`: a zero-padded batch of waveforms on any device, no loop over the batch.
All randomness is drawn up front by `FrontEndConfig.draw` into `AugmentationDraws`, so both
paths give the same features for the same draws (`per_clip_batch` runs the first over a
batch of the second, `pad_batch` makes such a batch). Training, evaluation, norm statistics and
prediction all go through these paths; `ast_repro.data.make_dataset` builds their datasets
from a `FrontEndConfig`, and `model_inputs` turns a batch of either path into model inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch

from ast_repro.augment import (
    ROLL_HIGH,
    ROLL_LOW,
    AugmentationDraws,
    apply_masks,
    apply_noise_and_roll,
    mask_interval,
    mix_labels,
    mixup_waveforms,
    sample_lambda,
)
from ast_repro.features import NormStats, frame_geometry, kaldi_fbank, normalize, pad_or_crop

if TYPE_CHECKING:
    from ast_repro.config import TrainConfig


@dataclass(frozen=True, kw_only=True)
class FrontEndConfig:
    """The front-end recipe shared by the per-clip and the batched path.

    Each augmentation is off at 0 / False (ablations); `draw` still draws the same numbers
    for the others, so switching one off leaves the rest of a seeded run unchanged.
    """

    sample_rate: int = 16_000
    target_length: int
    num_mel_bins: int = 128
    # None leaves features un-normalized: the original's `skip_norm`, which
    # `src/get_norm_stats.py` sets to estimate the statistics.
    norm: NormStats | None
    mixup: float = 0.0  # probability that a training sample is mixed
    freqm: int = 0  # frequency-mask parameter (bins)
    timem: int = 0  # time-mask parameter (frames)
    noise: bool = False  # Speech Commands noise and roll
    # True: waveforms go to `BatchFrontEnd` on the training device (`frontend="device"`);
    # False: each clip goes through `process_sample` in a DataLoader worker.
    batched: bool = False

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
                batch); the dataset size for the per-clip path (a uniform random clip).
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


def frontend_config(config: TrainConfig) -> FrontEndConfig:
    """The front end of a training run (features, augmentation and where they run)."""
    return FrontEndConfig(
        target_length=config.target_length,
        num_mel_bins=config.num_mel_bins,
        norm=config.norm,
        mixup=config.mixup,
        freqm=config.freqm,
        timem=config.timem,
        noise=config.noise,
        batched=config.frontend == "device",
    )


def _finish(
    fbank: torch.Tensor, config: FrontEndConfig, draws: AugmentationDraws | None
) -> torch.Tensor:
    """Masks -> normalize -> noise and roll on (B, target_length, F) features."""
    if draws is not None:
        fbank = apply_masks(fbank, draws.freq, draws.time)
    if config.norm is not None:
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
    """One clip's model input, as the original `AudiosetDataset.__getitem__`.

    Args:
        config: the recipe.
        waveform: (N,) float32 at `config.sample_rate`.
        labels: (C,) 0/1 targets.
        draws: draws of this clip (B = 1); None for evaluation (no augmentation).
        partner_waveform, partner_labels: (N2,), (C,) the partner; needed when draws.mix.

    Returns:
        fbank (target_length, F), normalized unless `config.norm` is None; labels (C,),
        soft when mixed.

    Raises:
        ValueError: the draws ask for mixup but no partner is given.
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

        Raises:
            ValueError: a length is shorter than one frame or longer than the batch.
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


def pad_batch(waveforms: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips as the batched path takes them: zero-padded to the longest, and their lengths.

    Args:
        waveforms: B clips, each (N_b,) float32.

    Returns:
        (B, max N_b) waveforms and (B,) int64 lengths.
    """
    lengths = torch.tensor([int(w.shape[0]) for w in waveforms])
    width = int(lengths.max())
    padded = torch.stack([torch.nn.functional.pad(w, (0, width - w.shape[0])) for w in waveforms])
    return padded, lengths


def per_clip_batch(
    config: FrontEndConfig,
    waveforms: Sequence[torch.Tensor],
    labels: torch.Tensor,
    draws: AugmentationDraws,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-clip path over a batch, with the draws of the batched path.

    Clip b goes through `process_sample` with `draws.select(b)`, mixed (where drawn) with
    clip `draws.partner[b]` of the same batch, so the result is what `BatchFrontEnd` gives
    for the same clips and draws up to float rounding (tests/test_frontend.py).

    Args:
        config: the recipe.
        waveforms: B clips, each (N_b,) float32.
        labels: (B, C) 0/1 targets.
        draws: from `BatchFrontEnd.draw` (partners index the batch).

    Returns:
        fbank (B, target_length, F) and labels (B, C), soft where mixed.
    """
    items = []
    for b, waveform in enumerate(waveforms):
        partner = int(draws.partner[b])
        items.append(process_sample(config, waveform, labels[b], draws=draws.select(b),
                                    partner_waveform=waveforms[partner],
                                    partner_labels=labels[partner]))  # fmt: skip
    return torch.stack([f for f, _ in items]), torch.stack([y for _, y in items])


def batch_front_end(config: FrontEndConfig) -> BatchFrontEnd | None:
    """The batched front end of a `batched` config; None when clips are processed in workers."""
    return BatchFrontEnd(config) if config.batched else None


def model_inputs(
    batch: Any,
    device: torch.device,
    frontend: BatchFrontEnd | None,
    draws: AugmentationDraws | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, F) features and (B, C) labels on `device` from a DataLoader batch.

    Per-clip batches are (fbank, labels); batched-path batches are (waveforms, lengths,
    labels) and go through `frontend` on the device, in float32 outside autocast, with
    `draws` for training or None for evaluation.
    """
    if frontend is None:
        fbank, labels = batch
        return fbank.to(device, non_blocking=True), labels.to(device, non_blocking=True)
    waveforms, lengths, labels = (t.to(device, non_blocking=True) for t in batch)
    return frontend(waveforms, lengths, labels, draws)
