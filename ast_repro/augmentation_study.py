"""The augmentation study of notebook 04: what each of the recipe's augmentations is worth.

The paper (section 3) trains with the pipeline of PSLA that the original applies per clip in
`AudiosetDataset.__getitem__` (`src/dataloader.py`): waveform mixup, one frequency and one
time mask, and for Speech Commands noise and a circular time shift. It reports no ablation of
them. Here each augmentation is a *unit* of config keys (`UNITS`); an `AugmentationStudy`
knows which units a recipe uses and the value each takes when on, and builds the grid's
variants (`AugmentationStudy.variants`): none, each alone, each left out, all. The grid runs
through `ast_repro.experiments.run_grid` like any other.

Besides the variants: the per-epoch train and validation losses of a grid's runs
(`epoch_curves`), how far they drift apart (`overfitting`), and computed comparison lines
(`comparison_lines`) for the notebook, never typed by hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ast_repro.build import data_paths
from ast_repro.config import TrainConfig, resolve
from ast_repro.datafiles import read_label_csv
from ast_repro.grid_results import STAGE, run_epochs
from ast_repro.imagenet_ablation import reported_result
from ast_repro.results import results_dir

# Every augmentation key and its value when off (`src/dataloader.py` skips a mask at 0).
OFF: dict[str, Any] = {"mixup": 0.0, "freqm": 0, "timem": 0, "noise": False}
# The units a study switches, and the config keys each one sets.
UNITS: dict[str, tuple[str, ...]] = {
    "mixup": ("mixup",),  # waveform mixup, lambda ~ Beta(10, 10); the value is its rate
    "freqm": ("freqm",),  # one frequency mask of up to freqm - 1 mel bins
    "timem": ("timem",),  # one time mask of up to timem - 1 frames
    "masks": ("freqm", "timem"),  # both masks (SpecAugment) as one unit
    "noise": ("noise",),  # Speech Commands: uniform noise and a roll of -10..9 frames
}
KINDS = ("none", "alone", "left_out", "all")
NONE, ALL = "none", "all"
ALONE_PREFIX, LEFT_OUT_PREFIX = "only_", "no_"


class StudyError(ValueError):
    """An unknown unit or variant kind, or units that switch the same key."""


def parse_list(text: str | int | float) -> list[str]:
    """ "a, b,c" -> ["a", "b", "c"]: a notebook's comma-separated parameter as a list."""
    return [part.strip() for part in str(text).split(",") if part.strip()]


@dataclass(frozen=True)
class AugmentationStudy:
    """The augmentations of one recipe that a study switches on and off.

    Attributes:
        recipe: a key of `ast_repro.config.RECIPES`.
        settings: unit -> {key: value when on}, in the order asked for.
        skipped: units asked for that the recipe does not use and no value was given for
            (e.g. mixup for ESC-50, whose recipe sets mixup 0, or noise outside Speech Commands).
    """

    recipe: str
    settings: dict[str, dict[str, Any]]
    skipped: tuple[str, ...]

    def variants(self, kinds: Sequence[str] = KINDS) -> dict[str, dict[str, Any]]:
        """The grid's variants: name -> config overrides.

        Every variant sets every key of the studied units (on or `OFF`); keys of other
        augmentations stay as the recipe sets them. Variants that come out the same (with
        one or two units, "only_a" is "no_b") are kept once, under the first of "none",
        "all", "only_*", "no_*".

        Args:
            kinds: any of "none", "alone" (each unit alone), "left_out" (all but one), "all".

        Returns:
            {"none": ..., "only_<unit>": ..., "no_<unit>": ..., "all": ...}, in that order.

        Raises:
            StudyError: an unknown kind.
        """
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown:
            raise StudyError(f"unknown variant kinds {unknown}; use some of {KINDS}")
        units = list(self.settings)
        candidates: dict[str, list[str]] = {}
        if NONE in kinds:
            candidates[NONE] = []
        if "alone" in kinds:
            candidates.update({ALONE_PREFIX + unit: [unit] for unit in units})
        if "left_out" in kinds:
            candidates.update(
                {LEFT_OUT_PREFIX + unit: [u for u in units if u != unit] for unit in units}
            )
        if ALL in kinds:
            candidates[ALL] = units
        built = {name: self._overrides(on) for name, on in candidates.items()}
        priority = sorted(built, key=_priority)
        kept: dict[tuple[tuple[str, Any], ...], str] = {}
        for name in priority:
            kept.setdefault(tuple(sorted(built[name].items())), name)
        names = set(kept.values())
        return {name: overrides for name, overrides in built.items() if name in names}

    def all_on(self) -> dict[str, Any]:
        """The overrides of the "all" variant: every studied unit on."""
        return self._overrides(list(self.settings))

    def _overrides(self, on: Sequence[str]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for unit, setting in self.settings.items():
            values.update(setting if unit in on else {key: OFF[key] for key in setting})
        return values


def _priority(name: str) -> tuple[int, str]:
    order = {NONE: 0, ALL: 1}
    if name in order:
        return order[name], ""
    return (2 if name.startswith(ALONE_PREFIX) else 3), name


def augmentation_study(
    recipe: str,
    units: Sequence[str],
    *,
    mixup: float = 0.0,
    freqm: int = 0,
    timem: int = 0,
    common: Mapping[str, Any] | None = None,
) -> AugmentationStudy:
    """Which of `units` a recipe uses, and each one's value when on.

    A value given here (non-zero) wins; 0 takes the recipe's own (`ast_repro.recipes`).
    A unit whose value is 0 either way is not part of this recipe and is skipped; noise is
    part of a recipe that sets `noise=True`.

    Args:
        recipe: a key of `ast_repro.config.RECIPES`.
        units: names of `UNITS`, e.g. ["mixup", "masks", "noise"].
        mixup: the mixup rate (probability that a training clip is mixed), 0: the recipe's.
        freqm, timem: mask parameters in mel bins and frames, 0: the recipe's.
        common: overrides of every run (e.g. `target_length`), checked with the values.

    Returns:
        The study; `settings` validated through `ast_repro.config.resolve`.

    Raises:
        StudyError: an unknown unit, two units that set the same key ("masks", "freqm"),
            or none of the units is part of the recipe.
        ConfigError: a value the recipe cannot take (e.g. freqm above num_mel_bins).
    """
    unknown = [unit for unit in units if unit not in UNITS]
    if unknown:
        raise StudyError(f"unknown augmentation units {unknown}; use some of {list(UNITS)}")
    keys = [key for unit in units for key in UNITS[unit]]
    if len(keys) != len(set(keys)):
        raise StudyError(f"units {list(units)} switch the same key twice; pick one of each")
    base = resolve(recipe, dict(common or {}))
    given = {"mixup": mixup, "freqm": freqm, "timem": timem}
    wanted: dict[str, Any] = {
        key: given[key] or getattr(base, key) for key in ("mixup", "freqm", "timem")
    }
    wanted["noise"] = base.noise
    settings: dict[str, dict[str, Any]] = {}
    skipped = []
    for unit in units:
        values = {key: wanted[key] for key in UNITS[unit] if wanted[key]}
        if values:
            settings[unit] = values
        else:
            skipped.append(unit)
    if not settings:
        raise StudyError(
            f"{recipe} uses none of {list(units)} and no rate or width was given for them: "
            "nothing to switch on"
        )
    study = AugmentationStudy(recipe, settings, tuple(skipped))
    resolve(recipe, {**(common or {}), **study.all_on()})
    return study


def scored_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Copies of grid rows with `result`, the number the paper reports for the recipe.

    That is the weight average's metric (AudioSet), the best-validation model's test metric
    (Speech Commands) or the last epoch's fold mean (ESC-50): `reported_result`.
    """
    return [{**row, "result": reported_result(row)} for row in rows]


def run_path(row: Mapping[str, Any], results_root: str | Path | None = None) -> Path:
    """results/train/<run>/ of a grid row (`ast_repro.grid_results.grid_row`)."""
    root = Path(results_root) if results_root is not None else results_dir()
    return root / STAGE / row["run"]


def epoch_curves(
    rows: Sequence[Mapping[str, Any]], results_root: str | Path | None = None
) -> dict[str, dict[str, list[float]]]:
    """Per-epoch curves of every variant of a grid, averaged over its seeds.

    Args:
        rows: `run_grid` or `read_grid` rows.
        results_root: the results folder of the runs; default `results_dir()`.

    Returns:
        variant -> {"epoch", "train_loss", "valid_loss", "gap", "main": lists}, where gap
        is valid_loss - train_loss, over the epochs every seed of the variant has.
    """
    by_variant: dict[str, list[list[dict[str, Any]]]] = {}
    for row in rows:
        by_variant.setdefault(row["variant"], []).append(run_epochs(run_path(row, results_root)))
    curves = {}
    for variant, runs in by_variant.items():
        length = min(len(run) for run in runs)
        mean = {
            key: [sum(run[i][key] for run in runs) / len(runs) for i in range(length)]
            for key in ("train_loss", "valid_loss", "main")
        }
        gap = [v - t for t, v in zip(mean["train_loss"], mean["valid_loss"], strict=True)]
        curves[variant] = {"epoch": [float(i + 1) for i in range(length)], **mean, "gap": gap}
    return curves


def overfitting(curves: Mapping[str, Mapping[str, Sequence[float]]]) -> list[dict[str, Any]]:
    """How far each variant's training and validation losses drift apart.

    Returns:
        One row per variant: final train and validation loss, their gap (validation minus
        training: over-fitting shows as a growing gap), the epoch of the lowest validation
        loss and how much the validation loss rose after it (0 when the last epoch is best).
    """
    rows = []
    for variant, curve in curves.items():
        valid = list(curve["valid_loss"])
        best = min(range(len(valid)), key=valid.__getitem__)
        rows.append({
            "variant": variant,
            "train_loss": curve["train_loss"][-1],
            "valid_loss": valid[-1],
            "gap": curve["gap"][-1],
            "best_valid_epoch": best + 1,
            "valid_rise": valid[-1] - valid[best],
        })  # fmt: skip
    return rows


def comparison_lines(
    means: Mapping[str, float], gaps: Mapping[str, float], *, label: str
) -> list[str]:
    """Computed lines: does "all" beat "none", and does augmentation narrow the loss gap.

    The expectation (PSLA, which the paper adopts) is that the augmentations help: "all"
    scores above "none", and its training and validation losses stay closer. Each line says
    whether this run shows it.

    Args:
        means: variant -> mean metric over seeds (e.g. `variant_means`).
        gaps: variant -> final validation minus training loss (from `overfitting`).
        label: the run's profile and data, e.g. "smoke, twin".

    Returns:
        Up to two lines, plus one per single-unit variant with its effect against "none".
    """
    lines = []
    if NONE in means and ALL in means:
        verdict = "yes" if means[ALL] > means[NONE] else "no"
        lines.append(f"{label}: all augmentations beat none: {verdict} "
                     f"(all {means[ALL]:.3f}, none {means[NONE]:.3f})")  # fmt: skip
    if NONE in gaps and ALL in gaps:
        verdict = "yes" if gaps[ALL] < gaps[NONE] else "no"
        lines.append(f"{label}: augmentation narrows the validation-training loss gap: "
                     f"{verdict} (all {gaps[ALL]:+.3f}, none {gaps[NONE]:+.3f})")  # fmt: skip
    if NONE in means:
        for variant, value in means.items():
            if variant.startswith((ALONE_PREFIX, LEFT_OUT_PREFIX)):
                lines.append(f"{label}: {variant} against none: "
                             f"{round(value - means[NONE], 3) + 0.0:+.3f}")  # fmt: skip
    return lines


def chance_accuracy(config: TrainConfig) -> float | None:
    """The accuracy of guessing one class: 1 / classes for accuracy recipes, else None.

    Raises:
        DatafileError: the recipe's label csv is missing (`ast_repro.build.data_paths`).
    """
    if config.metric != "acc":
        return None
    return 1.0 / read_label_csv(data_paths(config)["labels"]).num_classes


def study_config(config: TrainConfig) -> dict[str, Any]:
    """The augmentation keys of a resolved config (what a variant changed)."""
    return {key: getattr(config, key) for key in OFF}
