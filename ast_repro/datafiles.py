"""AST datafiles: the json list of clips and the label csv (original `src/dataloader.py`).

A datafile is `{"data": [{"wav": path, "labels": "mid1,mid2"}, ...]}`; extra keys per
entry are kept but ignored. A label csv has the header `index,mid,display_name` and one
row per class, in index order. Relative `wav` paths are resolved against the datafile's
folder, so a prepared dataset can be moved as a whole.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ast_repro.errors import AstReproError
from ast_repro.fileio import atomic_write_json, atomic_write_text

LABEL_CSV_HEADER = ("index", "mid", "display_name")


class DatafileError(AstReproError, ValueError):
    """A datafile or label csv is malformed; the message names the file and the problem."""


@dataclass(frozen=True)
class Clip:
    """One entry of a datafile: an audio file and its label ids (mids)."""

    wav: Path
    labels: tuple[str, ...]


@dataclass(frozen=True)
class LabelMap:
    """The classes of a dataset, in index order."""

    mids: tuple[str, ...]
    names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.mids)

    def index(self, mid: str) -> int:
        try:
            return self._lookup[mid]
        except KeyError:
            raise KeyError(f"label {mid!r} is not in the label csv") from None

    @property
    def _lookup(self) -> dict[str, int]:
        cached = self.__dict__.get("_lookup_cache")
        if cached is None:
            cached = {mid: i for i, mid in enumerate(self.mids)}
            object.__setattr__(self, "_lookup_cache", cached)
        return cached

    def name_of(self, mid: str) -> str:
        return self.names[self.index(mid)]


def _read_text(path: Path, what: str) -> str:
    """The UTF-8 text of a datafile or label csv; a DatafileError names what went wrong."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatafileError(f"{path}: {what} not found") from None
    except UnicodeDecodeError:
        raise DatafileError(f"{path}: not a UTF-8 text file (is it the {what}?)") from None
    except OSError as exc:
        raise DatafileError(f"{path}: cannot read the {what} ({exc.strerror})") from None


def read_datafile(path: str | os.PathLike[str]) -> list[Clip]:
    """Read an AST json datafile.

    Raises:
        DatafileError: the file is missing or unreadable, is not json, or an entry lacks
            `wav`/`labels` or holds something other than strings there.
    """
    path = Path(path)
    try:
        payload = json.loads(_read_text(path, "datafile"))
    except json.JSONDecodeError as exc:
        raise DatafileError(f"{path}: not valid json ({exc})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise DatafileError(f'{path}: expected an object {{"data": [...]}}')
    clips = []
    for i, entry in enumerate(payload["data"]):
        if not isinstance(entry, dict) or "wav" not in entry or "labels" not in entry:
            raise DatafileError(f"{path}: entry {i} needs the keys 'wav' and 'labels'")
        for key in ("wav", "labels"):
            if not isinstance(entry[key], str):
                raise DatafileError(
                    f"{path}: entry {i}: '{key}' must be a string, got {entry[key]!r}"
                )
        labels = tuple(mid.strip() for mid in str(entry["labels"]).split(",") if mid.strip())
        wav = Path(entry["wav"])
        if not wav.is_absolute():
            wav = path.parent / wav
        clips.append(Clip(wav=wav, labels=labels))
    return clips


def write_datafile(
    path: str | os.PathLike[str], entries: list[dict[str, Any]] | list[Clip]
) -> None:
    """Write an AST json datafile atomically.

    Args:
        path: destination.
        entries: `Clip`s, or dicts with at least `wav` and `labels` (a str or a list of mids).
    """
    rows = []
    for entry in entries:
        if isinstance(entry, Clip):
            entry = {"wav": str(entry.wav), "labels": list(entry.labels)}
        labels = entry["labels"]
        row = dict(entry)
        row["wav"] = str(entry["wav"])
        row["labels"] = labels if isinstance(labels, str) else ",".join(labels)
        rows.append(row)
    atomic_write_json(path, {"data": rows}, indent=1)


def read_label_csv(path: str | os.PathLike[str]) -> LabelMap:
    """Read a label csv (`index,mid,display_name`).

    Raises:
        DatafileError: missing or unreadable file, wrong header, indices not 0..n-1 in order,
            duplicate mids.
    """
    path = Path(path)
    text = _read_text(path, "label csv")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(col.strip() for col in rows[0]) != LABEL_CSV_HEADER:
        raise DatafileError(f"{path}: the header must be {','.join(LABEL_CSV_HEADER)}")
    mids, names = [], []
    for line_no, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != 3:
            raise DatafileError(f"{path}:{line_no}: expected 3 columns, got {len(row)}")
        index, mid, name = (col.strip() for col in row)
        if index != str(len(mids)):
            raise DatafileError(f"{path}:{line_no}: index {index} out of order")
        if mid in mids:
            raise DatafileError(f"{path}:{line_no}: duplicate label id {mid!r}")
        mids.append(mid)
        names.append(name)
    if not mids:
        raise DatafileError(f"{path}: no classes")
    return LabelMap(mids=tuple(mids), names=tuple(names))


def write_label_csv(path: str | os.PathLike[str], labels: LabelMap) -> None:
    """Write a label csv atomically, quoting display names that contain commas."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(LABEL_CSV_HEADER)
    for i, (mid, name) in enumerate(zip(labels.mids, labels.names, strict=True)):
        writer.writerow([i, mid, name])
    atomic_write_text(path, buffer.getvalue())


def label_indices(clip: Clip, labels: LabelMap) -> list[int]:
    """Indices of a clip's labels (the positions set to 1.0 in its target vector)."""
    return [labels.index(mid) for mid in clip.labels]


def clip_label_indices(
    clips: Sequence[Clip], labels: LabelMap, *, source: str = ""
) -> list[list[int]]:
    """Class indices of every clip (the positions set to 1.0 in its target).

    Raises:
        DatafileError: a clip has a label id that the label csv lacks (names `source`).
    """
    indices = []
    for i, clip in enumerate(clips):
        try:
            indices.append(label_indices(clip, labels))
        except KeyError as exc:
            raise DatafileError(f"{source}: entry {i} ({clip.wav}): {exc.args[0]}") from None
    return indices
