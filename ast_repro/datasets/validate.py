"""`ast-repro validate-data DATAFILE`: check a json datafile before a long training run.

The original code finds a bad clip only when the data loader reaches it, possibly hours
into training (and a wrong sample rate not at all: it assumes 16 kHz, section 1.2). This
check reads every file's header (or decodes it with `--decode`) and reports missing or
unreadable files, a wrong sample rate, zero-length audio, labels absent from the label csv
and duplicate entries, then exits non-zero if anything is wrong.
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ast_repro.audio import TARGET_SAMPLE_RATE, AudioError, load_audio, read_audio_info
from ast_repro.cli import int_at_least
from ast_repro.datafiles import read_datafile, read_label_csv

LABEL_CSV_PATTERN = "*class_labels_indices*.csv"
# Problems printed one by one before the summary; the rest are only counted.
DEFAULT_MAX_LISTED = 20


@dataclass(frozen=True)
class Problem:
    """One bad entry: its position in the datafile, its audio path and what is wrong."""

    index: int
    wav: Path
    kind: str
    detail: str


@dataclass
class ValidationReport:
    """Outcome of `validate_datafile`."""

    datafile: Path
    label_csv: Path | None
    num_clips: int = 0
    total_seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self, *, max_listed: int = DEFAULT_MAX_LISTED) -> str:
        """Human-readable report: the first problems, then counts per kind."""
        bad = len({problem.index for problem in self.problems})
        labels = str(self.label_csv) if self.label_csv else "none found (labels not checked)"
        lines = [
            f"datafile:  {self.datafile}",
            f"label csv: {labels}",
            f"clips:     {self.num_clips} ({self.num_clips - bad} ok, {bad} with problems), "
            f"{self.total_seconds / 3600:.2f} h of audio",
        ]
        for problem in self.problems[:max_listed]:
            lines.append(
                f"  entry {problem.index}: {problem.wav}: {problem.kind}: {problem.detail}"
            )
        if len(self.problems) > max_listed:
            lines.append(f"  ... and {len(self.problems) - max_listed} more")
        for kind, count in sorted(Counter(p.kind for p in self.problems).items()):
            lines.append(f"{kind}: {count}")
        lines.append("OK" if self.ok else "PROBLEMS FOUND")
        return "\n".join(lines)


def find_label_csv(datafile: str | os.PathLike[str]) -> Path | None:
    """The single `*class_labels_indices*.csv` beside a datafile, or None (none or several)."""
    matches = sorted(Path(datafile).parent.glob(LABEL_CSV_PATTERN))
    return matches[0] if len(matches) == 1 else None


def validate_datafile(
    datafile: str | os.PathLike[str],
    *,
    label_csv: str | os.PathLike[str] | None = None,
    sample_rate: int = TARGET_SAMPLE_RATE,
    decode: bool = False,
) -> ValidationReport:
    """Check every entry of an AST json datafile.

    Args:
        datafile: the json datafile.
        label_csv: label csv to check labels against; default the single
            `*class_labels_indices*.csv` beside the datafile, if there is one.
        sample_rate: required sample rate in Hz (AST models expect 16 kHz).
        decode: decode every file fully (slower; also catches truncated or NaN audio).

    Returns:
        The report; `report.ok` is False when any problem was found.

    Raises:
        DatafileError: the datafile or label csv itself cannot be read.
    """
    datafile = Path(datafile)
    clips = read_datafile(datafile)
    csv_path = Path(label_csv) if label_csv is not None else find_label_csv(datafile)
    known = set(read_label_csv(csv_path).mids) if csv_path is not None else None
    report = ValidationReport(datafile=datafile, label_csv=csv_path, num_clips=len(clips))
    first_seen: dict[Path, int] = {}
    for i, clip in enumerate(clips):

        def flag(kind: str, detail: str, i: int = i, wav: Path = clip.wav) -> None:
            report.problems.append(Problem(i, wav, kind, detail))

        key = Path(os.path.normpath(clip.wav.absolute()))
        if key in first_seen:
            flag("duplicate", f"same file as entry {first_seen[key]}")
        first_seen.setdefault(key, i)
        if not clip.labels:
            flag("no labels", "the entry lists no label")
        elif known is not None:
            unknown = [mid for mid in clip.labels if mid not in known]
            if unknown:
                flag("unknown label", f"{', '.join(unknown)} not in {csv_path}")
        if not clip.wav.exists():
            flag("missing file", "not found")
            continue
        try:
            rate, frames, _ = read_audio_info(clip.wav)
        except AudioError as exc:
            flag("unreadable", exc.problem)
            continue
        if rate != sample_rate:
            flag("sample rate", f"{rate} Hz, expected {sample_rate} Hz")
        if frames == 0:
            flag("zero length", "the file holds no samples")
            continue
        if decode:
            try:
                load_audio(clip.wav, sample_rate=None)
            except AudioError as exc:
                flag("undecodable", exc.problem)
                continue
        report.total_seconds += frames / rate
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `ast-repro validate-data`."""
    parser.add_argument("datafile", type=Path, help="AST json datafile to check")
    parser.add_argument(
        "--labels",
        type=Path,
        default=None,
        help="label csv (default: the *class_labels_indices*.csv beside it)",
    )
    parser.add_argument(
        "--sample-rate",
        type=int_at_least(1),
        default=TARGET_SAMPLE_RATE,
        help="required sample rate in Hz (default 16000)",
    )
    parser.add_argument(
        "--decode",
        action="store_true",
        help="decode every file fully instead of reading headers only",
    )
    parser.add_argument(
        "--max-listed",
        type=int_at_least(0),
        default=DEFAULT_MAX_LISTED,
        help="problems printed one by one (the rest are counted)",
    )


def run(args: argparse.Namespace) -> int:
    """Print the report; exit status 0 if clean, 1 on problems (an unreadable datafile
    raises `DatafileError`, exit status 2)."""
    report = validate_datafile(
        args.datafile, label_csv=args.labels, sample_rate=args.sample_rate, decode=args.decode
    )
    print(report.summary(max_listed=args.max_listed))
    return 0 if report.ok else 1
