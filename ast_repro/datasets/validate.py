"""`ast-repro validate-data DATAFILE`: check a json datafile before a long training run.

The original code finds a bad clip only when the data loader reaches it, possibly hours
into training. This command applies the rules every command applies (`ast_repro.checks`)
to every entry up front: it reads each file's header (and decodes float files, whose header
cannot rule out NaN or out-of-range samples; every file with `--decode`) and reports each
clip that training, evaluation or prediction would refuse, then exits 1 if there is any.
A malformed or empty datafile is an error (exit 2), as in every other command. Notes that do
not stop a run (clips resampled from another rate, multi-channel files of which the first
channel is used, duplicate entries) are counted after the problems.
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ast_repro.audio import TARGET_SAMPLE_RATE
from ast_repro.checks import check_clip, datafile_problems
from ast_repro.cli import int_at_least
from ast_repro.datafiles import read_label_csv

LABEL_CSV_PATTERN = "*class_labels_indices*.csv"
# Problems printed one by one before the summary; the rest are only counted.
DEFAULT_MAX_LISTED = 20


@dataclass(frozen=True)
class Problem:
    """One finding at an entry: its position in the datafile, its audio path and what it is."""

    index: int
    wav: Path
    kind: str
    detail: str


@dataclass
class ValidationReport:
    """Outcome of `validate_datafile`: problems (the commands refuse the clip) and notes."""

    datafile: Path
    label_csv: Path | None
    num_clips: int = 0
    total_seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self, *, max_listed: int = DEFAULT_MAX_LISTED) -> str:
        """Human-readable report: the first problems, counts per kind, then the notes."""
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
        for kind, count in sorted(Counter(n.kind for n in self.notes).items()):
            first = next(n for n in self.notes if n.kind == kind)
            lines.append(f"note: {kind}: {count} (e.g. entry {first.index}: {first.detail})")
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
    """Check every entry of an AST json datafile with the rules of `ast_repro.checks`.

    Args:
        datafile: the json datafile.
        label_csv: label csv to check labels against; default the single
            `*class_labels_indices*.csv` beside the datafile, if there is one.
        sample_rate: the model's sample rate in Hz, to which clips are resampled (AST
            models use 16 kHz); a clip at another rate is a note, not a problem.
        decode: decode every file fully (slower; also catches damaged compressed audio).

    Returns:
        The report; `report.ok` is False when any entry would be refused by the commands.

    Raises:
        DatafileError: the datafile or label csv cannot be read, or the datafile lists no
            clips.
    """
    datafile = Path(datafile)
    csv_path = Path(label_csv) if label_csv is not None else find_label_csv(datafile)
    labels = read_label_csv(csv_path) if csv_path is not None else None
    clips, entry_problems = datafile_problems(datafile, labels)
    report = ValidationReport(datafile=datafile, label_csv=csv_path, num_clips=len(clips))
    by_entry: dict[int, list[Problem]] = {}
    for index, problem in entry_problems:
        by_entry.setdefault(index, []).append(Problem(index, clips[index].wav, *problem))
    first_seen: dict[Path, int] = {}
    for i, clip in enumerate(clips):
        report.problems.extend(by_entry.get(i, []))
        key = Path(os.path.normpath(clip.wav.absolute()))
        if key in first_seen:
            report.notes.append(
                Problem(i, clip.wav, "duplicate", f"same file as entry {first_seen[key]}")
            )
        first_seen.setdefault(key, i)
        checked = check_clip(clip.wav, sample_rate=sample_rate, decode_all=decode)
        report.problems.extend(Problem(i, clip.wav, *p) for p in checked.problems)
        header = checked.header
        if header is None:
            continue
        if header.sample_rate != sample_rate:
            note = f"{header.sample_rate} Hz, resampled to {sample_rate} Hz"
            report.notes.append(Problem(i, clip.wav, "resampled", note))
        if header.channels > 1:
            note = f"{header.channels} channels, the first is used"
            report.notes.append(Problem(i, clip.wav, "multi-channel", note))
        report.total_seconds += header.seconds
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
        help="the model's sample rate in Hz, clips are resampled to it (default 16000)",
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
    """Print the report; exit status 0 if clean, 1 on problems (an unreadable or empty
    datafile raises `DatafileError`, exit status 2)."""
    report = validate_datafile(
        args.datafile, label_csv=args.labels, sample_rate=args.sample_rate, decode=args.decode
    )
    print(report.summary(max_listed=args.max_listed))
    return 0 if report.ok else 1
