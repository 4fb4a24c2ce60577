"""A run's inputs from its config: the dataset files and the initialized model.

The original builds `ASTModel(label_dim, fstride, tstride, input_fdim=128, input_tdim,
imagenet_pretrain, audioset_pretrain, model_size='base384')` in `src/run.py` and reads the
datafiles the recipe script names (original `src/run.py`, `egs/*/run*.sh`,
`egs/esc50/prep_esc50.py`, `egs/speechcommands/prep_sc.py`, `egs/audioset/gen_weight_file.py`,
`src/models/ast_models.py`). Here the model
comes from `ast_repro.model` and its initialization from `ast_repro.weights`:
- `imagenet_pretrain` (AST-S): DeiT weights, another `imagenet_source` of paper Table 3
  (`ast_repro.pretrained.IMAGENET_SOURCES`), or for the tiny `test` size the offline digits
  proxy of `ast_repro.proxy_pretrain`, which is created on first use;
- `audioset_pretrain` (AST-P, ESC-50): the original AudioSet checkpoint, or a checkpoint of
  one of this package's AudioSet runs (its patch grid is read from the file).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from ast_repro.checkpoint import StateDict, load_imagenet_state_dict, read_audioset_weights
from ast_repro.config import ConfigError, TrainConfig
from ast_repro.data import AudioDataset, make_dataset
from ast_repro.datafiles import DatafileError, LabelMap, read_label_csv
from ast_repro.frontend import BatchFrontEnd, batch_front_end, frontend_config
from ast_repro.layout import default_root, prepared_paths
from ast_repro.model import AST, create_model
from ast_repro.pretrained import (
    PROXY_FILE,
    WeightsError,
    imagenet_source_path,
    original_checkpoint_path,
    pretrained_dir,
)
from ast_repro.proxy_pretrain import PROXY_SIZE
from ast_repro.runtime import Runtime, broadcast_from_main
from ast_repro.sampling import (
    DistributedWeightedSampler,
    balanced_weights,
    read_weight_file,
    weight_file_path,
)
from ast_repro.seeding import derive_seed
from ast_repro.waveform_cache import build_cache
from ast_repro.weights import audioset_init, imagenet_init

# torch.compile's backend for `compile=True` (inductor: generated Triton / C++ kernels).
COMPILE_BACKEND = "inductor"
# The AudioSet model the original ESC-50 recipe starts from (original `src/models/ast_models.py`).
AUDIOSET_CHECKPOINT = "audioset_10_10_0.4593.pth"


def data_paths(config: TrainConfig) -> dict[str, Path]:
    """The datafiles, label csv and sampler weights of a run, checked to exist.

    Empty config paths come from the prepared layout of `config.dataset` under
    `config.data_root`; by default `$AST_REPRO_DATA/<dataset>` for the paper profile and the
    twin's `$AST_REPRO_DATA/<dataset>-twin` for the smoke profile (`ast_repro.results`).

    Returns:
        Keys "train", "valid", "eval", "labels", "train_weights" (may not exist).

    Raises:
        DatafileError: a file is missing; the message says how to prepare it.
    """
    smoke = config.profile == "smoke"
    root = (
        Path(config.data_root)
        if config.data_root
        else default_root(config.dataset, synthetic=smoke)
    )
    folds = config.fold_list()
    layout = prepared_paths(config.dataset, root, fold=folds[0] if folds else 1)
    if config.train_split not in layout and not config.train_data:
        raise DatafileError(
            f"{root}: no {config.train_split!r} datafile is prepared for {config.dataset} "
            "(the full AudioSet training set needs its json, see `ast-repro data audioset`)"
        )
    paths = {
        "train": Path(config.train_data or layout[config.train_split]),
        "valid": Path(config.valid_data or layout["valid"]),
        "eval": Path(config.eval_data or layout["eval"]),
        "labels": Path(config.label_csv or layout["labels"]),
    }
    for key, path in paths.items():
        if not path.is_file():
            command = f"ast-repro data {config.dataset}" + (" --synthetic" if smoke else "")
            raise DatafileError(
                f"{path}: the {key} file of dataset {config.dataset!r} is missing. Prepare the "
                f"data with `{command} --root {root}`, or set data_root / train_data / "
                "valid_data / eval_data / label_csv"
            )
    paths["train_weights"] = Path(config.train_weights or weight_file_path(paths["train"]))
    return paths


@dataclass(frozen=True)
class RunData:
    """The datasets, sampler and front end of a run."""

    paths: dict[str, Path]
    labels: LabelMap
    train_set: Any  # AudioDataset (worker front end) or WaveformDataset (device front end)
    sampler: Sampler[int]  # shuffling or balanced, split over the DDP ranks
    valid_set: Dataset
    eval_set: Dataset | None  # the test set scored at the end when select_best
    frontend: BatchFrontEnd | None  # the batched front end of frontend="device"


def build_data(config: TrainConfig, runtime: Runtime) -> RunData:
    """Datasets and sampler of a run; the training set is augmented as the recipe says."""
    paths = data_paths(config)
    labels = read_label_csv(paths["labels"])

    def cache(datafile: Path) -> str | None:
        return _waveform_cache(datafile, runtime) if config.waveform_cache else None

    frontend = frontend_config(config)
    train_set = make_dataset(
        frontend,
        paths["train"],
        labels,
        training=True,
        seed=config.seed,
        waveform_cache=cache(paths["train"]),
    )
    valid_set = make_dataset(frontend, paths["valid"], labels, waveform_cache=cache(paths["valid"]))
    eval_set = None
    if config.select_best and paths["eval"] != paths["valid"]:
        eval_set = make_dataset(
            frontend, paths["eval"], labels, waveform_cache=cache(paths["eval"])
        )
    world, rank = runtime.world_size, runtime.rank
    sampler: Sampler[int]
    if config.balanced_sampler:
        if paths["train_weights"].is_file():
            weights = read_weight_file(paths["train_weights"], num_clips=len(train_set))
        else:
            weights = balanced_weights(train_set.clips, labels)
        # the original draws len(weights) clips with replacement per epoch (section 2.5)
        sampler = DistributedWeightedSampler(
            weights, num_samples=len(weights), num_replicas=world, rank=rank, seed=config.seed
        )
    else:
        # NOTE: the original shuffles with the global RNG (DataLoader shuffle=True); here the
        # order is a permutation seeded by (seed + epoch), the same for any number of ranks.
        sampler = DistributedSampler(
            train_set, num_replicas=world, rank=rank, shuffle=True, seed=config.seed
        )
    return RunData(
        paths, labels, train_set, sampler, valid_set, eval_set, batch_front_end(frontend)
    )


def train_loader(data: RunData, config: TrainConfig, runtime: Runtime, epoch: int) -> DataLoader:
    """The DataLoader of one training epoch (this rank's share of the global batch).

    Sets the epoch of the sampler and of the per-clip augmentation draws, so an epoch
    draws the same clips and augmentation whether it runs fresh or after a resume.
    """
    data.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
    if isinstance(data.train_set, AudioDataset):
        data.train_set.set_epoch(epoch)
    return DataLoader(
        data.train_set,
        batch_size=config.batch_size // runtime.world_size,
        sampler=data.sampler,
        num_workers=config.num_workers,
        pin_memory=runtime.device.type == "cuda",
        generator=torch.Generator().manual_seed(derive_seed(config.seed, epoch, runtime.rank)),
    )


def _waveform_cache(datafile: Path, runtime: Runtime) -> str:
    """Decode a datafile's clips once into `<datafile folder>/cache/` (rank 0 builds it)."""
    cache_dir = datafile.parent / "cache"
    if runtime.is_main:
        build_cache(datafile, cache_dir)
    runtime.barrier()
    return str(build_cache(datafile, cache_dir))


def build_model(config: TrainConfig, num_labels: int, runtime: Runtime) -> AST:
    """The run's AST, freshly initialized from `config.seed` and then from its weights.

    Raises:
        ModelFileMissing: pretrained weights are absent; the message says what to fetch.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = create_model(
            config.model_size,
            num_mel_bins=config.num_mel_bins,
            max_length=config.target_length,
            frequency_patch_size=config.frequency_patch_size,
            time_patch_size=config.time_patch_size,
            frequency_stride=config.frequency_stride,
            time_stride=config.time_stride,
            num_labels=num_labels,
            gradient_checkpointing=config.gradient_checkpointing,
        )
        if config.audioset_pretrain:
            _audioset_init(model, config)
        elif config.imagenet_pretrain:
            state_dict = imagenet_state_dict(config, runtime)
            try:
                imagenet_init(
                    model,
                    state_dict,
                    pos_mode=config.pos_embed_mode,
                    channel_mode=config.channel_merge,
                )
            except WeightsError as exc:
                source = config.pretrained_path or f"the ImageNet weights of {config.model_size}"
                raise WeightsError(
                    f"{source}: {exc} (not ImageNet weights of model_size={config.model_size}?)"
                ) from None
    return model


def compile_model(model: torch.nn.Module, config: TrainConfig) -> torch.nn.Module:
    """`model` with its forward compiled in place when `config.compile` (else untouched).

    `nn.Module.compile` keeps the module and its state-dict keys, so checkpoints, weight
    averaging and evaluation see the same model; the first call of each input shape (a
    training batch, an evaluation batch, a short last batch) compiles with `COMPILE_BACKEND`.
    """
    if config.compile:
        model.compile(backend=COMPILE_BACKEND)
    return model


def imagenet_state_dict(config: TrainConfig, runtime: Runtime) -> StateDict:
    """The ImageNet weights a run starts from, in timm's format (before any adaptation).

    `pretrained_path` if set, else the Table 3 `imagenet_source`, else the model size's own
    DeiT, or for the `test` size the digits proxy (pre-trained here on first use).

    Raises:
        ModelFileMissing: the weights are absent; the message says what to fetch.
    """
    path = config.pretrained_path or None
    if path is None and config.imagenet_source:
        path = imagenet_source_path(config.imagenet_source)  # raises with the URL
    elif path is None and config.model_size == PROXY_SIZE:
        ensure_proxy(runtime)
    return load_imagenet_state_dict(config.model_size, path)


def ensure_proxy(runtime: Runtime) -> Path:
    """Create the digits proxy for the `test` size if it is missing (rank 0, others wait)."""
    path = pretrained_dir() / PROXY_FILE
    if broadcast_from_main(not path.is_file(), runtime):
        if runtime.is_main:
            from ast_repro.proxy_pretrain import pretrain_proxy

            print(f"pre-training the digits proxy for ImageNet weights -> {path}")
            result = pretrain_proxy(path)
            print(f"proxy digits accuracy {result.test_accuracy:.3f}")
        runtime.barrier()
    return path


def _audioset_init(model: AST, config: TrainConfig) -> None:
    if config.pretrained_path:
        source = Path(config.pretrained_path)
    else:
        source = original_checkpoint_path(AUDIOSET_CHECKPOINT)  # raises with the URL if absent
    weights = read_audioset_weights(source)
    if weights.run_config is not None and weights.run_config.get("dataset") != "audioset":
        raise ConfigError(f"{source}: audioset_pretrain needs an AudioSet run's checkpoint")
    audioset_init(model, weights.state_dict, source_grid=weights.grid, name=str(source))
