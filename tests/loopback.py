"""A loopback HTTP file server for the downloader tests.

Serves a folder on 127.0.0.1 (an ephemeral port) with HTTP Range support and validators
(a strong ETag from the content, Last-Modified from the file's mtime, If-Range honoured as
RFC 9110 section 13.1.5 says), and can be told to cut a file's first response short (to
test resuming), to serve a file with damaged bytes (to test corruption reports), to ignore
Range headers, to send no (or only weak) validators, to ignore If-Range, or to answer a
Range request from the wrong byte. Every request is logged.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

_RANGE = re.compile(r"bytes=(\d+)-$")


@dataclass
class ServerConfig:
    """What the server serves and how it misbehaves."""

    root: Path
    ranges: bool = True
    # path -> byte position at which the first response for that path is cut off
    cut_once: dict[str, int] = field(default_factory=dict)
    # paths whose bytes are damaged (a block in the middle is inverted)
    corrupt: set[str] = field(default_factory=set)
    # "strong": a strong ETag; "weak": a W/ ETag (unusable in If-Range); None: no ETag
    etag: str | None = "strong"
    last_modified: bool = True
    # evaluate If-Range (a server that ignores it serves the Range of whatever it has now)
    if_range: bool = True
    # answer every Range request with a 206 that starts at this byte instead
    range_start: int | None = None
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    # the If-Range header of every request, in order
    if_ranges: list[str | None] = field(default_factory=list)


def damage(data: bytes) -> bytes:
    """Invert 64 bytes in the middle of `data` (same length, different content)."""
    middle = len(data) // 2
    block = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    return data[:middle] + block + data[middle + 64 :]


def etag(data: bytes, kind: str = "strong") -> str:
    """The ETag the server sends for `data`: strong, or weak (`W/"..."`) when kind is "weak"."""
    tag = f'"{hashlib.sha256(data).hexdigest()[:16]}"'
    return "W/" + tag if kind == "weak" else tag


class _Handler(BaseHTTPRequestHandler):
    config: ServerConfig

    def _validators(self, data: bytes, file: Path) -> dict[str, str]:
        headers = {}
        if self.config.etag is not None:
            headers["ETag"] = etag(data, self.config.etag)
        if self.config.last_modified:
            headers["Last-Modified"] = formatdate(int(file.stat().st_mtime), usegmt=True)
        return headers

    def _if_range_holds(self, validators: dict[str, str]) -> bool:
        """RFC 9110 13.1.5: strong comparison for an ETag, exact match for a date."""
        value = self.headers.get("If-Range")
        if value is None or not self.config.if_range:
            return True
        if value.startswith(('"', "W/")):
            return not value.startswith("W/") and value == validators.get("ETag")
        modified = validators.get("Last-Modified")
        try:
            return modified is not None and (
                parsedate_to_datetime(value) == parsedate_to_datetime(modified)
            )
        except (TypeError, ValueError):
            return False

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (base signature)
        return  # keep test output clean

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        path = unquote(urlparse(self.path).path).lstrip("/")
        header = self.headers.get("Range")
        self.config.requests.append((path, header))
        self.config.if_ranges.append(self.headers.get("If-Range"))
        file = self.config.root / path
        if not file.is_file():
            self.send_error(404, "not found")
            return
        data = file.read_bytes()
        if path in self.config.corrupt:
            data = damage(data)
        validators = self._validators(data, file)
        start = 0
        match = _RANGE.match(header or "")
        if match and self.config.ranges and self._if_range_holds(validators):
            start = int(match.group(1))
            if self.config.range_start is not None:
                start = self.config.range_start
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                for name, value in validators.items():
                    self.send_header(name, value)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes" if self.config.ranges else "none")
        for name, value in validators.items():
            self.send_header(name, value)
        self.end_headers()
        cut = self.config.cut_once.pop(path, None)
        if cut is not None:
            self.wfile.write(body[: max(0, cut - start)])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@contextmanager
def serve(config: ServerConfig) -> Iterator[str]:
    """Serve `config.root` in a background thread; yields the base URL ending in '/'."""
    handler = type("Handler", (_Handler,), {"config": config})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host}:{port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
