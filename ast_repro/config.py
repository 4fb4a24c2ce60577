"""Training recipes: one frozen, flat, validated config per run (original `egs/*/run*.sh`).

The original passes its hyperparameters through `egs/*/run*.sh` into `src/run.py`. Here a
run is a `TrainConfig` of flat scalars (nanoGPT style). `RECIPES` (`ast_repro.recipes`)
holds the paper's recipes (AudioSet full and balanced, ESC-50 as AST-P and AST-S, Speech
Commands V2-35) and tiny `smoke_*` variants for CPU minutes, each a small override set over
the defaults.

`resolve(recipe, overrides)` is the one way to build a config, used by the command line
(`--set key=value`) and by notebooks (a dict): an unknown key is an error naming the key and
its close matches; a value of the wrong type names the key, the value and the type; strings
from the command line are parsed to the field's type.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ast_repro.errors import AstReproError
from ast_repro.features import AUDIOSET_STATS, NormStats
from ast_repro.model_config import DEIT_PATCH_SIZE, MODEL_SIZES
from ast_repro.pretrained import IMAGENET_SOURCES
from ast_repro.recipes import RECIPES
from ast_repro.results import PROFILES
from ast_repro.runtime import PRECISIONS
from ast_repro.weights import CHANNEL_MODES, POS_MODES

# Allowed values of the string fields that select code paths (the others are imported from
# the modules that own them: profiles, precisions, model sizes and the ImageNet
# positional-embedding adaptations of paper Table 4).
DATASETS = ("audioset", "esc50", "speechcommands")
TRAIN_SPLITS = ("train", "train_full")  # keys of ast_repro.layout.prepared_paths
LOSSES = ("bce", "ce")
METRICS = ("mAP", "acc")
FRONTENDS = ("worker", "device")
# ViT-Large has no DeiT release: its ImageNet weights are a Table 3 `imagenet_source`.
SOURCE_ONLY_SIZES = ("large384",)
# ESC-50 is scored by 5-fold cross-validation (original `egs/esc50/prep_esc50.py`).
ESC50_ALL_FOLDS = "1,2,3,4,5"

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class ConfigError(AstReproError, ValueError):
    """A recipe, key or value is not valid; the message names it."""


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything one training run needs, as flat scalars (defaults: the AudioSet recipe).

    Paths left empty are filled from the dataset's prepared layout
    (`ast_repro.layout.prepared_paths`) under `data_root`.
    """

    # what and where
    recipe: str = ""
    profile: str = "paper"
    run_name: str = ""  # results/train/<run_name>/; empty: "<recipe>-s<seed>"
    dataset: str = "audioset"
    data_root: str = ""  # empty: $AST_REPRO_DATA/<dataset>, or <dataset>-twin when smoke
    train_split: str = "train"
    folds: str = ESC50_ALL_FOLDS  # ESC-50 only: the held-out folds to run
    train_data: str = ""
    valid_data: str = ""
    eval_data: str = ""
    label_csv: str = ""
    train_weights: str = ""  # balanced-sampler weights; empty: <train json stem>_weight.csv
    waveform_cache: bool = False
    # model (original `src/models/ast_models.py`): DeiT base 384, 16 x 16 patches at stride 10
    model_size: str = "base384"
    frequency_patch_size: int = DEIT_PATCH_SIZE  # other shapes: Table 6, no pretraining
    time_patch_size: int = DEIT_PATCH_SIZE
    frequency_stride: int = 10
    time_stride: int = 10
    imagenet_pretrain: bool = True
    imagenet_source: str = ""  # Table 3's weights by timm name; empty: the size's own DeiT
    pos_embed_mode: str = "ast"  # how ImageNet's 24 x 24 positions become the audio grid
    channel_merge: str = "sum"  # RGB kernel -> one channel: the code's sum, the text's average
    audioset_pretrain: bool = False
    pretrained_path: str = ""  # local DeiT / AudioSet weights; empty: the default location
    gradient_checkpointing: bool = False
    # features and augmentation (original `src/dataloader.py`)
    target_length: int = 1024
    num_mel_bins: int = 128
    norm_mean: float = AUDIOSET_STATS.mean
    norm_std: float = AUDIOSET_STATS.std
    freqm: int = 48
    timem: int = 192
    mixup: float = 0.5
    noise: bool = False
    # optimization (original `src/traintest.py`)
    batch_size: int = 12
    eval_batch_size: int = 0  # 0: twice the training batch, as the original
    lr: float = 1e-5
    epochs: int = 5
    lrscheduler_start: int = 2
    lrscheduler_step: int = 1
    lrscheduler_decay: float = 0.5
    warmup: bool = True
    loss: str = "bce"
    balanced_sampler: bool = False
    # evaluation and model selection (original `src/traintest.py`)
    metric: str = "mAP"
    wa: bool = False
    wa_start: int = 1
    wa_end: int = 5
    select_best: bool = False  # evaluate the best-validation model on the eval set at the end
    save_model: bool = True  # keep every epoch's weights (else only last, best and WA range)
    # execution
    seed: int = 0
    num_workers: int = 8
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    frontend: str = "worker"  # worker: per clip in DataLoader workers; device: batched on GPU
    # torch.compile the model for training and evaluation (inductor kernels; the first
    # steps of each input shape pay the compilation). NOTE: off by default, also on CUDA,
    # until a GPU run measures it faster (benchmarks/RESULTS.md, "GPU scale").
    compile: bool = False
    device: str = "auto"
    progress: bool = True
    tensorboard: bool = False

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            _check_type(field.name, getattr(self, field.name), field.type)
        choices = {
            "dataset": DATASETS,
            "train_split": TRAIN_SPLITS,
            "profile": PROFILES,
            "loss": LOSSES,
            "metric": METRICS,
            "precision": PRECISIONS,
            "frontend": FRONTENDS,
            "model_size": tuple(MODEL_SIZES),
            "pos_embed_mode": POS_MODES,
            "channel_merge": CHANNEL_MODES,
            "imagenet_source": ("", *IMAGENET_SOURCES),
        }
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{key}={getattr(self, key)!r} is not one of {allowed}")
        # lrscheduler_start >= 1: MultiStepLR would apply a milestone 0 at construction
        positive = ("frequency_stride", "time_stride", "target_length", "num_mel_bins",
                    "batch_size", "epochs", "lrscheduler_start", "lrscheduler_step",
                    "frequency_patch_size", "time_patch_size")  # fmt: skip
        for key in positive:
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be at least 1, got {getattr(self, key)}")
        for key in ("eval_batch_size", "num_workers", "freqm", "timem"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must not be negative, got {getattr(self, key)}")
        if not self.lr > 0 or not self.norm_std > 0 or not 0 < self.lrscheduler_decay <= 1:
            raise ConfigError("lr and norm_std must be positive and lrscheduler_decay in (0, 1]")
        if not 0.0 <= self.mixup <= 1.0:
            raise ConfigError(f"mixup is a probability in [0, 1], got {self.mixup}")
        if min(self.num_mel_bins, self.target_length) < DEIT_PATCH_SIZE:
            raise ConfigError(
                f"num_mel_bins={self.num_mel_bins} and target_length={self.target_length} must "
                f"both be at least {DEIT_PATCH_SIZE}: the model cuts {DEIT_PATCH_SIZE} x "
                f"{DEIT_PATCH_SIZE} patches"
            )
        if self.freqm > self.num_mel_bins or self.timem > self.target_length:
            raise ConfigError(
                f"freqm={self.freqm} / timem={self.timem} exceed num_mel_bins="
                f"{self.num_mel_bins} / target_length={self.target_length}"
            )
        if self.wa and not 1 <= self.wa_start <= self.wa_end <= self.epochs:
            raise ConfigError(
                f"weight averaging needs 1 <= wa_start <= wa_end <= epochs, got "
                f"{self.wa_start}..{self.wa_end} with epochs={self.epochs}"
            )
        patch = (self.frequency_patch_size, self.time_patch_size)
        if patch[0] > self.num_mel_bins or patch[1] > self.target_length:
            raise ConfigError(
                f"a {patch[0]} x {patch[1]} patch does not fit "
                f"num_mel_bins={self.num_mel_bins} x target_length={self.target_length}"
            )
        if self.audioset_pretrain and not self.imagenet_pretrain:
            # original src/models/ast_models.py asserts the same
            raise ConfigError("audioset_pretrain=True requires imagenet_pretrain=True")
        self._check_imagenet_keys()
        for fold in self.fold_list():
            if fold not in range(1, 6):
                raise ConfigError(f"folds={self.folds!r}: ESC-50 folds are 1..5")

    def _check_imagenet_keys(self) -> None:
        """The keys that choose and adapt ImageNet weights (paper Tables 3, 4 and 6)."""
        adapts = self.imagenet_pretrain and not self.audioset_pretrain
        for key, default in (("pos_embed_mode", "ast"), ("channel_merge", "sum"),
                             ("imagenet_source", "")):  # fmt: skip
            if getattr(self, key) != default and not adapts:
                raise ConfigError(
                    f"{key}={getattr(self, key)!r} adapts ImageNet weights: it needs "
                    "imagenet_pretrain=True and audioset_pretrain=False"
                )
        patch = (self.frequency_patch_size, self.time_patch_size)
        if self.imagenet_pretrain and patch != (DEIT_PATCH_SIZE, DEIT_PATCH_SIZE):
            raise ConfigError(
                f"{patch[0]} x {patch[1]} patches have no ImageNet weights (16 x 16); the "
                "paper trains other shapes from scratch (Table 6): set imagenet_pretrain=false"
            )
        needed = IMAGENET_SOURCES[self.imagenet_source].model_size if self.imagenet_source else ""
        if needed not in ("", self.model_size):
            raise ConfigError(
                f"imagenet_source={self.imagenet_source!r} needs model_size={needed!r} "
                f"(its width and depth), not {self.model_size!r}"
            )
        if adapts and not self.imagenet_source and self.model_size in SOURCE_ONLY_SIZES:
            raise ConfigError(
                f"model_size={self.model_size!r} has no DeiT weights: set imagenet_source (one "
                f"of {', '.join(IMAGENET_SOURCES)}) or imagenet_pretrain=false"
            )

    def fold_list(self) -> list[int]:
        """The ESC-50 folds as integers (empty for other datasets)."""
        if self.dataset != "esc50":
            return []
        try:
            folds = [int(part) for part in self.folds.split(",") if part.strip()]
        except ValueError:
            raise ConfigError(f"folds={self.folds!r} must be comma-separated integers") from None
        if not folds or len(set(folds)) != len(folds):
            raise ConfigError(f"folds={self.folds!r} must list distinct folds")
        return folds

    @property
    def norm(self) -> NormStats:
        """The normalization statistics as `NormStats`."""
        return NormStats(self.norm_mean, self.norm_std, f"config {self.recipe or 'custom'}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (json- and checkpoint-safe)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Rebuild a resolved config (e.g. from a checkpoint); unknown keys are errors."""
        _check_keys(values)
        return cls(**dict(values))


def _check_type(key: str, value: Any, annotation: str) -> None:
    expected = {"str": str, "int": int, "float": (int, float), "bool": bool}[annotation]
    if isinstance(value, bool) != (annotation == "bool") or not isinstance(value, expected):
        raise ConfigError(f"{key}={value!r} has type {type(value).__name__}, expected {annotation}")


FIELD_TYPES: dict[str, str] = {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}


def _check_keys(values: Mapping[str, Any]) -> None:
    for key in values:
        if key not in FIELD_TYPES:
            close = difflib.get_close_matches(key, FIELD_TYPES, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown config key {key!r}{hint}")


def parse_value(key: str, text: str) -> Any:
    """Parse a command-line string to the type of field `key`.

    Raises:
        ConfigError: unknown key, or text that is not a value of the field's type.
    """
    _check_keys({key: text})
    kind = FIELD_TYPES[key]
    value = text.strip()
    if kind == "str":
        return value
    if kind == "bool":
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ConfigError(f"{key}={text!r} is not a bool (use true/false)")
    try:
        return int(value) if kind == "int" else float(value)
    except ValueError:
        raise ConfigError(f"{key}={text!r} is not a valid {kind}") from None


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """["key=value", ...] from the command line -> {key: typed value}."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must look like key=value")
        overrides[key.strip()] = parse_value(key.strip(), text)
    return overrides


def resolve(recipe: str, overrides: Mapping[str, Any] | Sequence[str] | None = None) -> TrainConfig:
    """Build the validated config of a named recipe with overrides applied.

    Args:
        recipe: a key of `RECIPES`.
        overrides: {key: value} (values of the field's type; strings are parsed) or
            ["key=value", ...] as given to `ast-repro train --set`.

    Returns:
        The frozen config, with `run_name` and `eval_batch_size` filled in when left empty.

    Raises:
        ConfigError: unknown recipe or key, wrong type, or an invalid combination.
    """
    if recipe not in RECIPES:
        close = difflib.get_close_matches(recipe, RECIPES, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown recipe {recipe!r}{hint} (known: {', '.join(RECIPES)})")
    if overrides is None:
        parsed: dict[str, Any] = {}
    elif isinstance(overrides, Mapping):
        _check_keys(overrides)
        parsed = {
            key: parse_value(key, value)
            if isinstance(value, str) and FIELD_TYPES[key] != "str"
            else value
            for key, value in overrides.items()
        }
    else:
        parsed = parse_overrides(overrides)
    values = {**RECIPES[recipe], "recipe": recipe, **parsed}
    for key, value in values.items():
        # an int where a float belongs (lr=1) is fine; store it as a float
        if FIELD_TYPES[key] == "float" and isinstance(value, int) and not isinstance(value, bool):
            values[key] = float(value)
    config = TrainConfig(**values)
    derived: dict[str, Any] = {}
    if not config.run_name:
        derived["run_name"] = f"{recipe}-s{config.seed}"
    if config.eval_batch_size == 0:
        derived["eval_batch_size"] = 2 * config.batch_size  # original src/run.py
    return dataclasses.replace(config, **derived) if derived else config


def describe(config: TrainConfig) -> str:
    """The config as aligned `key = value` lines, marking values that differ from defaults."""
    defaults = TrainConfig()
    lines = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        mark = "*" if value != getattr(defaults, field.name) else " "
        lines.append(f"{mark} {field.name:<24} = {value!r}")
    return "\n".join(lines)
