"""Every number of the paper, paired with the run that reproduces it (for `ast_repro.report`).

The paper's numbers for AST, its headline and Tables 1-7, come from
`results/paper_reference.json` (`paper_numbers`). Notebooks announce what they reproduce
under metrics["reproduced"] of their metrics.json, one `ast_repro.results.reproduced_row`
per paper number (`reproductions` reads them with their records' provenance), and
`build_report` pairs each paper number with one run.

When several runs reproduce the same number, one is shown (`rank`): a run with a value over
one without; then a run comparable with the paper (`comparable`: the paper profile, real
data, the paper's metric on the paper's dataset); then the paper profile over smoke; then
real data over a twin; then the newest (the `date` of its metrics.json); last the record's
stage/run name, so the choice never depends on the order the files are read. The others
are counted. The delta (reproduced - paper) exists for a comparable run only; any other
run's number is shown with its label ("smoke, twin") and what it measured, never a delta.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ast_repro.errors import AstReproError
from ast_repro.results import METRIC_NAMES, REPRODUCED_KEY, collect, paper_reference

TABLE_ORDER = ("1", "2", "3", "4", "5", "6", "7", "text")  # the paper's tables, then its text


class ReportError(AstReproError, ValueError):
    """The reference, a record or the README is not what the report needs; names which."""


@dataclass(frozen=True)
class PaperNumber:
    """One number of the paper.

    Attributes:
        ref: its dotted key in the reference, e.g. "patch_overlap.rows.10.balanced".
        table: the paper's table ("1" ... "7") or "text".
        label: what it is, e.g. "patch-split overlap: stride 10 (overlap 6), balanced".
        value: the number, a fraction (mAP, accuracy in [0, 1]).
        pm: the paper's +- over seeds, where it gives one.
        metric: "mAP" or "accuracy".
        dataset: "audioset_balanced", "audioset_full", "esc50" or "speechcommands".
    """

    ref: str
    table: str
    label: str
    value: float
    pm: float | None
    metric: str
    dataset: str


def paper_numbers(reference: Mapping[str, Any], *, baselines: bool = False) -> list[PaperNumber]:
    """Every number of the reference, ordered by table (paper Tables 1-7, then the text).

    A number is a `headline` entry, or a cell of a section with `table` and `rows`: a number
    row under the section's `measure` {metric, dataset}, or each field of a row named in the
    section's `columns` {field: {label, metric, dataset}}; null cells (the paper's "-") are
    no number.

    Args:
        reference: `ast_repro.results.paper_reference()`.
        baselines: the numbers of other systems (sections marked `baseline`: PANNs, PSLA,
            the previous state of the art) instead of AST's.

    Raises:
        ReportError: a section lacks `measure` or `columns`, or a headline entry its fields.
    """
    numbers = []
    for key, entry in ({} if baselines else reference.get("headline", {})).items():
        try:
            numbers.append(PaperNumber(f"headline.{key}", entry["table"], entry["label"],
                                       float(entry["value"]), entry.get("pm"), entry["metric"],
                                       entry["dataset"]))  # fmt: skip
        except KeyError as missing:
            raise ReportError(f"paper reference: headline.{key} has no {missing}") from None
    for name, section in reference.items():
        if not (isinstance(section, dict) and "rows" in section and "table" in section):
            continue
        if bool(section.get("baseline")) != baselines:
            continue
        numbers += _section_numbers(name, section)
    order = {table: i for i, table in enumerate(TABLE_ORDER)}
    return sorted(numbers, key=lambda n: order.get(n.table, len(order)))


def _section_numbers(name: str, section: Mapping[str, Any]) -> list[PaperNumber]:
    title, labels = section.get("title", name), section.get("row_labels", {})
    numbers = []
    for row_key, row in section["rows"].items():
        label = f"{title}: {labels.get(row_key, row_key)}"
        if isinstance(row, dict):
            if "columns" not in section:
                raise ReportError(f"paper reference: {name} has rows of fields but no columns")
            cells = [(f".{c}", f"{label}, {spec.get('label', c)}", row.get(c), spec)
                     for c, spec in section["columns"].items()]  # fmt: skip
        else:
            if "measure" not in section:
                raise ReportError(f"paper reference: {name} has number rows but no measure")
            cells = [("", label, row, section["measure"])]
        numbers += [
            PaperNumber(f"{name}.rows.{row_key}{suffix}", str(section["table"]), text,
                        float(value), None, spec["metric"], spec["dataset"])
            for suffix, text, value, spec in cells
            if value is not None
        ]  # fmt: skip
    return numbers


@dataclass(frozen=True)
class Reproduction:
    """One reproduced paper number, with the provenance of the record that holds it.

    Attributes:
        ref, value, metric, dataset, variant, seeds: the `reproduced_row`.
        profile: the record's profile, "smoke" or "paper".
        data: "twin" (a synthetic twin), "real" or "unknown" (the record does not say).
        source: the record's "<stage>/<run>", e.g. "03_patch_overlap/smoke-audioset-twin".
        command, date, device, commit: the record's provenance (None where absent).
    """

    ref: str
    value: float | None
    metric: str
    dataset: str
    variant: str
    seeds: tuple[int, ...]
    profile: str
    data: str
    source: str
    command: str | None
    date: str | None
    device: str | None
    commit: str | None

    @property
    def label(self) -> str:
        """e.g. "smoke, twin" or "paper, real"."""
        return f"{self.profile}, {self.data}"


def data_kind(record: Mapping[str, Any]) -> str:
    """ "twin", "real" or "unknown": from the record's config `synthetic`, else a run name
    ending in "-twin" (the notebooks' `<profile>-<dataset>[-twin]`)."""
    synthetic = record.get("config", {}).get("synthetic")
    if synthetic is True or str(record.get("run", "")).endswith("-twin"):
        return "twin"
    return "real" if synthetic is False else "unknown"


def reproductions(records: Sequence[Mapping[str, Any]]) -> list[Reproduction]:
    """The reproduced rows of every record that has any, with their records' provenance.

    A record seen twice (the same stage, run and date: a published copy of a local run)
    counts once.

    Raises:
        ReportError: a record's metrics["reproduced"] is not a list of reproduced rows.
    """
    found, seen = [], set()
    for record in records:
        rows = record.get("metrics", {}).get(REPRODUCED_KEY)
        source = f"{record.get('stage')}/{record.get('run')}"
        if rows is None or (source, record.get("date")) in seen:
            continue
        seen.add((source, record.get("date")))
        if not isinstance(rows, list):
            raise ReportError(f"{source}: metrics[{REPRODUCED_KEY!r}] is not a list")
        for row in rows:
            try:
                found.append(Reproduction(
                    row["ref"], None if row["value"] is None else float(row["value"]),
                    METRIC_NAMES.get(row["metric"], row["metric"]), row["dataset"],
                    row["variant"], tuple(row["seeds"]), record.get("profile", "unknown"),
                    data_kind(record), source, record.get("command"), record.get("date"),
                    record.get("device"), record.get("git_commit"),
                ))  # fmt: skip
            except (KeyError, TypeError) as error:
                raise ReportError(f"{source}: a reproduced row lacks {error}: {row}") from None
    return found


def comparable(number: PaperNumber, run: Reproduction) -> bool:
    """Whether a run measures what the paper did: a value from the paper profile on real
    data, with the paper's metric on the paper's dataset."""
    return (run.value is not None and run.profile == "paper" and run.data == "real"
            and run.metric == number.metric and run.dataset == number.dataset)  # fmt: skip


def rank(number: PaperNumber, run: Reproduction) -> tuple[Any, ...]:
    """The sort key that picks the run a number shows (the largest wins; module docstring)."""
    return (run.value is not None, comparable(number, run), run.profile == "paper",
            run.data == "real", run.date or "", run.source)  # fmt: skip


@dataclass(frozen=True)
class ReportRow:
    """A paper number, the run chosen for it (None: not run) and how many others exist."""

    number: PaperNumber
    run: Reproduction | None
    others: int

    @property
    def delta(self) -> float | None:
        """reproduced - paper, for a comparable run only."""
        if self.run is None or not comparable(self.number, self.run):
            return None
        return self.run.value - self.number.value  # type: ignore[operator]


@dataclass(frozen=True)
class Report:
    """Every paper number with its chosen run, and the rows naming no number of the paper."""

    rows: list[ReportRow]
    unknown: list[Reproduction]
    profiles: tuple[str, ...]

    def counts(self) -> dict[str, int]:
        """numbers, comparable (with a delta), other (a value without one), not_run."""
        comparable_ = sum(row.delta is not None for row in self.rows)
        ran = sum(row.run is not None and row.run.value is not None for row in self.rows)
        return {"numbers": len(self.rows), "comparable": comparable_,
                "other": ran - comparable_, "not_run": len(self.rows) - ran}  # fmt: skip

    def summary(self) -> str:
        """One line: how many paper numbers are reproduced at the paper's scale, and how."""
        c = self.counts()
        return (f"{c['numbers']} paper numbers: {c['comparable']} reproduced at the paper's "
                f"scale (with a delta), {c['other']} by other runs (smoke or other data, "
                f"no delta), {c['not_run']} not run.")  # fmt: skip


def build_report(
    reference: Mapping[str, Any] | None = None,
    records: Sequence[Mapping[str, Any]] | None = None,
    *,
    profiles: Sequence[str] = ("smoke", "paper"),
) -> Report:
    """Pair every paper number with the run that reproduces it.

    Args:
        reference: `paper_reference()` (read from the checkout when None).
        records: metrics.json contents (default: `collect()`, every one under results/).
        profiles: the profiles whose records may fill a row ("paper" alone: a paper-only
            report).
    """
    reference = paper_reference() if reference is None else reference
    records = collect() if records is None else records
    runs = [run for run in reproductions(records) if run.profile in profiles]
    numbers = paper_numbers(reference)
    by_ref: dict[str, list[Reproduction]] = {}
    for run in runs:
        by_ref.setdefault(run.ref, []).append(run)
    rows = []
    for number in numbers:
        candidates = sorted(by_ref.get(number.ref, []), key=lambda r: rank(number, r))
        rows.append(ReportRow(number, candidates[-1] if candidates else None,
                              max(len(candidates) - 1, 0)))  # fmt: skip
    known = {number.ref for number in numbers}
    return Report(rows, [run for run in runs if run.ref not in known], tuple(profiles))
