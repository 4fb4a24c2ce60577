"""The generated paper-vs-reproduced report (notebook 99, `ast-repro report`, `make report`).

`ast_repro.reproduced.build_report` pairs every number of the paper with the run that
reproduces it, from every metrics.json under results/; `write_report` writes
`results/report/report.md`, its tables (`markdown_tables`: one row per paper number with the
reproduced value or "not run", the delta, the profile and data, then one row per record
with its command, date, device and commit) and a figure per paper table, atomically.

The README's "paper vs reproduced" section is the same table built from the records the
checkout tracks in `results/published/` (`readme_block`), so a fresh clone regenerates it
exactly and a test compares the two; `ast-repro report --publish RUN_DIR` copies a run's
record there, and `ast-repro report --readme README.md` (`make report`) rewrites the section.
"""

from __future__ import annotations

import argparse
import io
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ast_repro.fileio import atomic_save, atomic_write_text
from ast_repro.reproduced import (
    TABLE_ORDER,
    PaperNumber,
    Report,
    ReportError,
    Reproduction,
    build_report,
    paper_numbers,
)
from ast_repro.results import (
    REPRODUCED_KEY,
    collect,
    paper_reference,
    read_metrics,
    repo_root,
    results_dir,
)

STAGE = "report"  # results/report/
PUBLISHED = "published"  # results/published/<stage>/<run>/metrics.json, tracked
README_BEGIN = "<!-- report:begin -->"
README_END = "<!-- report:end -->"
NOT_RUN = "not run"


def _decimals(value: float) -> int:
    text = repr(float(value))
    return max(len(text.split(".")[1]) if "." in text else 0, 3)


def paper_cell(number: PaperNumber) -> str:
    """The paper's number as the paper prints it, e.g. "0.459 ± 0.000", "0.9811 ± 0.0005"."""
    places = _decimals(number.value)
    text = f"{number.value:.{places}f}"
    return text if number.pm is None else f"{text} ± {number.pm:.{places}f}"


def _table_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def short_commit(commit: str | None) -> str:
    """A commit as 12 hex digits, keeping "+dirty" (a checkout with local changes)."""
    if not commit:
        return "-"
    return commit[:12] + ("+dirty" if commit.endswith("+dirty") else "")


def markdown_tables(report: Report) -> str:
    """The report's tables in markdown: one row per paper number, then one per record.

    The first table gives the paper's number, the reproduced one (or "not run"), the delta,
    the run's label and what it measured; the second each record's command, date, device
    and commit.
    """
    lines = [report.summary(), "",
             "| table | paper number | paper | reproduced | Δ | run | measured | record |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    records: dict[str, Reproduction] = {}
    for row in report.rows:
        number, run = row.number, row.run
        cells = [number.table, number.label, paper_cell(number)]
        if run is None:
            cells += [NOT_RUN, "", "", "", ""]
        else:
            records.setdefault(run.source, run)
            value = "none" if run.value is None else f"{run.value:.4f}"
            delta = "" if row.delta is None else f"{row.delta:+.4f}"
            seeds = ", ".join(str(s) for s in run.seeds)
            measured = f"{run.metric}, {run.dataset}, {run.variant}, seeds {seeds}"
            source = f"`{run.source}`" + (f" (+{row.others} other)" if row.others else "")
            cells += [value, delta, run.label, measured, source]
        lines.append(_table_row(cells))
    if records:
        lines += ["", "| record | command | date | device | commit |", "|---|---|---|---|---|"]
        for source, run in sorted(records.items()):
            command = f"`{run.command}`" if run.command else "-"
            cells = [f"`{source}`", command, run.date or "-", run.device or "-"]
            lines.append(_table_row([*cells, short_commit(run.commit)]))
    return "\n".join(lines) + "\n"


def baselines_table(reference: Mapping[str, Any]) -> str:
    """The other systems' numbers the paper quotes for comparison (Tables 1 and 7), as
    markdown; this package does not reproduce them."""
    lines = ["| table | system | paper |", "|---|---|---|"]
    for number in paper_numbers(reference, baselines=True):
        lines.append(_table_row([number.table, number.label, paper_cell(number)]))
    return "\n".join(lines) + "\n"


def write_figures(report: Report, folder: str | Path) -> list[Path]:
    """Draw the report's figures into `folder` (PNG, written atomically).

    One paper-against-reproduced scatter over every number with a reproduced value, and a
    bar chart per paper table that has one; figures of an earlier report that this one no
    longer draws are removed.

    Returns:
        The paths written, scatter first, then by table.
    """
    from matplotlib.figure import Figure

    from ast_repro import plots

    folder = Path(folder)
    shown = [row for row in report.rows if row.run is not None and row.run.value is not None]
    drawn: list[Path] = []

    def save(fig: Figure, name: str) -> None:
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        atomic_save(folder / name, lambda handle: handle.write(buffer.getvalue()))
        drawn.append(folder / name)

    if shown:
        fig = Figure(figsize=(5, 4.5))
        plots.paper_vs_reproduced(
            fig.add_subplot(), [row.number.value for row in shown],
            [row.run.value for row in shown],  # type: ignore[union-attr]
            comparable=[row.delta is not None for row in shown],
            title="every reproduced paper number",
        )  # fmt: skip
        save(fig, "paper_vs_reproduced.png")
    for table in TABLE_ORDER:
        rows = [row for row in shown if row.number.table == table]
        if rows:
            fig = Figure(figsize=(1.4 * len(rows) + 3, 4.5))
            plots.paper_and_reproduced(
                fig.add_subplot(), [row.number.label.rpartition(": ")[2] for row in rows],
                [row.number.value for row in rows],
                [row.run.value for row in rows],  # type: ignore[union-attr,misc]
                comparable=[row.delta is not None for row in rows],
                title=f"Table {table}" if table != "text" else "numbers of the text",
            )  # fmt: skip
            save(fig, f"table_{table}.png")
    for stale in set(folder.glob("*.png")) - set(drawn):
        stale.unlink()
    return drawn


def report_markdown(
    report: Report, reference: Mapping[str, Any], figures: Sequence[Path], folder: Path
) -> str:
    """The whole report.md: how it was made, the tables, the figures and the context."""
    parts = [
        "# AST: paper vs reproduced",
        "",
        "Generated by `ast-repro report` (`make report`, notebook `99_report`) from the "
        "metrics.json of every run under results/, never typed; the paper's numbers are "
        f"`results/paper_reference.json` ({reference.get('source', 'no source given')}). "
        f"Profiles shown: {', '.join(report.profiles)}.",
        "",
        "A number shows one run: a comparable run (paper profile, real data, the paper's "
        "metric and dataset) over any other, the paper profile over smoke, real data over a "
        "twin, then the newest; the delta is reproduced - paper, for comparable runs only. "
        'Smoke numbers (labelled "smoke, twin") show that the code runs; they are not the '
        "paper's numbers.",
        "",
        markdown_tables(report),
    ]
    if figures:
        parts += ["## Figures", ""]
        parts += [f"![{path.stem}]({path.relative_to(folder).as_posix()})\n" for path in figures]
    parts += ["## Other systems the paper compares with", "", baselines_table(reference)]
    if report.unknown:
        parts += ["## Reproduced rows naming no number of the reference", ""]
        parts += [f"- `{run.ref}` from `{run.source}`" for run in report.unknown] + [""]
    return "\n".join(parts)


def write_report(
    report: Report | None = None,
    *,
    reference: Mapping[str, Any] | None = None,
    out_dir: str | Path | None = None,
) -> Path:
    """Write `report.md` and its figures (`figures/*.png`), atomically.

    Args:
        report: from `build_report` (built from every record under results/ when None).
        reference: `paper_reference()` (read from the checkout when None).
        out_dir: default results/report/.

    Returns:
        The path of report.md.
    """
    reference = paper_reference() if reference is None else reference
    report = build_report(reference) if report is None else report
    folder = Path(out_dir) if out_dir is not None else results_dir() / STAGE
    figures = write_figures(report, folder / "figures")
    path = folder / "report.md"
    atomic_write_text(path, report_markdown(report, reference, figures, folder))
    return path


def published_dir() -> Path:
    """results/published/ of the checkout: the records the README's table is built from."""
    root = repo_root()
    return (root / "results" if root is not None else results_dir()) / PUBLISHED


def readme_block(reference: Mapping[str, Any] | None = None) -> str:
    """The README's section between the markers: the report of the published records."""
    report = build_report(reference, collect(root=published_dir()))
    return f"{README_BEGIN}\n{markdown_tables(report)}{README_END}"


def _split_readme(text: str, path: Path) -> tuple[str, str, str]:
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise ReportError(f"{path}: no {README_BEGIN} ... {README_END} section to fill")
    return text[:begin], text[begin : end + len(README_END)], text[end + len(README_END) :]


def readme_section(path: str | Path) -> str:
    """The README's current section, markers included."""
    return _split_readme(Path(path).read_text(encoding="utf-8"), Path(path))[1]


def update_readme(path: str | Path, block: str | None = None) -> bool:
    """Replace the README's section with `block` (default `readme_block()`).

    Returns:
        Whether the file changed.

    Raises:
        ReportError: the README has no section between the markers.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    before, old, after = _split_readme(text, path)
    block = readme_block() if block is None else block
    if old == block:
        return False
    atomic_write_text(path, before + block + after)
    return True


def publish(run: str | Path) -> Path:
    """Copy a run's metrics.json to results/published/<stage>/<run>/ for the README.

    Args:
        run: the run's folder (results/<stage>/<run>/) or its metrics.json.

    Raises:
        ReportError: no metrics.json there, or it reproduces no paper number.
    """
    path = Path(run)
    path = path / "metrics.json" if path.is_dir() else path
    if not path.is_file():
        raise ReportError(f"{path}: no metrics.json to publish")
    record = read_metrics(path)
    if not record.get("metrics", {}).get(REPRODUCED_KEY):
        raise ReportError(f"{path}: reproduces no paper number (metrics[{REPRODUCED_KEY!r}])")
    target = published_dir() / str(record["stage"]) / str(record["run"]) / "metrics.json"
    if path.resolve() != target.resolve():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return target


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", type=Path, default=None, help="the runs (default: results/)")
    parser.add_argument("--out", type=Path, default=None, help="default: <results>/report/")
    parser.add_argument(
        "--paper-only", action="store_true", help="only paper-profile runs fill rows"
    )
    parser.add_argument(
        "--publish", nargs="+", default=[], metavar="RUN_DIR",
        help="first copy these runs' metrics.json to results/published/",
    )  # fmt: skip
    parser.add_argument(
        "--readme", type=Path, default=None,
        help="also rewrite this README's section from results/published/",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    for run_dir in args.publish:
        print(f"published {publish(run_dir)}")
    reference = paper_reference()
    profiles = ("paper",) if args.paper_only else ("smoke", "paper")
    report = build_report(reference, collect(root=args.results), profiles=profiles)
    out = args.out if args.out is not None else (args.results or results_dir()) / STAGE
    path = write_report(report, reference=reference, out_dir=out)
    print(f"{report.summary()}\n-> {path}")
    if args.readme is not None:
        changed = update_readme(args.readme, readme_block(reference))
        print(f"{args.readme}: {'updated' if changed else 'up to date'}")
    return 0
