"""A loopback HTTP file server for the downloader tests.

Serves a folder on 127.0.0.1 (an ephemeral port) with HTTP Range support, and can be told
to cut a file's first response short (to test resuming), to serve a file with damaged
bytes (to test corruption reports) or to ignore Range headers. Every request is logged.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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
    requests: list[tuple[str, str | None]] = field(default_factory=list)


def damage(data: bytes) -> bytes:
    """Invert 64 bytes in the middle of `data` (same length, different content)."""
    middle = len(data) // 2
    block = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    return data[:middle] + block + data[middle + 64 :]


class _Handler(BaseHTTPRequestHandler):
    config: ServerConfig

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (base signature)
        return  # keep test output clean

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        path = unquote(urlparse(self.path).path).lstrip("/")
        header = self.headers.get("Range")
        self.config.requests.append((path, header))
        file = self.config.root / path
        if not file.is_file():
            self.send_error(404, "not found")
            return
        data = file.read_bytes()
        if path in self.config.corrupt:
            data = damage(data)
        start = 0
        match = _RANGE.match(header or "")
        if match and self.config.ranges:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes" if self.config.ranges else "none")
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
