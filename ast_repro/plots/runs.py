"""Figures of what runs measured: ablation variants, epochs, ensembles, costs, the report.

Metrics per ablation variant and cost per patch count (notebooks 02-03, paper Tables 2-6),
per-epoch curves per variant (notebook 04), a run's metric over its epochs with its epoch
ensembles and the metric against the number of runs in an ensemble (notebook 05, Table 1),
and paper against reproduced numbers (report 99).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

# Line styles of the per-epoch curves, one per quantity (train loss, validation loss, ...).
_CURVE_STYLES = ("--", "-", ":", "-.")


def variant_metrics(
    ax: Axes,
    rows: Sequence[Mapping[str, Any]],
    *,
    metric: str,
    variant: str = "variant",
    paper: Mapping[str, float] | None = None,
    title: str = "",
) -> dict[str, float]:
    """Bar of the mean per variant with one dot per seed (and the paper's value, if given).

    Args:
        rows: one mapping per run, e.g. a grid's table as records; rows whose `metric` is
            missing or None (unfinished runs) are left out.
        metric: the column plotted, e.g. "mAP".
        variant: the column naming the variant; variants keep their first-seen order.
        paper: variant -> the paper's number, drawn as a black bar labelled "paper".
        title: axes title.

    Returns:
        variant -> mean of its runs.
    """
    values: dict[str, list[float]] = {}
    for row in rows:
        if row.get(metric) is not None:
            values.setdefault(str(row[variant]), []).append(float(row[metric]))
    means = {name: float(np.mean(runs)) for name, runs in values.items()}
    positions = np.arange(len(means))
    ax.bar(positions, list(means.values()), width=0.6, alpha=0.4, label="mean")
    for x, runs in zip(positions, values.values(), strict=True):
        offsets = np.linspace(-0.15, 0.15, len(runs)) if len(runs) > 1 else np.zeros(1)
        ax.scatter(x + offsets, runs, color="black", s=12, zorder=3)
    if paper:
        known = [(x, paper[name]) for x, name in enumerate(means) if name in paper]
        if known:
            xs, ys = zip(*known, strict=True)
            ax.scatter(xs, ys, marker="_", s=400, color="tab:red", zorder=4, label="paper")
    ax.set_xticks(positions, list(means), rotation=30, ha="right")
    ax.set_ylabel(metric)
    ax.legend()
    if title:
        ax.set_title(title)
    return means


def paper_vs_reproduced(
    ax: Axes,
    paper: Sequence[float],
    reproduced: Sequence[float],
    *,
    comparable: Sequence[bool],
    title: str = "",
) -> None:
    """Reproduced numbers against the paper's, with the diagonal where they agree (report 99).

    Args:
        paper, reproduced: one pair per paper number, fractions (mAP, accuracy).
        comparable: per pair, whether the run measured what the paper did (paper profile,
            real data, same metric and dataset): filled dots; the others (smoke runs, other
            data) are hollow.
        title: axes title.

    Raises:
        ValueError: the three sequences differ in length.
    """
    if not len(paper) == len(reproduced) == len(comparable):
        raise ValueError(f"{len(paper)} paper, {len(reproduced)} reproduced and "
                         f"{len(comparable)} comparable values do not pair up")  # fmt: skip
    x, y, same = np.asarray(paper), np.asarray(reproduced), np.asarray(comparable, dtype=bool)
    ax.plot([0, 1], [0, 1], color="gray", linestyle="--", linewidth=1, label="reproduced = paper")
    ax.scatter(x[same], y[same], color="tab:blue", zorder=3, label="paper profile, real data")
    ax.scatter(x[~same], y[~same], facecolors="none", edgecolors="tab:orange", zorder=3,
               label="smoke or other data (no delta)")  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("paper")
    ax.set_ylabel("reproduced")
    ax.legend(loc="upper left", fontsize="small")
    if title:
        ax.set_title(title)


def paper_and_reproduced(
    ax: Axes,
    labels: Sequence[str],
    paper: Sequence[float],
    reproduced: Sequence[float],
    *,
    comparable: Sequence[bool],
    title: str = "",
) -> None:
    """A pair of bars per paper number: the paper's and the reproduced one (report 99).

    Args:
        labels: what each number is, e.g. "rows.10.balanced".
        paper, reproduced: the numbers, fractions (mAP, accuracy).
        comparable: per number, whether the run measured what the paper did; the others'
            bars are hatched.
        title: axes title.

    Raises:
        ValueError: the sequences differ in length.
    """
    if not len(labels) == len(paper) == len(reproduced) == len(comparable):
        raise ValueError("labels, paper, reproduced and comparable must have one entry each")
    positions = np.arange(len(labels))
    ax.bar(positions - 0.2, paper, width=0.4, color="black", label="paper")
    bars = ax.bar(positions + 0.2, reproduced, width=0.4, color="tab:blue", label="reproduced")
    for bar, same in zip(bars, comparable, strict=True):
        if not same:
            bar.set_hatch("//")
            bar.set_facecolor("white")
            bar.set_edgecolor("tab:orange")
    if not all(comparable):
        bars.set_label("reproduced (hatched: smoke or other data)")
    ax.set_xticks(positions, list(labels), rotation=30, ha="right", fontsize="small")
    ax.set_ylabel("mAP or accuracy")
    ax.set_ylim(0, 1.35 * max([*paper, *reproduced, 0.1]))  # room for the legend
    ax.legend(fontsize="small", loc="upper left", ncols=2)


def epoch_ensembles(
    ax: Axes, curve: Mapping[str, Any], *, label: str = "", color: str | None = None
) -> None:
    """Draw a run's metric per epoch, its cumulative checkpoint ensemble and weight average.

    Args:
        curve: `ast_repro.ensembling.epoch_curve` (or `original_epoch_log`): `per_epoch`
            (E,) drawn solid where given, `cumulative` (E,) dashed, or one number drawn as
            a star at the last epoch, `wa` with `wa_range` as a dotted segment over the
            averaged epochs, `last`.
        label: the run's name in the legend.
        color: one colour for the run's lines.
    """
    line = None
    epochs = list(curve.get("epochs") or range(1, len(curve.get("per_epoch") or []) + 1))
    if curve.get("per_epoch"):
        (line,) = ax.plot(epochs, curve["per_epoch"], marker="o", markersize=3, color=color,
                          label=f"{label} per epoch".strip())  # fmt: skip
        color = line.get_color()
    end = curve["wa_range"][1] if curve.get("wa_range") else (epochs[-1] if epochs else 1)
    cumulative = curve.get("cumulative")
    if isinstance(cumulative, (list, tuple)):
        ax.plot(epochs, cumulative, linestyle="--", color=color,
                label=f"{label} cumulative ensemble".strip())  # fmt: skip
    elif cumulative is not None:
        ax.scatter([epochs[-1] if epochs else end], [cumulative], marker="*", s=80, color=color,
                   zorder=3, label=f"{label} cumulative ensemble".strip())  # fmt: skip
    if curve.get("wa") is not None:
        start = curve["wa_range"][0]
        ax.plot([start, end], [curve["wa"]] * 2, linestyle=":", linewidth=2, color=color,
                label=f"{label} weight average {start}-{end}".strip())  # fmt: skip
    if not curve.get("per_epoch"):
        ax.scatter([end], [curve["last"]], marker="o", color=color, zorder=3,
                   label=f"{label} last epoch".strip())  # fmt: skip
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")


def models_curve(
    ax: Axes,
    curve: Sequence[Mapping[str, Any]],
    spread: Sequence[Mapping[str, Any]] | None = None,
    *,
    metric: str = "mAP",
    title: str = "",
) -> None:
    """Draw the metric against the number of runs averaged (paper Table 1's ensembles).

    Args:
        curve: `ast_repro.ensembling.ensemble_curve`: the ensemble of the first k runs as a
            line, each run's own metric as a grey dot at k = 1, the run that joins at k
            written beside its point.
        spread: `ast_repro.ensembling.subset_spread`: the range over every k-run subset as
            a band, their mean dotted.
        metric: the y-axis label.
        title: axes title.
    """
    if spread:
        ks = [row["models"] for row in spread]
        ax.fill_between(ks, [row["min"] for row in spread], [row["max"] for row in spread],
                        alpha=0.2, color="gray", label="range over subsets")  # fmt: skip
        ax.plot(ks, [row["mean"] for row in spread], linestyle=":", color="gray",
                label="mean over subsets")  # fmt: skip
    ks = [row["models"] for row in curve]
    ax.plot(ks, [row["ensemble"] for row in curve], marker="o", label="ensemble, in order")
    ax.scatter([1] * len(curve), [row["member"] for row in curve], color="black", s=12,
               zorder=3, label="single runs")  # fmt: skip
    for row in curve:
        ax.annotate(row["added"], (row["models"], row["ensemble"]), textcoords="offset points",
                    xytext=(4, -10), fontsize=7)  # fmt: skip
    ax.set_xticks(ks)
    ax.set_xlabel("runs averaged")
    ax.set_ylabel(metric)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title)


def cost_vs_patches(
    ax: Axes,
    patches: Sequence[int],
    cost: Sequence[float],
    *,
    labels: Sequence[str] | None = None,
    ylabel: str = "GFLOPs per clip",
    title: str = "",
) -> np.ndarray:
    """Plot a cost against the number of patches with its quadratic fit (paper Table 5).

    Self-attention grows with the square of the patch count and the rest of the model
    linearly, so `a N^2 + b N + c` describes both FLOPs and measured time.

    Args:
        patches: patch counts N, e.g. 512, 657, 850, 1212 for strides 16, 14, 12, 10.
        cost: the cost at each count (FLOPs, seconds, memory).
        labels: a text per point, e.g. "stride 10".
        ylabel: what `cost` is, with its unit.
        title: axes title.

    Returns:
        (a, b, c), the least-squares fit (needs 3 points or more).

    Raises:
        ValueError: fewer than 3 points, or lengths that differ.
    """
    n, y = np.asarray(patches, dtype=float), np.asarray(cost, dtype=float)
    if n.shape != y.shape or n.size < 3:
        raise ValueError(f"need 3 or more (patches, cost) pairs, got {n.size} and {y.size}")
    coefficients = np.polyfit(n, y, deg=2)
    ax.scatter(n, y, zorder=3)
    curve = np.linspace(0, n.max() * 1.05, 100)
    ax.plot(curve, np.polyval(coefficients, curve), linestyle="--", color="gray",
            label="a N² + b N + c")  # fmt: skip
    for x, value, text in zip(n, y, labels, strict=True) if labels is not None else ():
        ax.annotate(text, (x, value), textcoords="offset points", xytext=(4, -10))
    ax.set_xlabel("patches per clip")
    ax.set_ylabel(ylabel)
    ax.legend()
    if title:
        ax.set_title(title)
    return coefficients


def epoch_curves(
    ax: Axes,
    curves: Mapping[str, Mapping[str, Sequence[float]]],
    *,
    keys: Sequence[str] = ("train_loss", "valid_loss"),
    ylabel: str = "loss",
    title: str = "",
) -> None:
    """Per-epoch curves of several variants: one colour per variant, one style per key.

    One key is drawn solid; with several, the first is dashed and the second solid (so
    training and validation loss read as such), then dotted and dash-dotted.

    Args:
        curves: variant -> {"epoch": [...], key: [...]}, e.g. from
            `ast_repro.augmentation_study.epoch_curves`.
        keys: the quantities drawn, e.g. training (dashed) and validation loss (solid).
        ylabel: what they are.
        title: axes title.

    Raises:
        ValueError: more keys than line styles.
    """
    if len(keys) > len(_CURVE_STYLES):
        raise ValueError(f"at most {len(_CURVE_STYLES)} keys, got {len(keys)}")
    colours = [f"C{i}" for i in range(len(curves))]
    styles = ("-",) if len(keys) == 1 else _CURVE_STYLES
    for colour, (variant, curve) in zip(colours, curves.items(), strict=True):
        for style, key in zip(styles, keys, strict=False):
            ax.plot(curve["epoch"], curve[key], linestyle=style, color=colour,
                    label=f"{variant} {key}")  # fmt: skip
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="x-small", ncol=2)
    if title:
        ax.set_title(title)
