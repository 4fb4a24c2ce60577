"""A grid's table, read from its runs' metrics.json files alone (for notebooks and the report).

`ast_repro.experiments` writes a grid's runs under `results/train/<grid>/<variant>-s<seed>/`
and its recipe and variants, in order, to `results/train/<grid>/grid.json`. One row per run
holds what the paper's ablation tables compare: the main metric (mAP or accuracy) of the
last epoch, of the best epoch, of the weight-averaged model and on the test set where the
recipe computes them, with the model's size, its patch count and the run's speed.
`run_epochs` reads a run's per-epoch records (losses and metric) back.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ast_repro.config import FIELD_TYPES, TrainConfig
from ast_repro.errors import AstReproError
from ast_repro.estimate import architecture
from ast_repro.fileio import atomic_write_json
from ast_repro.results import read_metrics, results_dir

STAGE = "train"  # ast_repro.train.STAGE, without importing the training engine
GRID_FILE = "grid.json"
_RUN_DIR = re.compile(r"(?P<variant>.+)-s(?P<seed>\d+)")
TABLE_COLUMNS = ("variant", "seed", "metric", "last", "best", "wa", "test", "params", "patches",
                 "wall_s", "samples_per_s", "peak_memory_gib", "status")  # fmt: skip


def grid_name(table: str, recipe: str, *, synthetic: bool) -> str:
    """The grid of a table for a recipe, e.g. "patch_overlap-audioset_balanced" or
    "patch_overlap-smoke_audioset-twin".

    The recipe is part of the name, so the balanced and full AudioSet grids of a table (or a
    recipe on its twin and on the real data) never share runs.
    """
    return f"{table}-{recipe}{'-twin' if synthetic else ''}"


def grid_dir(grid: str, results_root: str | os.PathLike[str] | None = None) -> Path:
    """results/train/<grid>/ under `results_root` (default `ast_repro.results.results_dir()`)."""
    return (Path(results_root) if results_root is not None else results_dir()) / STAGE / grid


def write_manifest(grid: str, recipe: str, variants: Mapping[str, Mapping[str, Any]]) -> Path:
    """Add the variants (in order) to `<grid>/grid.json`, which names the grid's recipe.

    Raises:
        AstReproError: the grid exists with another recipe.
    """
    path = grid_dir(grid) / GRID_FILE
    known: dict[str, Any] = {}
    if path.is_file():
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest["recipe"] != recipe:
            raise AstReproError(
                f"{path}: grid {grid!r} runs recipe {manifest['recipe']!r}, not {recipe!r}; "
                "choose another grid name"
            )
        known = manifest["variants"]
    merged = {**known, **{name: dict(values) for name, values in variants.items()}}
    atomic_write_json(path, {"grid": grid, "recipe": recipe, "variants": merged})
    return path


def is_complete(record: Mapping[str, Any]) -> bool:
    """Whether a run's metrics.json is final (ESC-50 cross-validation writes it only then)."""
    return bool(record.get("complete", "cross_validation" in record.get("metrics", {})))


def grid_row(path: Path, variant: str, seed: int, status: str = "") -> dict[str, Any]:
    """The table row of one run directory.

    Returns:
        variant, seed; metric ("mAP" or "acc") and its value at the `last` epoch, the `best`
        epoch, of the weight average (`wa`) and of the best model on the test set (`test`),
        None where the recipe does not compute it (for ESC-50: `last` is the fold mean at
        the last epoch and `best` the original's epoch chosen on the test folds); epochs,
        params, patches, wall_s (training seconds), samples_per_s (mean training clips per
        second), peak_memory_gib (GPU only, else None), profile, status and the run name.
    """
    record = read_metrics(path / "metrics.json")
    config, metrics = record["config"], record["metrics"]
    key = "mAP" if config["metric"] == "mAP" else "accuracy"
    if "cross_validation" in metrics:
        summary = metrics["cross_validation"]
        last, best = summary["last_epoch"]["mean"], summary["selected"]["mean"]
        parts = [read_metrics(p) for p in sorted(path.glob("fold*/metrics.json"))]
    else:
        last = (metrics.get("final") or {}).get("main")
        best = (metrics.get("best") or {}).get("main")
        parts = [record]
    epochs = [e for part in parts for e in part["metrics"].get("epochs", [])]
    speeds = [e["train_clips_per_second"] for e in epochs if "train_clips_per_second" in e]
    memory = [e["peak_memory_gib"] for e in epochs if e.get("peak_memory_gib") is not None]
    known = {k: v for k, v in config.items() if k in FIELD_TYPES}
    return {
        "variant": variant,
        "seed": seed,
        "metric": config["metric"],
        "last": last,
        "best": best,
        "wa": (metrics.get("wa") or {}).get(key),
        "test": (metrics.get("test") or {}).get(key),
        "epochs": config["epochs"],
        "params": parts[0].get("num_parameters") if parts else None,
        "patches": architecture(TrainConfig.from_dict(known)).num_patches,
        "wall_s": record["wall_time_s"],
        "samples_per_s": sum(speeds) / len(speeds) if speeds else None,
        "peak_memory_gib": max(memory) if memory else None,
        "profile": record["profile"],
        "status": status or ("complete" if is_complete(record) else "incomplete"),
        "run": config["run_name"],
    }


def run_epochs(
    path: Path, keys: Sequence[str] = ("train_loss", "valid_loss", "main")
) -> list[dict[str, Any]]:
    """The per-epoch records of a run directory, averaged over ESC-50's folds.

    Args:
        path: a run's directory; a cross-validated run holds one `fold*/` run per fold.
        keys: the per-epoch numbers kept (each epoch's record in `ast_repro.train`).

    Returns:
        One dict per epoch with `epoch` and `keys`, by default `train_loss` (mean over the
        epoch's augmented batches, as `ast_repro.train` records it), `valid_loss` and `main`
        (the recipe's metric on the validation set); for cross-validation the mean over the
        folds of the epochs they all have.
    """
    folds = sorted(path.glob("fold*/metrics.json"))
    parts = [read_metrics(p) for p in folds] or [read_metrics(path / "metrics.json")]
    histories = [part["metrics"].get("epochs", []) for part in parts]
    length = min(len(history) for history in histories)
    return [
        {"epoch": i + 1, **{k: sum(h[i][k] for h in histories) / len(histories) for k in keys}}
        for i in range(length)
    ]


def read_grid(
    grid: str, results_root: str | os.PathLike[str] | None = None
) -> list[dict[str, Any]]:
    """The table of a grid's finished runs, from disk alone.

    Args:
        grid: the grid's name.
        results_root: the results folder; default `ast_repro.results.results_dir()`.

    Returns:
        One `grid_row` per finished run, in the variants' order of `grid.json`, then by seed.

    Raises:
        AstReproError: no such grid.
    """
    base = grid_dir(grid, results_root)
    if not base.is_dir():
        raise AstReproError(f"{base}: no grid {grid!r} here (run `ast-repro grid` first)")
    order: list[str] = []
    if (base / GRID_FILE).is_file():
        order = list(json.loads((base / GRID_FILE).read_text(encoding="utf-8"))["variants"])
    found = []
    for metrics in sorted(base.glob("*/metrics.json")):
        match = _RUN_DIR.fullmatch(metrics.parent.name)
        if match and is_complete(read_metrics(metrics)):
            found.append((match["variant"], int(match["seed"]), metrics.parent))
    rank = {name: i for i, name in enumerate(order)}
    found.sort(key=lambda item: (rank.get(item[0], len(rank)), item[0], item[1]))
    return [grid_row(path, variant, seed) for variant, seed, path in found]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows as an aligned text table.

    Args:
        rows: dicts, e.g. from `read_grid`.
        columns: the columns to show; default `TABLE_COLUMNS` present in the rows, without
            those that are empty in every row (e.g. `wa` when no recipe averages weights).
    """
    if not rows:
        return "(no runs)"
    if columns is None:
        present = [c for c in TABLE_COLUMNS if any(row.get(c) is not None for row in rows)]
        columns = present or list(rows[0])
    table = [list(columns)] + [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    return "\n".join(
        "  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in table
    )


@dataclass(frozen=True)
class Ordering:
    """Whether measured numbers rank variants as the paper's do.

    Attributes:
        matches: True when every pair the paper ranks strictly is ranked the same way
            (strictly) by the measurement; None with fewer than two comparable variants.
        paper: the comparable variants from the paper's lowest number to its highest.
        measured: the same variants from the lowest measured number to the highest.
        values: variant -> (measured, paper).
    """

    matches: bool | None
    paper: list[str]
    measured: list[str]
    values: dict[str, tuple[float, float]]

    def to_dict(self) -> dict[str, Any]:
        """The comparison as metrics.json stores it."""
        return {"ordering_matches_paper": self.matches, "paper_order": self.paper,
                "measured_order": self.measured}  # fmt: skip

    def line(self, label: str) -> str:
        """One line for a notebook, e.g. "smoke ordering matches the paper: no (...)"."""
        if self.matches is None:
            return (f"{label} ordering: nothing to compare with the paper (fewer than two of "
                    "these variants have a paper number)")  # fmt: skip
        paper = _chain(self.paper, {v: paper for v, (_, paper) in self.values.items()})
        ours = _chain(self.measured, {v: measured for v, (measured, _) in self.values.items()})
        verdict = "yes" if self.matches else "no"
        return f"{label} ordering matches the paper: {verdict} (paper {paper}; {label} {ours})"


def _chain(order: Sequence[str], values: Mapping[str, float]) -> str:
    """ "a 0.100 < b 0.200 = c 0.200": variants in ascending order, ties marked."""
    text = f"{order[0]} {values[order[0]]:.3f}"
    for previous, variant in zip(order, order[1:], strict=False):
        sign = "=" if values[variant] == values[previous] else "<"
        text += f" {sign} {variant} {values[variant]:.3f}"
    return text


def compare_ordering(measured: Mapping[str, float], paper: Mapping[str, float]) -> Ordering:
    """Compare the ranking of variants by measured numbers with the paper's ranking.

    Pairs the paper gives the same number are not compared; a measured tie between
    variants the paper separates counts as a mismatch.

    Args:
        measured: variant -> measured number (e.g. `variant_means`).
        paper: variant -> the paper's number.

    Returns:
        The `Ordering` of the variants present in both.
    """
    common = [variant for variant in paper if variant in measured]
    values = {v: (float(measured[v]), float(paper[v])) for v in common}
    if len(common) < 2:
        return Ordering(None, common, common, values)
    by_paper = sorted(common, key=lambda v: values[v][1])
    by_measured = sorted(common, key=lambda v: values[v][0])
    matches = all(
        values[a][0] < values[b][0] for a in common for b in common if values[a][1] < values[b][1]
    )
    return Ordering(matches, by_paper, by_measured, values)
