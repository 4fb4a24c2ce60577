"""The files the recipes download, with their expected size and SHA-256, and the local record.

The original recipes (`egs/esc50/prep_esc50.py`, `egs/speechcommands/prep_sc.py`; AudioSet
has none) check nothing. Here every downloaded file is checked after the download and
before it is extracted or read:

- against `KNOWN_FILES` where a size or digest is published (Speech Commands v0.02:
  torchaudio's `SPEECHCOMMANDS` checksum, and the size in TensorFlow Datasets' and ESPnet's
  recipes);
- else against the local record `checksums.json` beside the file, written after the first
  complete download (trust on first use): ESC-50's `master.zip` is GitHub's archive of a
  moving branch and the AudioSet csvs have no published digest, so `None` here means
  "unknown: recorded on first download", never a guessed value.

A synthetic twin writes its own record at generation (`write_twin_record`), and its
download is checked against that instead of the real archive's entry.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ast_repro.datasets.download import ChecksumMismatch, sha256_of
from ast_repro.errors import AstReproError
from ast_repro.fileio import atomic_write_json
from ast_repro.layout import AUDIOSET_LABEL_CSV

# The URL the original ESC-50 recipe fetches with wget (karoldvl is the old name of the
# karolpiczak account; GitHub redirects).
ESC50_URL = "https://github.com/karoldvl/ESC-50/archive/master.zip"
ESC50_ARCHIVE = "ESC-50-master.zip"
# The URL of the original Speech Commands recipe.
SPEECHCOMMANDS_URL = (
    "https://storage.googleapis.com/download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
)
SPEECHCOMMANDS_ARCHIVE = "speech_commands_v0.02.tar.gz"
# The folder of the official AudioSet csvs (research.google.com/audioset/download.html).
AUDIOSET_CSV_URL = "https://storage.googleapis.com/us_audioset/youtube_corpus/v1/csv/"
AUDIOSET_CSVS = (
    AUDIOSET_LABEL_CSV,
    "balanced_train_segments.csv",
    "eval_segments.csv",
    "unbalanced_train_segments.csv",
)
RECORD_NAME = "checksums.json"
ACCEPT_FLAG = "--accept-new-checksum"


@dataclass(frozen=True)
class KnownFile:
    """What a downloaded file must be: its size and SHA-256, where known, and their source.

    Attributes:
        name: file name in the dataset root (`downloads/` or `csv/`).
        url: the official URL, or None (a twin).
        size: bytes, or None when unknown.
        sha256: lowercase hex digest, or None when unknown.
        origin: where the values come from, for messages.
    """

    name: str
    url: str | None
    size: int | None
    sha256: str | None
    origin: str

    @property
    def is_known(self) -> bool:
        """Whether there is anything to check against."""
        return self.size is not None or self.sha256 is not None


@dataclass(frozen=True)
class Digest:
    """The observed size (bytes) and lowercase hex SHA-256 of a file."""

    size: int
    sha256: str


_NOT_PUBLISHED = "no published checksum: recorded on first download"
KNOWN_FILES: dict[str, KnownFile] = {
    entry.name: entry
    for entry in (
        KnownFile(
            ESC50_ARCHIVE,
            ESC50_URL,
            None,
            None,
            "GitHub's archive of a moving branch, no published checksum: recorded on first "
            "download",
        ),
        KnownFile(
            SPEECHCOMMANDS_ARCHIVE,
            SPEECHCOMMANDS_URL,
            2_428_923_189,
            "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
            "published: sha256 in torchaudio's SPEECHCOMMANDS, size in TensorFlow Datasets' "
            "and ESPnet's recipes",
        ),
        *(
            KnownFile(name, AUDIOSET_CSV_URL + name, None, None, _NOT_PUBLISHED)
            for name in AUDIOSET_CSVS
        ),
    )
}


def digest_of(path: str | os.PathLike[str]) -> Digest:
    """Size and SHA-256 of a file, read in chunks."""
    return Digest(os.path.getsize(path), sha256_of(path))


class BadChecksumRecord(AstReproError):
    """A `checksums.json` record is damaged."""


def _load(path: Path) -> dict[str, dict]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        raw = None
    fields = ("size", "sha256", "origin")
    if not isinstance(raw, dict) or not all(
        isinstance(item, dict) and all(key in item for key in fields) for item in raw.values()
    ):
        raise BadChecksumRecord(
            f"{path}: not a checksum record ({{name: {{size, sha256, url, origin}}}}); delete it "
            "to record the files again at their next download, or restore it"
        )
    return raw


def read_record(path: str | os.PathLike[str]) -> dict[str, KnownFile]:
    """Entries of a record file (a local `checksums.json` or a twin's) by file name; {} if none.

    Raises:
        BadChecksumRecord: the file is not a record.
    """
    return {
        name: KnownFile(name, item.get("url"), item["size"], item["sha256"], item["origin"])
        for name, item in _load(Path(path)).items()
    }


def write_record_entry(path: str | os.PathLike[str], name: str, entry: KnownFile) -> None:
    """Add or replace one entry of a record file, atomically.

    Raises:
        BadChecksumRecord: the existing file is not a record.
    """
    path = Path(path)
    raw = _load(path)
    raw[name] = {
        "size": entry.size,
        "sha256": entry.sha256,
        "url": entry.url,
        "origin": entry.origin,
    }
    atomic_write_json(path, dict(sorted(raw.items())))


def record_first_use(folder: Path, name: str, digest: Digest, url: str) -> None:
    """Write the observed digest of a verified-complete download to `folder/checksums.json`."""
    today = datetime.date.today().isoformat()
    origin = f"recorded at first use, from {url}, on {today} in {folder / RECORD_NAME}"
    entry = KnownFile(name, url, digest.size, digest.sha256, origin)
    write_record_entry(folder / RECORD_NAME, name, entry)


def write_twin_record(paths: Iterable[Path], record: Path, origin: str) -> dict[str, KnownFile]:
    """Record the digests of a twin's generated files, its own registry entries.

    Args:
        paths: the generated files (an archive, or AudioSet's csvs).
        record: the record file to write, e.g. `twin/checksums.json`.
        origin: e.g. "synthetic ESC-50 twin, seed 0".

    Returns:
        The entries written, by file name.
    """
    record.unlink(missing_ok=True)
    for path in paths:
        digest = digest_of(path)
        entry = KnownFile(path.name, None, digest.size, digest.sha256, origin)
        write_record_entry(record, path.name, entry)
    return read_record(record)


def verify(
    digest: Digest,
    expected: KnownFile,
    *,
    dest: Path,
    url: str,
    fresh: bool,
    recorded: bool,
) -> None:
    """Compare a file's digest with what is expected of it.

    Args:
        digest: what the file is.
        expected: what it must be; fields that are None are not checked.
        dest: where the file is (or was going to be) kept.
        url: where it was downloaded from.
        fresh: True for bytes that just arrived (they are not kept when rejected).
        recorded: True when `expected` is the local first-use record, which a legitimate
            upstream update can make stale (then `--accept-new-checksum` applies).

    Raises:
        ChecksumMismatch: one message naming the file, expected vs got and what to do.
    """
    problems = []
    if expected.size is not None and digest.size != expected.size:
        problems.append(f"size {digest.size:,} bytes, expected {expected.size:,}")
    if expected.sha256 is not None and digest.sha256 != expected.sha256.lower():
        problems.append(f"sha256 {digest.sha256}, expected {expected.sha256}")
    if not problems:
        return
    official = KNOWN_FILES[dest.name].url if recorded and dest.name in KNOWN_FILES else expected.url
    source = f" from the official source (--url {official})" if official else ""
    if fresh:
        advice = f"The download was not kept; download it again{source}"
    else:
        advice = f"Delete {dest} and download it again{source}"
    if recorded:
        advice += (
            f", or, if the file was updated upstream, run again with {ACCEPT_FLAG} to record "
            "its new checksum"
        )
    raise ChecksumMismatch(
        f"{dest.name} from {url} has {' and '.join(problems)} ({expected.origin}): it is not "
        f"the expected file (another mirror's copy, a file changed on the server or a damaged "
        f"copy). {advice}."
    )


def expected_entry(
    name: str, folder: Path, checksums: Mapping[str, KnownFile] | None = None
) -> tuple[KnownFile | None, bool]:
    """What a file named `name` in `folder` is checked against.

    Args:
        name: the file's name.
        folder: its folder, which holds the local record.
        checksums: entries that replace `KNOWN_FILES` (a twin's record); None for the registry.

    Returns:
        (entry, recorded): the published (or twin) entry when it knows a size or digest,
        else the local record's entry (recorded=True), else (None, False): first use.
    """
    known = (KNOWN_FILES if checksums is None else checksums).get(name)
    if known is not None and known.is_known:
        return known, False
    recorded = read_record(folder / RECORD_NAME).get(name)
    return (recorded, True) if recorded is not None else (None, False)
