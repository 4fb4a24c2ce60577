"""Paper Table 1 from saved ensembles: rows beside the paper's, and what they show (notebook 05).

Table 1 gives AST's balanced and full AudioSet mAP as a single model (weight-averaged),
Ensemble-S (three seeds) and Ensemble-M (with the other patch strides); the original's
released logs (`egs/audioset/exp/`) add the last epoch and the cumulative checkpoint
ensemble of a run. `ast_repro.ensembling` builds this run's numbers from the saved runs;
here they meet the paper's (`results/paper_reference.json`):

- `table1_rows`, `table1_bars`, `reproduced_rows`: the rows, their plot and their records
  for the report;
- `original_epoch_log`: the original's log of one run of a recipe;
- `beats_line`, `epoch_lines`, `table1_lines`: computed yes/no lines, labelled with the
  profile, saying whether this run shows what the paper shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ast_repro.ensembling import KIND_LABELS
from ast_repro.recipes import RECIPES
from ast_repro.results import paper_value, reproduced_row

# Table 1's AST rows, per AudioSet training set, as keys of results/paper_reference.json.
TABLE1_REFS = {
    "balanced": {"single": {"wa": "headline.audioset_balanced_map_single"},
                 "ensemble_s": "headline.audioset_balanced_map_ensemble_s",
                 "ensemble_m": "headline.audioset_balanced_map_ensemble_m"},
    "full": {"single": {"wa": "headline.audioset_full_map_single_wa",
                        "last": "headline.audioset_full_map_single_last_epoch"},
             "ensemble_s": "headline.audioset_full_map_ensemble_s",
             "ensemble_m": "headline.audioset_full_map_ensemble_m"},
}  # fmt: skip


def audioset_split(train_split: str) -> str:
    """Table 1's column of a config's `train_split`: "full" for "train_full", else "balanced"."""
    return "full" if train_split == "train_full" else "balanced"


def original_epoch_log(reference: Mapping[str, Any], split: str) -> dict[str, Any]:
    """The original's released training log of an AudioSet recipe (repository logs).

    Args:
        reference: `ast_repro.results.paper_reference()`.
        split: "full" or "balanced".

    Returns:
        `last` (last-epoch mAP), `wa` with `wa_range` (the recipe's, `ast_repro.recipes`),
        `cumulative` (the checkpoint ensemble of every epoch; None where the log is not
        in the reference) and `per_epoch` (None where not in the reference).
    """
    logs = reference["repository_logs"]
    recipe = RECIPES[f"audioset_{split}"]
    per_epoch = logs.get(f"audioset_{split}_per_epoch")
    last = per_epoch[-1] if per_epoch else logs[f"audioset_{split}_last_epoch"]
    return {
        "per_epoch": per_epoch,
        "last": last,
        "cumulative": logs.get(f"audioset_{split}_cumulative_ensemble"),
        "wa": logs[f"audioset_{split}_wa"],
        "wa_range": (recipe["wa_start"], recipe["wa_end"]),
    }


def _paper_entry(reference: Mapping[str, Any], ref: str | None) -> tuple[float | None, Any]:
    """(value, its +- or None) of a reference key; (None, None) without a key."""
    if ref is None:
        return None, None
    node: Any = reference
    for part in ref.split("."):
        node = node[part]
    return paper_value(dict(reference), ref), node.get("pm") if isinstance(node, dict) else None


def table1_rows(
    single: Sequence[float],
    ensemble_s: float,
    ensemble_m: float,
    *,
    kind: str,
    split: str,
    models_m: int,
    reference: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """Table 1's AST rows from this run's numbers, beside the paper's.

    Args:
        single: the single model's metric per seed (the Ensemble-S runs).
        ensemble_s, ensemble_m: the ensembles' metric.
        kind: what each run contributed (`MEMBER_KINDS`); the paper's single row is the
            weight average (full AudioSet also gives the last epoch).
        split: "balanced" or "full" AudioSet.
        models_m: the number of runs in Ensemble-M.
        reference: `ast_repro.results.paper_reference()`.

    Returns:
        Rows `row`, `models`, `value`, `pm` (standard deviation over seeds, single row only),
        `paper`, `paper_pm` and `ref` (None where the paper has no such number).
    """
    refs = TABLE1_REFS[split]
    values = np.asarray(single, dtype=np.float64)
    entries = [
        ("single", f"AST single ({KIND_LABELS[kind]})", 1, float(values.mean()),
         float(values.std()) if values.size > 1 else None, refs["single"].get(kind)),
        ("Ensemble-S", "AST Ensemble-S", values.size, float(ensemble_s), None,
         refs["ensemble_s"]),
        ("Ensemble-M", "AST Ensemble-M", models_m, float(ensemble_m), None, refs["ensemble_m"]),
    ]  # fmt: skip
    rows = []
    for name, row, models, value, pm, ref in entries:
        paper, paper_pm = _paper_entry(reference, ref)
        rows.append({"name": name, "row": row, "models": models, "value": value, "pm": pm,
                     "paper": paper, "paper_pm": paper_pm, "ref": ref})  # fmt: skip
    return rows


def table1_bars(
    table: Sequence[Mapping[str, Any]], single: Sequence[float], seeds: Sequence[int], metric: str
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Table 1 for `ast_repro.plots.variant_metrics`: the single model once per seed, then the
    ensembles; and the paper's number per row name where it has one.

    Args:
        table: `table1_rows`.
        single: the single model's metric per seed, in the order of `seeds`.
        seeds: the seeds.
        metric: the column name of the rows, e.g. "mAP".
    """
    rows = [{"variant": table[0]["name"], "seed": s, metric: v}
            for s, v in zip(seeds, single, strict=True)]  # fmt: skip
    rows += [{"variant": row["name"], metric: row["value"]} for row in table[1:]]
    return rows, {row["name"]: row["paper"] for row in table if row["paper"] is not None}


def reproduced_rows(
    table: Sequence[Mapping[str, Any]],
    *,
    metric: str,
    dataset: str,
    variant: str,
    kind: str,
    seeds: Sequence[int],
    reference: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """`ast_repro.results.reproduced_row` of every `table1_rows` row the paper has.

    Args:
        table: `table1_rows`.
        metric, dataset: as `reproduced_row`, e.g. "mAP", "audioset_balanced".
        variant: the grid variant of the single model, e.g. "stride10".
        kind: what each run contributed, e.g. "wa"; the rows are named "stride10-wa",
            "ensemble_s-wa" and "ensemble_m-wa".
        seeds: the seeds of the runs.
        reference: `ast_repro.results.paper_reference()`.
    """
    names = (f"{variant}-{kind}", f"ensemble_s-{kind}", f"ensemble_m-{kind}")
    return [
        reproduced_row(row["ref"], row["value"], metric=metric, dataset=dataset, variant=name,
                       seeds=list(seeds), reference=dict(reference))
        for row, name in zip(table, names, strict=True)
        if row["ref"] is not None
    ]  # fmt: skip


def _versus(a: float, b: float) -> tuple[bool, str]:
    """(a beats b, "0.312 > 0.305"); values equal at three decimals are a tie, not a win."""
    if round(a, 3) == round(b, 3):
        return False, f"tie at {a:.3f}"
    return a > b, f"{a:.3f} {'>' if a > b else '<'} {b:.3f}"


def beats_line(
    what: str,
    value: float,
    than: str,
    other: float,
    *,
    label: str,
    paper: tuple[float, float] | None = None,
) -> str:
    """A computed line: does `what` beat `than` in this run (and in the paper)?

    Args:
        what, than: the names compared, e.g. "Ensemble-S", "the single model".
        value, other: their numbers in this run.
        label: the profile, e.g. "smoke"; starts the line.
        paper: the paper's (value, other), if it has both.

    Returns:
        e.g. "smoke: Ensemble-S beats the single model: yes (0.312 > 0.305; paper 0.363 >
        0.347)"; values equal at the three decimals printed are a tie, which is not a win.
    """
    won, text = _versus(value, other)
    line = f"{label}: {what} beats {than}: {'yes' if won else 'no'} ({text}"
    if paper is not None:
        line += f"; paper {_versus(*paper)[1]}"
    return line + ")"


def epoch_lines(
    means: Mapping[str, float], original: Mapping[str, Any], *, label: str
) -> list[str]:
    """`beats_line`s of one run's epoch ensembles: the cumulative ensemble and the weight
    average against the last epoch, and the weight average against the best epoch.

    Args:
        means: `epoch_rows` averaged over seeds ("last epoch", "best epoch", "cumulative" and,
            with weight averaging, "weight average"), as `plots.variant_metrics` returns.
        original: `original_epoch_log`, the paper side where it has both numbers.
        label: the profile.
    """
    last, cumulative = means["last epoch"], original["cumulative"]
    paper = None if cumulative is None else (cumulative, original["last"])
    lines = [beats_line("the cumulative ensemble", means["cumulative"], "the last epoch", last,
                        label=label, paper=paper)]  # fmt: skip
    if "weight average" in means:
        wa = means["weight average"]
        lines += [
            beats_line("weight averaging", wa, "the last epoch", last, label=label,
                       paper=(original["wa"], original["last"])),
            beats_line("weight averaging", wa, "the best epoch", means["best epoch"],
                       label=label),
        ]  # fmt: skip
    return lines


def table1_lines(table: Sequence[Mapping[str, Any]], *, label: str) -> list[str]:
    """`beats_line`s of `table1_rows`: Ensemble-S against the single model, Ensemble-M
    against Ensemble-S, each with the paper's pair where it has both numbers."""
    single, ensemble_s, ensemble_m = table

    def paper(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[float, float] | None:
        return None if a["paper"] is None or b["paper"] is None else (a["paper"], b["paper"])

    return [
        beats_line("Ensemble-S", ensemble_s["value"], "the single model", single["value"],
                   label=label, paper=paper(ensemble_s, single)),
        beats_line("Ensemble-M", ensemble_m["value"], "Ensemble-S", ensemble_s["value"],
                   label=label, paper=paper(ensemble_m, ensemble_s)),
    ]  # fmt: skip
