"""The streaming downloader against a loopback HTTP server: full, resumed, failed downloads."""

from __future__ import annotations

import hashlib
import socket

import numpy as np
import pytest

from ast_repro.datasets.download import (
    ChecksumMismatch,
    DownloadError,
    download,
    part_path,
    sha256_of,
)
from tests.loopback import ServerConfig, serve

SIZE = 300_000  # bytes; several CHUNK_SIZE-independent reads, still instant


@pytest.fixture
def payload(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    data = np.random.default_rng(0).integers(0, 256, SIZE, dtype=np.uint8).tobytes()
    (served / "blob.bin").write_bytes(data)
    return served, data


def test_full_download_streams_to_dest_and_leaves_no_part(payload, tmp_path):
    served, data = payload
    config = ServerConfig(served)
    dest = tmp_path / "out" / "blob.bin"
    with serve(config) as base:
        assert download(base + "blob.bin", dest, progress=False) == dest
    assert dest.read_bytes() == data
    assert not part_path(dest).exists()
    assert config.requests == [("blob.bin", None)]


def test_interrupted_download_resumes_with_a_range_request(payload, tmp_path):
    served, data = payload
    config = ServerConfig(served, cut_once={"blob.bin": 100_000})
    dest = tmp_path / "blob.bin"
    with serve(config) as base:
        with pytest.raises(DownloadError, match="resumes") as info:
            download(base + "blob.bin", dest, progress=False, retries=0)
        assert str(dest) in str(info.value)
        assert part_path(dest).stat().st_size == 100_000
        assert not dest.exists()
        download(base + "blob.bin", dest, progress=False, retries=0)
    assert dest.read_bytes() == data
    assert config.requests == [("blob.bin", None), ("blob.bin", "bytes=100000-")]


def test_retries_resume_within_one_call(payload, tmp_path):
    served, data = payload
    config = ServerConfig(served, cut_once={"blob.bin": 123_457})
    dest = tmp_path / "blob.bin"
    with serve(config) as base:
        download(base + "blob.bin", dest, progress=False, retries=2)
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert config.requests[-1] == ("blob.bin", "bytes=123457-")


def test_server_without_range_support_restarts_from_zero(payload, tmp_path):
    served, data = payload
    config = ServerConfig(served, ranges=False)
    dest = tmp_path / "blob.bin"
    part_path(dest).write_bytes(b"stale bytes that must not be kept")
    with serve(config) as base:
        download(base + "blob.bin", dest, progress=False)
    assert dest.read_bytes() == data


def test_complete_part_file_is_finished_after_416(payload, tmp_path):
    served, data = payload
    config = ServerConfig(served, cut_once={"blob.bin": 100_000})
    dest = tmp_path / "blob.bin"
    with serve(config) as base:
        with pytest.raises(DownloadError):  # stores the validator of the first response
            download(base + "blob.bin", dest, progress=False, retries=0)
        part_path(dest).write_bytes(data)  # complete, but stopped before the rename
        download(base + "blob.bin", dest, progress=False)
    assert dest.read_bytes() == data
    assert config.requests == [("blob.bin", None), ("blob.bin", f"bytes={SIZE}-")]


def test_sha256_is_checked(payload, tmp_path):
    served, data = payload
    dest = tmp_path / "blob.bin"
    with serve(ServerConfig(served)) as base:
        with pytest.raises(ChecksumMismatch, match="sha256 mismatch"):
            download(base + "blob.bin", dest, progress=False, sha256="0" * 64)
        assert not dest.exists() and not part_path(dest).exists()
        good = hashlib.sha256(data).hexdigest()
        download(base + "blob.bin", dest, progress=False, sha256=good)
    assert sha256_of(dest) == good


def test_existing_file_is_kept_without_a_request(payload, tmp_path):
    served, _ = payload
    config = ServerConfig(served)
    dest = tmp_path / "blob.bin"
    dest.write_bytes(b"already here")
    with serve(config) as base:
        download(base + "blob.bin", dest, progress=False)
    assert dest.read_bytes() == b"already here"
    assert config.requests == []


def test_missing_file_on_server_names_the_url(payload, tmp_path):
    served, _ = payload
    with serve(ServerConfig(served)) as base:
        with pytest.raises(DownloadError, match="HTTP 404") as info:
            download(base + "nope.zip", tmp_path / "nope.zip", progress=False)
    assert base + "nope.zip" in str(info.value)


def test_offline_error_says_what_to_fetch_and_where(tmp_path):
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/master.zip"
    dest = tmp_path / "downloads" / "ESC-50-master.zip"
    with pytest.raises(DownloadError) as info:
        download(url, dest, progress=False, retries=1, timeout=5)
    message = str(info.value)
    assert url in message and f"place it at {dest}" in message
    assert "nothing arrived (no connection to the server?)" in message


def test_file_url_is_copied(payload, tmp_path):
    served, data = payload
    dest = tmp_path / "copy.bin"
    download((served / "blob.bin").as_uri(), dest, progress=False)
    assert dest.read_bytes() == data
    with pytest.raises(DownloadError, match="not found"):
        download((served / "absent.bin").as_uri(), tmp_path / "x.bin", progress=False)
