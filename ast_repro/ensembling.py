"""Ensembles of saved runs: paper section 3.1 and Table 1 (notebook 05).

The original builds three kinds of ensemble: the per-epoch "cum" checkpoint ensemble and the
weight average of an epoch range (`validate_wa`), both in `src/traintest.py`, and the
averages of several runs' probabilities of `egs/audioset/ensemble.py`: Ensemble-S (three seeds)
and Ensemble-M (the seeds plus the other patch strides). Every training run here already
saves what they need (`ast_repro.train`): its validation predictions per epoch
(`predictions/valid_{epoch}.npz`) and of its weight-averaged model (`valid_wa.npz`), and in its
metrics.json the per-epoch metric with the cumulative ensemble's. This module picks and
orders a grid's runs and builds the ensembles from those files with `ast_repro.ensemble`;
nothing is evaluated again.

- `members`, `saved_predictions`: which saved predictions each run contributes;
- `epoch_curve`, `epoch_rows`: one run over its epochs (last, best, cumulative, weight
  average), as its metrics.json recorded them;
- `score`, `ensemble_curve`, `subset_spread`: the metric of an ensemble and against the
  number of runs averaged.

`ast_repro.ensemble_table` puts the results beside the paper's Table 1.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ast_repro.ensemble import (
    CumulativeEnsemble,
    EnsembleError,
    average_predictions,
    load_aligned,
)
from ast_repro.grid_results import STAGE
from ast_repro.metrics import compute_metrics, headline
from ast_repro.results import read_metrics, results_dir

# What a run contributes to an ensemble: its weight-averaged model, its last epoch or the
# epoch with the best validation metric (the original's `best_audio_model.pth`).
MEMBER_KINDS = ("wa", "last", "best")
KIND_LABELS = {"wa": "weight average", "last": "last epoch", "best": "best epoch"}
PREDICTIONS_DIR = "predictions"


@dataclass(frozen=True)
class Member:
    """One run of an ensemble and the saved predictions it contributes.

    Attributes:
        name: "<variant>-s<seed>", e.g. "stride10-s0".
        variant, seed: its place in its grid.
        run: the run directory, results/train/<grid>/<name>/.
        predictions: its prediction file (`ast_repro.ensemble.save_predictions`).
        metrics: the headline metrics (mAP, mAUC, d_prime, accuracy) of those predictions,
            as the run recorded them.
    """

    name: str
    variant: str
    seed: int
    run: Path
    predictions: Path
    metrics: dict[str, float]


def main_key(metric: str) -> str:
    """The `headline` key of a config's `metric`: "mAP" stays, "acc" is "accuracy"."""
    return "mAP" if metric == "mAP" else "accuracy"


def saved_predictions(run: str | Path, kind: str = "wa") -> tuple[Path, dict[str, float]]:
    """The saved validation predictions of a finished run and their recorded metrics.

    Args:
        run: a run directory holding metrics.json and predictions/.
        kind: "wa" (`valid_wa.npz`), "last" or "best" (`valid_{epoch}.npz` of that epoch).

    Returns:
        (the prediction file, its headline metrics from metrics.json).

    Raises:
        EnsembleError: an unknown kind, a run without weight averaging asked for "wa", or
            a missing file.
    """
    if kind not in MEMBER_KINDS:
        raise EnsembleError(f"member kind {kind!r} is not one of {MEMBER_KINDS}")
    run = Path(run)
    metrics = read_metrics(run / "metrics.json")["metrics"]
    if kind == "wa":
        if not metrics.get("wa"):
            raise EnsembleError(f"{run}: the run averaged no weights (its recipe has wa=false)")
        path, record = run / PREDICTIONS_DIR / "valid_wa.npz", metrics["wa"]
    else:
        epoch = (metrics.get("final" if kind == "last" else "best") or {}).get("epoch")
        if epoch is None:
            raise EnsembleError(f"{run}: metrics.json records no {kind} epoch")
        path = run / PREDICTIONS_DIR / f"valid_{epoch}.npz"
        record = next(e for e in metrics["epochs"] if e["epoch"] == epoch)
    if not path.is_file():
        raise EnsembleError(f"{path}: the run saved no such predictions")
    return path, {key: record[key] for key in ("mAP", "mAUC", "d_prime", "accuracy")}


def members(
    rows: Sequence[Mapping[str, Any]], kind: str = "wa", results_root: str | Path | None = None
) -> list[Member]:
    """The runs of grid rows (`ast_repro.experiments.run_grid`) as ensemble members, in order.

    Args:
        rows: rows with `run` (its name under results/train/), `variant` and `seed`.
        kind: what each run contributes, one of `MEMBER_KINDS`.
        results_root: the results folder; default `ast_repro.results.results_dir()`.

    Raises:
        EnsembleError: as `saved_predictions`, or the same run twice.
    """
    root = Path(results_root) if results_root is not None else results_dir()
    found: list[Member] = []
    for row in rows:
        run = root / STAGE / row["run"]
        name = f"{row['variant']}-s{row['seed']}"
        if any(member.run == run for member in found):
            raise EnsembleError(f"{run}: the same run is listed twice")
        path, metrics = saved_predictions(run, kind)
        found.append(Member(name, row["variant"], int(row["seed"]), run, path, metrics))
    return found


def score(chosen: Sequence[Member]) -> dict[str, float]:
    """Headline metrics (mAP, mAUC, d_prime, accuracy) of the mean of the members' probabilities.

    Raises:
        EnsembleError: no member, or predictions of other clips or targets.
    """
    runs = load_aligned([member.predictions for member in chosen])
    return headline(compute_metrics(average_predictions([r.probs for r in runs]), runs[0].targets))


def ensemble_curve(chosen: Sequence[Member], metric: str = "mAP") -> list[dict[str, Any]]:
    """The metric of the ensemble of the first k members, for k = 1..n, in the given order.

    Args:
        chosen: members in the order they join (Ensemble-M: the seeds, then the strides).
        metric: a `headline` key, e.g. "mAP".

    Returns:
        One row per k: `models` (k), `added` (the k-th member's name), `member` (its own
        metric, as its run recorded it) and `ensemble` (the metric of the mean of members
        1..k; for k = 1 the first member's own).
    """
    runs = load_aligned([member.predictions for member in chosen])
    running = CumulativeEnsemble()
    rows = []
    for k, (member, run) in enumerate(zip(chosen, runs, strict=True), start=1):
        mean = running.update(run.probs)
        value = member.metrics[metric]
        rows.append({
            "models": k,
            "added": member.name,
            "member": value,
            "ensemble": value if k == 1 else compute_metrics(mean, run.targets)[metric],
        })  # fmt: skip
    return rows


def subset_spread(
    chosen: Sequence[Member], metric: str = "mAP", *, max_subsets: int = 20, seed: int = 0
) -> list[dict[str, Any]]:
    """The metric of every k-member ensemble, for k = 1..n, summarised per k.

    Where there are more than `max_subsets` subsets of size k, a seeded sample of that many
    is scored.

    Returns:
        One row per k: `models`, `subsets` (how many were scored), `mean`, `min`, `max`.

    Raises:
        EnsembleError: as `score`; ValueError: `max_subsets` below 1.
    """
    if max_subsets < 1:
        raise ValueError(f"max_subsets must be at least 1, got {max_subsets}")
    runs = load_aligned([member.predictions for member in chosen])
    targets = runs[0].targets
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(1, len(runs) + 1):
        subsets = list(itertools.combinations(range(len(runs)), k))
        if len(subsets) > max_subsets:
            picked = np.sort(rng.choice(len(subsets), size=max_subsets, replace=False))
            subsets = [subsets[i] for i in picked]
        values = [
            compute_metrics(average_predictions([runs[i].probs for i in s]), targets)[metric]
            for s in subsets
        ]
        rows.append({"models": k, "subsets": len(subsets), "mean": float(np.mean(values)),
                     "min": float(np.min(values)), "max": float(np.max(values))})  # fmt: skip
    return rows


def epoch_curve(run: str | Path) -> dict[str, Any]:
    """A run's main metric over its epochs, as its metrics.json recorded it.

    Returns:
        `metric` (a `headline` key), `epochs` (1..E), `per_epoch` and `cumulative` (E,)
        (the cumulative checkpoint ensemble of epochs 1..e), `last`, `best`, `best_epoch`,
        and `wa` with its `wa_range` (start, end) (None without weight averaging).
    """
    record = read_metrics(Path(run) / "metrics.json")
    config, metrics = record["config"], record["metrics"]
    key = main_key(config["metric"])
    history = metrics["epochs"]
    if not history:
        raise EnsembleError(f"{run}: metrics.json records no epoch")
    wa = (metrics.get("wa") or {}).get(key)
    return {
        "metric": key,
        "epochs": [e["epoch"] for e in history],
        "per_epoch": [e[key] for e in history],
        "cumulative": [e[f"cum_{key}"] for e in history],
        "last": history[-1][key],
        "best": metrics["best"]["main"],
        "best_epoch": metrics["best"]["epoch"],
        "wa": wa,
        "wa_range": (config["wa_start"], config["wa_end"]) if wa is not None else None,
    }


def epoch_rows(curves: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per run: its last epoch, best epoch, cumulative ensemble of all epochs and weight
    average, as rows {"variant": what, "seed": run name, <metric>: value} for
    `ast_repro.plots.variant_metrics` (the weight average only where the run has one)."""
    rows = []
    for name, curve in curves.items():
        values = {"last epoch": curve["last"], "best epoch": curve["best"],
                  "cumulative": curve["cumulative"][-1], "weight average": curve["wa"]}  # fmt: skip
        rows += [
            {"variant": what, "seed": name, curve["metric"]: value}
            for what, value in values.items()
            if value is not None
        ]
    return rows
