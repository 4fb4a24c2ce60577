"""Streaming HTTP downloads that resume after an interruption without splicing two files.

The original recipes (`egs/esc50/prep_esc50.py`, `egs/speechcommands/prep_sc.py`) fetch
their archives with `wget` and keep no checksum. Here a download streams into
`<dest>.part` beside the destination and is renamed over `dest` only once it is complete
and the caller's `check` accepts it. `file://` URLs are copied, so a user with a local copy,
and the offline twins, go through the same function.

Resuming uses the validators HTTP offers (RFC 9110 sections 8.8 and 13.1.5): the first
response's validator (a strong ETag, else a Last-Modified date that is itself strong) is
stored beside the part file in `<dest>.part.json`, and a resume sends `Range` together with
`If-Range` set to it. A server whose file changed since then answers 200 with the whole new
file, and the download starts over from the first byte instead of joining the old head to
the new tail; so does a 206 answer that starts anywhere but at the partial size, or one
that names another validator or total size. A partial file without a stored validator (the
server sent none, or the part came from elsewhere) is never resumed: it is restarted from
zero, because nothing could tell whether the server still holds the bytes it began with.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from pathlib import Path

from tqdm import tqdm

from ast_repro.errors import AstReproError, RunFailed
from ast_repro.fileio import atomic_write_json

# Bytes read per network call: large enough to keep the progress bar cheap.
CHUNK_SIZE = 1 << 20
# Seconds without any data before a stalled connection counts as interrupted.
DEFAULT_TIMEOUT_S = 60.0
# Resume attempts within one call; a later call resumes from the same `.part` file too.
DEFAULT_RETRIES = 3
PART_SUFFIX = ".part"
VALIDATOR_SUFFIX = ".json"
USER_AGENT = "ast-repro-downloader"
# A Last-Modified date is a strong validator only if the response was sent at least this
# many seconds after it (RFC 9110 section 8.8.2.2): the file cannot change twice unseen.
_STRONG_DATE_MARGIN_S = 1.0

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_NETWORK_ERRORS = (
    urllib.error.URLError,
    http.client.HTTPException,
    ConnectionError,
    socket.timeout,
    TimeoutError,
)

# `check(path, fresh)` inspects a complete file and raises to reject it: `fresh` is True for
# the `.part` file of a new download (deleted when rejected), False for an existing `dest`.
Check = Callable[[Path, bool], None]


class DownloadError(AstReproError, RuntimeError):
    """A download failed; the message names the URL and where to place the file by hand."""


class ChecksumMismatch(AstReproError):
    """A downloaded or existing file is not the one expected (size or sha256 differ)."""


class DownloadInterrupted(RunFailed, DownloadError):
    """The transfer broke off; the `.part` file is kept and the next run resumes it."""


def part_path(dest: str | os.PathLike[str]) -> Path:
    """The temporary file a download of `dest` streams into."""
    dest = Path(dest)
    return dest.with_name(dest.name + PART_SUFFIX)


def validator_path(dest: str | os.PathLike[str]) -> Path:
    """Where the validator of a partial download of `dest` is kept (`<dest>.part.json`)."""
    part = part_path(dest)
    return part.with_name(part.name + VALIDATOR_SUFFIX)


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex sha256 digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_SIZE), b""):
            digest.update(block)
    return digest.hexdigest()


def strong_validator(headers: Mapping[str, str]) -> str | None:
    """The `If-Range` value a response's headers allow, or None when they hold no strong one.

    A strong ETag is preferred (a weak `W/"..."` one may not be used in If-Range); else the
    Last-Modified date, if the response's Date is at least a second later (RFC 9110
    section 8.8.2.2).

    Args:
        headers: response headers (case-insensitive mapping, e.g. `http.client.HTTPMessage`).

    Returns:
        The validator as sent in the header, or None.
    """
    etag = (headers.get("ETag") or "").strip()
    if etag.startswith('"'):
        return etag
    last_modified = (headers.get("Last-Modified") or "").strip()
    try:
        sent = parsedate_to_datetime(headers.get("Date") or "")
        modified = parsedate_to_datetime(last_modified)
        margin = (sent - modified).total_seconds()
    except (TypeError, ValueError):
        return None
    return last_modified if margin >= _STRONG_DATE_MARGIN_S else None


def _by_hand(url: str, dest: Path) -> str:
    return f"Without internet access, fetch {url} by hand and place it at {dest}."


def discard_partial(dest: str | os.PathLike[str]) -> None:
    """Delete a partial download of `dest`: its `.part` file and its stored validator."""
    _discard(part_path(dest))


def _discard(part: Path) -> None:
    part.unlink(missing_ok=True)
    part.with_name(part.name + VALIDATOR_SUFFIX).unlink(missing_ok=True)


def _read_validator(part: Path, url: str) -> dict[str, object] | None:
    try:
        stored = json.loads(part.with_name(part.name + VALIDATOR_SUFFIX).read_text("utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if not isinstance(stored, dict) or stored.get("url") != url:
        return None
    return stored if isinstance(stored.get("if_range"), str) else None


def _write_validator(part: Path, url: str, validator: str | None, total: int | None) -> None:
    path = part.with_name(part.name + VALIDATOR_SUFFIX)
    if validator is None:
        path.unlink(missing_ok=True)
    else:
        atomic_write_json(path, {"url": url, "if_range": validator, "size": total})


def _sha256_check(url: str, dest: Path, sha256: str) -> Check:
    def check(path: Path, fresh: bool) -> None:
        actual = sha256_of(path)
        if actual != sha256.lower():
            what = "the download was deleted, run it again" if fresh else "delete it and run again"
            raise ChecksumMismatch(
                f"{url}: sha256 mismatch for {dest} (expected {sha256}, got {actual}); {what}."
            )

    return check


def _both(first: Check, second: Check | None) -> Check:
    def check(path: Path, fresh: bool) -> None:
        first(path, fresh)
        if second is not None:
            second(path, fresh)

    return check


def _finish(part: Path, dest: Path, check: Check | None) -> Path:
    if check is not None:
        try:
            check(part, True)
        except AstReproError:
            _discard(part)
            raise
    with open(part, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(part, dest)
    _discard(part)  # the validator
    return dest


def _copy_local(url: str, dest: Path, part: Path, check: Check | None) -> Path:
    source = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    if not source.is_file():
        raise DownloadError(f"{url}: local file {source} not found. {_by_hand(url, dest)}")
    _discard(part)
    shutil.copyfile(source, part)
    return _finish(part, dest, check)


def _open(url: str, offset: int, if_range: str | None, timeout: float) -> http.client.HTTPResponse:
    headers = {"User-Agent": USER_AGENT}
    if offset > 0 and if_range is not None:
        headers["Range"] = f"bytes={offset}-"
        headers["If-Range"] = if_range
    request = urllib.request.Request(url, headers=headers)
    return urllib.request.urlopen(request, timeout=timeout)


def _continues(response: http.client.HTTPResponse, offset: int, stored: dict) -> bool:
    """Whether a 206 answer continues the stored partial file exactly."""
    if _range_start(response) != offset:
        return False
    validator = strong_validator(response.headers)
    if validator is not None and validator != stored.get("if_range"):
        return False  # a server that ignored If-Range but names another version
    total = _range_total(response)
    return total is None or stored.get("size") in (None, total)


def _range_start(response: http.client.HTTPResponse) -> int | None:
    match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
    return None if match is None else int(match.group(1))


def _range_total(response: http.client.HTTPResponse) -> int | None:
    total = response.headers.get("Content-Range", "").rpartition("/")[2]
    return int(total) if total.isdigit() else None


def _attempt(url: str, part: Path, timeout: float, progress: bool) -> None:
    """One request: append the missing bytes to `part`. Raises on an incomplete body."""
    offset = part.stat().st_size if part.exists() else 0
    stored = _read_validator(part, url) if offset > 0 else None
    if stored is None and offset > 0:
        # NOTE: without a validator a resume could splice two versions of the file, so the
        # partial bytes are dropped and the download restarts from zero.
        _discard(part)
        offset = 0
    if_range = stored["if_range"] if stored is not None else None
    try:
        response = _open(url, offset, if_range, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or offset == 0:
            raise
        # Nothing after `offset` of the same version: the part is complete if the server's
        # total equals it, otherwise it is stale and the download starts over.
        total = exc.headers.get("Content-Range", "").rpartition("/")[2]
        if total.isdigit() and int(total) == offset:
            return
        _discard(part)
        _attempt(url, part, timeout, progress)
        return
    with response:
        if response.status == 206 and offset > 0:
            restart = not _continues(response, offset, stored or {})
            mode, total = "ab", _range_total(response)
        else:
            # A plain 200: the file changed since the part began, the server has no Range
            # support, or this is a fresh start. The whole body follows.
            if response.status == 206 and _range_start(response) != 0:
                raise DownloadError(f"{url}: the server sent a part of the file unasked")
            restart, mode, offset = False, "wb", 0
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None else None
            _write_validator(part, url, strong_validator(response.headers), total)
        if not restart:
            _stream(response, part, mode, offset, total, progress)
    if restart:  # a 206 that does not continue our bytes: never splice, start over
        _discard(part)
        _attempt(url, part, timeout, progress)
        return
    size = part.stat().st_size
    if total is not None and size != total:
        raise DownloadInterrupted(f"{url}: connection closed after {size} of {total} bytes")


def _stream(
    response: http.client.HTTPResponse,
    part: Path,
    mode: str,
    offset: int,
    total: int | None,
    progress: bool,
) -> None:
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


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    check: Check | None = None,
    progress: bool = True,
    retries: int = DEFAULT_RETRIES,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """Download `url` to `dest`, resuming a previous partial download of the same version.

    Args:
        url: http(s) or file:// URL.
        dest: final path; its folder is created. An existing `dest` is kept as it is (and
            checked when `sha256` or `check` is given).
        sha256: optional expected hex digest of the whole file.
        check: optional `check(path, fresh)` that raises an `AstReproError` to reject a
            complete file: the `.part` file of a new download (`fresh`, deleted when
            rejected, so `dest` never holds rejected bytes) or an existing `dest` (kept).
        progress: show a tqdm progress bar in bytes.
        retries: extra resume attempts after an interrupted transfer within this call.
        timeout: seconds without data before the connection counts as interrupted.

    Returns:
        `dest`, complete.

    Raises:
        DownloadInterrupted: the network is unreachable or the transfer stayed incomplete
            after `retries` resumes (the `.part` file and its validator are kept for the next
            call).
        DownloadError: the server refused or the URL's scheme is not supported.
        ChecksumMismatch: the file does not match `sha256`.
        AstReproError: whatever `check` raises.
    """
    dest = Path(dest)
    if sha256 is not None:
        check = _both(_sha256_check(url, dest, sha256), check)
    if dest.exists():
        if check is not None:
            check(dest, False)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    scheme = urllib.parse.urlparse(url).scheme
    if scheme == "file":
        return _copy_local(url, dest, part, check)
    if scheme not in ("http", "https"):
        raise DownloadError(f"{url}: unsupported URL scheme {scheme!r} (use http, https or file)")
    last_error: Exception | None = None
    for _ in range(retries + 1):
        try:
            _attempt(url, part, timeout, progress)
        except urllib.error.HTTPError as exc:
            raise DownloadError(
                f"{url}: HTTP {exc.code} {exc.reason}. {_by_hand(url, dest)}"
            ) from None
        except DownloadInterrupted as exc:
            last_error = exc
            continue
        except _NETWORK_ERRORS as exc:
            last_error = exc
            if not part.exists() or part.stat().st_size == 0:
                break  # nothing arrived at all, most likely offline: retrying will not help
            continue
        return _finish(part, dest, check)
    have = part.stat().st_size if part.exists() else 0
    if have == 0:
        kept = "nothing arrived (no connection to the server?)"
    elif _read_validator(part, url) is not None:
        kept = f"{have} bytes are kept in {part} and the next run resumes from there"
    else:
        kept = "the server sent no validator (ETag or Last-Modified), so the next run starts over"
    raise DownloadInterrupted(
        f"could not download {url} ({last_error}); {kept}. {_by_hand(url, dest)}"
    )
