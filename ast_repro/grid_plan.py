"""What a grid will run: its runs resolved, checked against what is stored, and its plan.

Each (variant, seed) of a grid resolves through `ast_repro.config.resolve`, as `--set` does,
to a run named `<grid>/<variant>-s<seed>`. A run is "done" when its metrics.json is final,
"partial" when it has a `last.pt` to resume from, else "new"; a stored run whose config
differs in anything that changes what it computes is refused with the keys named. The plan
printed before a grid starts lists the runs with an estimate of their time
(`ast_repro.estimate`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ast_repro import checkpoint as ckpt
from ast_repro.build import data_paths
from ast_repro.config import ConfigError, TrainConfig, resolve
from ast_repro.datafiles import read_datafile
from ast_repro.errors import AstReproError
from ast_repro.estimate import architecture, device_throughput, format_duration, run_flops
from ast_repro.grid_results import format_table, is_complete
from ast_repro.results import read_metrics, results_dir
from ast_repro.resume import EXECUTION_KEYS, schedule_changes
from ast_repro.train import STAGE

# A stored run that differs only in `ast_repro.resume.EXECUTION_KEYS` (where it ran) is
# reused; the schedule keys a resume may change (lr, epochs, ...) must match, and a run
# resumed with another lr or decay is not the run a grid asks for.
# Keys a grid sets itself for each run.
RESERVED_KEYS = ("recipe", "seed", "run_name")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+=-]*")
PLAN_COLUMNS = ("variant", "seed", "state", "epochs", "samples_per_epoch", "valid_clips",
                "patches")  # fmt: skip


class GridError(AstReproError):
    """A grid's name, variants or overrides are invalid, or a stored run differs."""


@dataclass(frozen=True)
class GridRun:
    """One (variant, seed) of a grid.

    Attributes:
        variant, seed: its place in the grid.
        overrides: what `resolve(recipe, overrides)` receives: the common overrides, the
            variant's, the seed and the run name.
        config: the resolved config.
        state: "done" (finished, same config), "partial" (has a checkpoint) or "new".
    """

    variant: str
    seed: int
    overrides: dict[str, Any]
    config: TrainConfig
    state: str

    @property
    def name(self) -> str:
        return f"{self.variant}-s{self.seed}"

    @property
    def path(self) -> Path:
        return results_dir() / STAGE / self.config.run_name


def config_differences(
    stored: Mapping[str, Any], config: TrainConfig, ignore: Sequence[str] = ()
) -> dict[str, tuple[Any, Any]]:
    """{key: (stored value, value now)} for every key that changes what a run computes.

    A key newer than the stored run counts as its default (what that run used); the keys of
    `EXECUTION_KEYS` and `ignore` are not compared.
    """
    saved = {**TrainConfig().to_dict(), **stored}
    skip = set(EXECUTION_KEYS) | set(ignore)
    return {
        key: (saved.get(key), value)
        for key, value in config.to_dict().items()
        if key not in skip and saved.get(key) != value
    }


def _check_name(kind: str, name: str) -> None:
    if not _NAME.fullmatch(name):
        raise GridError(
            f"{kind} name {name!r} must be letters, digits and _.+=- (a directory name)"
        )


def _check_stored(run: GridRun) -> str | None:
    """The problem with `run`'s stored config, if it differs from the resolved one."""
    stored = [(run.path / "metrics.json", ())]
    # the folds of an ESC-50 run carry their own fold and run name
    stored += [(p, ("folds", "run_name")) for p in sorted(run.path.glob("fold*/metrics.json"))]
    for path, ignore in stored:
        if path.is_file():
            metrics = read_metrics(path)
            changed = config_differences(metrics["config"], run.config, ignore)
            if changed:
                details = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
                return f"{path} was made with another config ({details})"
            resumed = schedule_changes(metrics["metrics"].get("resumed", []))
            if resumed:
                details = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in resumed.items())
                return f"{path} was resumed with another schedule ({details})"
    return None


def plan_grid(
    recipe: str,
    variants: Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int] = (0,),
    *,
    grid: str,
    common: Mapping[str, Any] | None = None,
) -> list[GridRun]:
    """Resolve every run of a grid and find which are done, partial or new.

    Args:
        recipe: a key of `ast_repro.config.RECIPES`.
        variants: {name: {key: value}}; values of the field's type or strings to parse.
        seeds: the seeds every variant runs with.
        grid: the grid's name, its folder under results/train/.
        common: overrides of every run (a variant's own override wins).

    Returns:
        The runs, variant by variant, seed by seed.

    Raises:
        GridError: a bad name or override, or stored runs made with another config (every
            such run and key is named).
    """
    _check_name("grid", grid)
    if not variants:
        raise GridError(f"grid {grid!r} has no variants")
    common = dict(common or {})
    runs, problems = [], []
    for variant, overrides in variants.items():
        _check_name("variant", variant)
        reserved = sorted(set(RESERVED_KEYS) & (set(overrides) | set(common)))
        if reserved:
            raise GridError(f"variant {variant!r}: {', '.join(reserved)} are set by the grid")
        for seed in dict.fromkeys(int(seed) for seed in seeds):
            values = {**common, **overrides, "seed": seed, "run_name": f"{grid}/{variant}-s{seed}"}
            try:
                config = resolve(recipe, values)
            except ConfigError as exc:
                raise GridError(f"grid {grid!r}, variant {variant!r}: {exc}") from exc
            path = results_dir() / STAGE / config.run_name
            metrics = path / "metrics.json"
            if metrics.is_file() and is_complete(read_metrics(metrics)):
                state = "done"
            elif any(path.glob(f"**/{ckpt.CHECKPOINT_DIR}/{ckpt.LAST_NAME}")):
                state = "partial"
            else:
                state = "new"
            run = GridRun(variant, seed, values, config, state)
            problem = _check_stored(run)
            if problem is not None:
                problems.append(f"{run.name}: {problem}")
            runs.append(run)
    if problems:
        raise GridError(
            f"grid {grid!r}: {'; '.join(problems)}. Use another grid or variant name, or "
            "delete those run directories to train them again"
        )
    return runs


def _clip_counts(config: TrainConfig, cache: dict[Path, int]) -> tuple[int, int]:
    """(training clips per epoch, validation clips) of a run, from its datafiles."""
    paths = data_paths(config)  # raises DatafileError naming a missing file
    for key in ("train", "valid"):
        if paths[key] not in cache:
            cache[paths[key]] = len(read_datafile(paths[key]))
    return cache[paths["train"]], cache[paths["valid"]]


def describe_plan(runs: Sequence[GridRun], *, mode: str, gpus: int) -> str:
    """The plan printed before a grid starts: every run, its size and an estimate of time.

    The estimate counts model FLOPs only (`ast_repro.estimate`), for the epochs still to run.
    """
    pending = [run for run in runs if run.state != "done"]
    cache: dict[Path, int] = {}
    rows, flops = [], 0.0
    for run in runs:
        row = {
            "variant": run.variant,
            "seed": run.seed,
            "state": run.state,
            "epochs": run.config.epochs,
            "patches": architecture(run.config).num_patches,
        }
        if run.state != "done":
            train_clips, valid_clips = _clip_counts(run.config, cache)
            done = 0
            if (run.path / "metrics.json").is_file():
                done = len(read_metrics(run.path / "metrics.json")["metrics"].get("epochs", []))
            share = 1 - done / run.config.epochs
            flops += share * run_flops(run.config, train_clips, valid_clips)
            row.update(samples_per_epoch=train_clips, valid_clips=valid_clips)
        rows.append(row)
    grid = runs[0].config.run_name.split("/")[0]
    lines = [
        f"grid {grid} ({runs[0].config.recipe}, {runs[0].config.profile} profile): {len(runs)} "
        f"runs, {len(runs) - len(pending)} finished, {len(pending)} to train ({mode})",
        format_table(rows, PLAN_COLUMNS),
    ]
    if pending:
        used = 0 if gpus == 0 else (1 if mode == "serial" else gpus)
        throughput = device_throughput(used)
        lines.append(
            f"estimate: {format_duration(throughput.seconds(flops))} for {flops:.2g} model FLOPs "
            f"on {throughput.describe()}; feature extraction and data loading not counted"
        )
    return "\n".join(lines)
