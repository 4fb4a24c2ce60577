"""Atomic file writes: a crash leaves either the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from ast_repro.errors import AstReproError


class FileWriteError(AstReproError, OSError):
    """An output path cannot be written (a folder, a read-only place); the message names it."""


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[TextIO | BinaryIO]:
    """Open a temporary file beside `path`; on success fsync it and rename it over `path`.

    Args:
        path: final destination. Its folder is created if missing.
        mode: "w" (text, UTF-8) or "wb" (binary).

    Raises:
        FileWriteError: the folder cannot be made or `path` cannot be replaced (e.g. it is
            a folder).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open supports modes 'w' and 'wb', not {mode!r}")
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise FileWriteError(f"{path}: cannot write there ({exc.strerror})") from None
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.replace(tmp_name, path)
        except OSError as exc:
            raise FileWriteError(f"{path}: cannot write there ({exc.strerror})") from None
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_open(path, "w") as handle:
        handle.write(text)


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, indent: int = 2) -> None:
    """Write `obj` as JSON to `path` atomically (keys kept in insertion order)."""
    atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


def atomic_save(path: str | os.PathLike[str], save: Callable[[BinaryIO], None]) -> None:
    """Call `save(handle)` on a binary temp file and rename it to `path`.

    Used for checkpoints: `atomic_save(p, lambda f: torch.save(state, f))`.
    """
    with atomic_open(path, "wb") as handle:
        save(handle)  # type: ignore[arg-type]
