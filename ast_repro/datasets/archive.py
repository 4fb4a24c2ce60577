"""Safe extraction of the dataset archives (original `egs/esc50/prep_esc50.py`,
`egs/speechcommands/prep_sc.py`).

The original recipes run `unzip` and `tar -xzf` on whatever arrives. Here every member is
checked before anything is written: absolute names, `..` components, symbolic links, hard
links and device files are refused with an error naming the member, and a corrupt archive
(bad CRC, truncated stream) is reported as such instead of leaving half a dataset behind.
Members are written to a hidden staging folder inside the target and moved into place only
once the whole archive has been read.
"""

from __future__ import annotations

import gzip
import lzma
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from ast_repro.errors import AstReproError

# Read errors that mean the archive bytes are damaged rather than our code being wrong.
_CORRUPTION_ERRORS = (
    zipfile.BadZipFile,
    tarfile.TarError,
    zlib.error,
    gzip.BadGzipFile,
    lzma.LZMAError,
    EOFError,
)


class ArchiveError(AstReproError, ValueError):
    """An archive is corrupt or holds a member that would escape the target folder."""


def archive_kind(path: str | os.PathLike[str]) -> str:
    """The archive format, "zip" or "tar", read from the file's content (not its name).

    Raises:
        ArchiveError: the file is neither a zip nor a (compressed) tar archive.
    """
    path = Path(path)
    if not path.is_file():
        raise ArchiveError(f"{path}: archive not found")
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except _CORRUPTION_ERRORS:
        pass
    raise ArchiveError(
        f"{path}: not a zip or tar archive (corrupt or incomplete download?); "
        "delete it and download again"
    )


def _check_name(archive: Path, name: str) -> PurePosixPath:
    """The member's path relative to the target folder, or an error naming it."""
    normalized = name.replace("\\", "/")
    member = PurePosixPath(normalized)
    if member.is_absolute() or (len(normalized) > 1 and normalized[1] == ":"):
        raise ArchiveError(f"{archive}: refusing member {name!r}: absolute path")
    if ".." in member.parts:
        raise ArchiveError(f"{archive}: refusing member {name!r}: '..' leaves the target folder")
    parts = [part for part in member.parts if part not in ("", ".")]
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _zip_members(archive: Path, handle: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    members = handle.infolist()
    for info in members:
        _check_name(archive, info.filename)
        # Unix file type from the high 16 bits; 0 means a tool that records no type.
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind == stat.S_IFLNK:
            raise ArchiveError(f"{archive}: refusing member {info.filename!r}: symbolic link")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise ArchiveError(f"{archive}: refusing member {info.filename!r}: special file")
    return members


def _tar_members(archive: Path, handle: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members = handle.getmembers()
    for info in members:
        _check_name(archive, info.name)
        if info.issym():
            raise ArchiveError(f"{archive}: refusing member {info.name!r}: symbolic link")
        if info.islnk():
            raise ArchiveError(f"{archive}: refusing member {info.name!r}: hard link")
        if not (info.isfile() or info.isdir()):
            raise ArchiveError(f"{archive}: refusing member {info.name!r}: special file")
    return members


def _extract_zip(archive: Path, target: Path) -> list[Path]:
    written = []
    with zipfile.ZipFile(archive) as handle:
        members = _zip_members(archive, handle)
        bad = handle.testzip()
        if bad is not None:
            raise ArchiveError(f"{archive}: corrupt member {bad!r} (CRC mismatch)")
        for info in members:
            relative = _check_name(archive, info.filename)
            out = target / relative
            if info.is_dir():
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            with handle.open(info) as source, open(out, "wb") as sink:
                shutil.copyfileobj(source, sink)
            written.append(out)
    return written


def _extract_tar(archive: Path, target: Path) -> list[Path]:
    written = []
    with tarfile.open(archive) as handle:
        members = _tar_members(archive, handle)
        for info in members:
            relative = _check_name(archive, info.name)
            out = target / relative
            if info.isdir():
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            source = handle.extractfile(info)
            if source is None:
                raise ArchiveError(f"{archive}: cannot read member {info.name!r}")
            with source, open(out, "wb") as sink:
                shutil.copyfileobj(source, sink)
            if out.stat().st_size != info.size:
                raise ArchiveError(f"{archive}: member {info.name!r} is truncated")
            written.append(out)
    return written


def check_archive(archive: str | os.PathLike[str]) -> list[str]:
    """Check every member name and type without extracting anything.

    Returns:
        The member names, in archive order.

    Raises:
        ArchiveError: unsafe member (named in the message) or unreadable archive.
    """
    archive = Path(archive)
    kind = archive_kind(archive)
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as handle:
                return [info.filename for info in _zip_members(archive, handle)]
        with tarfile.open(archive) as handle:
            return [info.name for info in _tar_members(archive, handle)]
    except ArchiveError:
        raise
    except _CORRUPTION_ERRORS as exc:
        raise ArchiveError(
            f"{archive}: corrupt archive ({exc}); delete it and download again"
        ) from None


def safe_extract(archive: str | os.PathLike[str], target: str | os.PathLike[str]) -> list[Path]:
    """Extract a zip or tar(.gz) archive into `target` after checking every member.

    Members are first written to a hidden temporary folder inside `target`; on success its
    top-level entries are moved into `target` (replacing entries of the same name), so a
    corrupt archive leaves nothing behind.

    Args:
        archive: path of the archive; the format is detected from its content.
        target: folder to extract into.

    Returns:
        Paths of the extracted regular files under `target`.

    Raises:
        ArchiveError: unsafe member (absolute, `..`, link, special file; named in the
            message), or a corrupt or truncated archive.
    """
    archive, target = Path(archive), Path(target)
    kind = archive_kind(archive)
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target, prefix=".extract-"))
    try:
        extract = _extract_zip if kind == "zip" else _extract_tar
        try:
            written = extract(archive, staging)
        except ArchiveError:
            raise
        except _CORRUPTION_ERRORS as exc:
            raise ArchiveError(
                f"{archive}: corrupt archive ({type(exc).__name__}: {exc}); "
                "delete it and download again"
            ) from None
        for entry in sorted(staging.iterdir()):
            destination = target / entry.name
            if destination.exists():
                if destination.is_dir() and entry.is_dir():
                    shutil.rmtree(destination)
                else:
                    destination.unlink()
            os.replace(entry, destination)
        return [target / path.relative_to(staging) for path in written]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
