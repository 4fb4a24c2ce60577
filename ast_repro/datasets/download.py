"""Streaming HTTP downloads that resume after an interruption (original_ast.md sections 2.3-2.5).

The original recipes fetch their archives with `wget` and keep no checksum. Here a download
streams into `<dest>.part` beside the destination, resumes from the bytes already there with
an HTTP Range request, and is renamed over `dest` only once it is complete (and matches
`sha256` when one is given). `file://` URLs are copied, so a user with a local copy, and
the offline twins, go through the same function.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import socket
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from ast_repro.errors import AstReproError, RunFailed

# Bytes read per network call: large enough to keep the progress bar cheap.
CHUNK_SIZE = 1 << 20
# Seconds without any data before a stalled connection counts as interrupted.
DEFAULT_TIMEOUT_S = 60.0
# Resume attempts within one call; a later call resumes from the same `.part` file too.
DEFAULT_RETRIES = 3
PART_SUFFIX = ".part"
USER_AGENT = "ast-repro-downloader"

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_NETWORK_ERRORS = (
    urllib.error.URLError,
    http.client.HTTPException,
    ConnectionError,
    socket.timeout,
    TimeoutError,
)


class DownloadError(AstReproError, RuntimeError):
    """A download failed; the message names the URL and where to place the file by hand."""


class DownloadInterrupted(RunFailed, DownloadError):
    """The transfer broke off; the `.part` file is kept and the next run resumes it."""


def part_path(dest: str | os.PathLike[str]) -> Path:
    """The temporary file a download of `dest` streams into."""
    dest = Path(dest)
    return dest.with_name(dest.name + PART_SUFFIX)


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex sha256 digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_SIZE), b""):
            digest.update(block)
    return digest.hexdigest()


def _by_hand(url: str, dest: Path) -> str:
    return f"Without internet access, fetch {url} by hand and place it at {dest}."


def _finish(part: Path, dest: Path, url: str, sha256: str | None) -> Path:
    if sha256 is not None:
        actual = sha256_of(part)
        if actual != sha256.lower():
            part.unlink()
            raise DownloadError(
                f"{url}: sha256 mismatch for {dest} (expected {sha256}, got {actual}); "
                "the partial file was deleted, run the download again."
            )
    with open(part, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(part, dest)
    return dest


def _copy_local(url: str, dest: Path, part: Path, sha256: str | None) -> Path:
    source = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    if not source.is_file():
        raise DownloadError(f"{url}: local file {source} not found. {_by_hand(url, dest)}")
    shutil.copyfile(source, part)
    return _finish(part, dest, url, sha256)


def _open(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    headers = {"User-Agent": USER_AGENT}
    if offset > 0:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    return urllib.request.urlopen(request, timeout=timeout)


def _attempt(url: str, part: Path, timeout: float, progress: bool) -> None:
    """One request: append the missing bytes to `part`. Raises on an incomplete body."""
    offset = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, offset, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or offset == 0:
            raise
        # Nothing after `offset`: the part is complete if the server's total equals it,
        # otherwise it is stale (the file changed) and the download starts over.
        total = exc.headers.get("Content-Range", "").rpartition("/")[2]
        if total.isdigit() and int(total) == offset:
            return
        part.unlink()
        _attempt(url, part, timeout, progress)
        return
    with response:
        if response.status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if match is None or int(match.group(1)) != offset:
                raise DownloadError(f"{url}: the server answered a Range request inconsistently")
            total = None if match.group(3) == "*" else int(match.group(3))
            mode = "ab"
        else:
            # A plain 200 (no Range support, or a fresh start): begin from the first byte.
            offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None else None
            mode = "wb"
        with (
            open(part, mode) as handle,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name.removesuffix(PART_SUFFIX),
                disable=not progress,
                leave=False,
            ) as bar,
        ):
            for block in iter(lambda: response.read(CHUNK_SIZE), b""):
                handle.write(block)
                bar.update(len(block))
        size = part.stat().st_size
        if total is not None and size != total:
            raise DownloadInterrupted(f"{url}: connection closed after {size} of {total} bytes")


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    progress: bool = True,
    retries: int = DEFAULT_RETRIES,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """Download `url` to `dest`, resuming a previous partial download.

    Args:
        url: http(s) or file:// URL.
        dest: final path; its folder is created. An existing `dest` is kept as it is
            (checked against `sha256` when one is given).
        sha256: optional expected hex digest of the whole file.
        progress: show a tqdm progress bar in bytes.
        retries: extra resume attempts after an interrupted transfer within this call.
        timeout: seconds without data before the connection counts as interrupted.

    Returns:
        `dest`, complete.

    Raises:
        DownloadInterrupted: the network is unreachable or the transfer stayed incomplete
            after `retries` resumes (the `.part` file is kept for the next call).
        DownloadError: the server refused, the URL's scheme is not supported, or the digest
            does not match.
    """
    dest = Path(dest)
    if dest.exists():
        if sha256 is not None and sha256_of(dest) != sha256.lower():
            raise DownloadError(
                f"{dest} exists but does not match sha256 {sha256}; delete it and run again."
            )
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    scheme = urllib.parse.urlparse(url).scheme
    if scheme == "file":
        return _copy_local(url, dest, part, sha256)
    if scheme not in ("http", "https"):
        raise DownloadError(f"{url}: unsupported URL scheme {scheme!r} (use http, https or file)")
    last_error: Exception | None = None
    for _ in range(retries + 1):
        try:
            _attempt(url, part, timeout, progress)
            return _finish(part, dest, url, sha256)
        except urllib.error.HTTPError as exc:
            raise DownloadError(
                f"{url}: HTTP {exc.code} {exc.reason}. {_by_hand(url, dest)}"
            ) from None
        except DownloadInterrupted as exc:
            last_error = exc
        except _NETWORK_ERRORS as exc:
            last_error = exc
            if not part.exists() or part.stat().st_size == 0:
                break  # nothing arrived at all, most likely offline: retrying will not help
    have = part.stat().st_size if part.exists() else 0
    raise DownloadInterrupted(
        f"could not download {url} ({last_error}); {have} bytes are kept in {part} and the "
        f"next run resumes from there. {_by_hand(url, dest)}"
    )
