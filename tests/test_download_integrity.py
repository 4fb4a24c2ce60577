"""Downloads cannot be spliced or swapped: If-Range resumes, checksums, AudioSet ids.

Against the loopback server (tests/loopback.py), which sends ETag and Last-Modified and
honours If-Range unless told otherwise.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import time
from email.utils import formatdate
from pathlib import Path

import numpy as np
import pytest

from ast_repro.datasets import cli as data_cli
from ast_repro.datasets.archive import ArchiveError
from ast_repro.datasets.audioset import (
    AUDIOSET_CSV_URL,
    SEGMENT_CSVS,
    AudioSetError,
    Segment,
    download_clips,
    prepare_audioset,
    read_segments,
)
from ast_repro.datasets.common import fetch
from ast_repro.datasets.download import (
    ChecksumMismatch,
    DownloadError,
    download,
    part_path,
    strong_validator,
    validator_path,
)
from ast_repro.datasets.esc50 import prepare_esc50
from ast_repro.datasets.registry import (
    KNOWN_FILES,
    RECORD_NAME,
    SPEECHCOMMANDS_ARCHIVE,
    BadChecksumRecord,
    KnownFile,
    digest_of,
    read_record,
)
from ast_repro.errors import EXIT_BAD_INPUT, EXIT_RUN_FAILED
from ast_repro.layout import AUDIOSET_LABEL_CSV
from tests import twin_cache
from tests.loopback import ServerConfig, etag, serve

SIZE = 300_000
CUT = 100_000
NAME = "blob.bin"
AN_HOUR_AGO = time.time() - 3600


def _bytes(seed: int, size: int = SIZE) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


@pytest.fixture
def served(tmp_path):
    folder = tmp_path / "served"
    folder.mkdir()
    (folder / NAME).write_bytes(_bytes(0))
    return folder


def _interrupted(base: str, dest: Path) -> None:
    """A first download cut off after CUT bytes (the server was told to cut it)."""
    with pytest.raises(DownloadError):
        download(base + NAME, dest, progress=False, retries=0)
    assert part_path(dest).stat().st_size == CUT


# Resuming -------------------------------------------------------------------------------


def test_resume_of_an_unchanged_file_continues_from_the_offset_with_if_range(served, tmp_path):
    config = ServerConfig(served, cut_once={NAME: CUT})
    dest = tmp_path / NAME
    with serve(config) as base:
        _interrupted(base, dest)
        assert validator_path(dest).is_file()
        download(base + NAME, dest, progress=False)
    assert dest.read_bytes() == _bytes(0)
    assert config.requests == [(NAME, None), (NAME, f"bytes={CUT}-")]
    assert config.if_ranges == [None, etag(_bytes(0))]  # the strong ETag is preferred
    assert not validator_path(dest).exists() and not part_path(dest).exists()


@pytest.mark.parametrize("new_size", [SIZE, SIZE + 5_000])
def test_resume_after_the_file_changed_restarts_instead_of_splicing(served, tmp_path, new_size):
    config = ServerConfig(served, cut_once={NAME: CUT})
    dest = tmp_path / NAME
    with serve(config) as base:
        _interrupted(base, dest)
        (served / NAME).write_bytes(_bytes(1, new_size))  # the server's file changes
        download(base + NAME, dest, progress=False)
    assert dest.read_bytes() == _bytes(1, new_size)  # the new file, not old head + new tail
    assert config.requests == [(NAME, None), (NAME, f"bytes={CUT}-")]
    assert config.if_ranges[1] == etag(_bytes(0))  # the server saw the old version's tag


def test_last_modified_is_the_validator_when_there_is_no_strong_etag(served, tmp_path):
    os.utime(served / NAME, (AN_HOUR_AGO, AN_HOUR_AGO))
    config = ServerConfig(served, etag="weak", cut_once={NAME: CUT})
    dest = tmp_path / NAME
    with serve(config) as base:
        _interrupted(base, dest)
        download(base + NAME, dest, progress=False)
        assert config.requests[-1] == (NAME, f"bytes={CUT}-")
        assert config.if_ranges[-1] == formatdate(int(AN_HOUR_AGO), usegmt=True)
        assert dest.read_bytes() == _bytes(0)
        # The same with a file changed between the two requests: a full new download.
        dest.unlink()
        config.cut_once[NAME] = CUT
        _interrupted(base, dest)
        (served / NAME).write_bytes(_bytes(2))
        os.utime(served / NAME, (AN_HOUR_AGO + 60, AN_HOUR_AGO + 60))
        download(base + NAME, dest, progress=False)
    assert dest.read_bytes() == _bytes(2)


def test_without_a_validator_a_partial_file_restarts_from_zero(served, tmp_path):
    # A weak ETag and a Last-Modified as recent as the response: nothing strong to send.
    config = ServerConfig(served, etag="weak", cut_once={NAME: CUT})
    dest = tmp_path / NAME
    with serve(config) as base:
        with pytest.raises(DownloadError, match="starts over"):
            download(base + NAME, dest, progress=False, retries=0)
        assert not validator_path(dest).exists()
        download(base + NAME, dest, progress=False)
        assert config.requests == [(NAME, None), (NAME, None)]
        # A part file from elsewhere (no stored validator) is not trusted either.
        other = tmp_path / "other.bin"
        part_path(other).write_bytes(_bytes(0)[:CUT])
        download(base + NAME, other, progress=False)
    assert config.requests[-1] == (NAME, None)
    assert dest.read_bytes() == other.read_bytes() == _bytes(0)


def test_a_206_from_another_version_or_byte_restarts(served, tmp_path):
    # A server that ignores If-Range serves the new file's tail: its ETag gives it away.
    config = ServerConfig(served, if_range=False, cut_once={NAME: CUT})
    dest = tmp_path / NAME
    with serve(config) as base:
        _interrupted(base, dest)
        (served / NAME).write_bytes(_bytes(3))
        download(base + NAME, dest, progress=False)
    assert dest.read_bytes() == _bytes(3)
    assert config.requests == [(NAME, None), (NAME, f"bytes={CUT}-"), (NAME, None)]
    # A 206 whose Content-Range does not start at the partial size.
    (served / NAME).write_bytes(_bytes(0))
    config = ServerConfig(served, range_start=0, cut_once={NAME: CUT})
    dest = tmp_path / "again.bin"
    with serve(config) as base:
        with pytest.raises(DownloadError):
            download(base + NAME, dest, progress=False, retries=0)
        download(base + NAME, dest, progress=False)
    assert dest.read_bytes() == _bytes(0)
    assert config.requests == [(NAME, None), (NAME, f"bytes={CUT}-"), (NAME, None)]


def test_strong_validator_follows_rfc_9110():
    now = time.time()
    assert strong_validator({"ETag": '"abc"', "Last-Modified": "x"}) == '"abc"'
    assert strong_validator({"ETag": 'W/"abc"'}) is None
    old = formatdate(now - 10, usegmt=True)
    headers = {"ETag": 'W/"abc"', "Last-Modified": old, "Date": formatdate(now, usegmt=True)}
    assert strong_validator(headers) == old
    same = formatdate(now, usegmt=True)
    assert strong_validator({"Last-Modified": same, "Date": same}) is None
    assert strong_validator({"Last-Modified": "not a date", "Date": same}) is None


# Checksums ------------------------------------------------------------------------------


def test_first_download_is_recorded_and_a_changed_file_is_refused(served, tmp_path):
    dest = tmp_path / "downloads" / NAME
    record = dest.parent / RECORD_NAME
    with serve(ServerConfig(served)) as base:
        fetch(base + NAME, dest, progress=False)
        entry = read_record(record)[NAME]
        assert (entry.size, entry.sha256) == (SIZE, digest_of(served / NAME).sha256)
        assert entry.url == base + NAME
        (served / NAME).write_bytes(_bytes(4))  # a mirror now serves something else
        with pytest.raises(ChecksumMismatch) as info:
            fetch(base + NAME, dest, progress=False, force=True)
        message = str(info.value)
        assert NAME in message and entry.sha256 in message
        assert digest_of(served / NAME).sha256 in message
        assert "--accept-new-checksum" in message and "not kept" in message
        assert "\n" not in message
        assert not dest.exists() and not part_path(dest).exists()
        assert read_record(record)[NAME].sha256 == entry.sha256  # the record is unchanged
        fetch(base + NAME, dest, progress=False, accept_new_checksum=True)
    assert read_record(record)[NAME].sha256 == digest_of(served / NAME).sha256
    assert ChecksumMismatch("x").exit_code == EXIT_BAD_INPUT
    assert DownloadError("x").exit_code == EXIT_RUN_FAILED


def test_a_damaged_copy_on_disk_is_refused_and_kept(served, tmp_path):
    dest = tmp_path / NAME
    with serve(ServerConfig(served)) as base:
        fetch(base + NAME, dest, progress=False)
        dest.write_bytes(dest.read_bytes()[:-1] + b"!")
        with pytest.raises(ChecksumMismatch, match=re.escape(f"Delete {dest}")):
            fetch(base + NAME, dest, progress=False)
    assert dest.exists()


@pytest.mark.parametrize("text", ["{", '{"blob.bin": {"size": 1}}', "[]"])
def test_a_damaged_record_is_named(served, tmp_path, text):
    dest = tmp_path / NAME
    (tmp_path / RECORD_NAME).write_text(text)
    with serve(ServerConfig(served)) as base, pytest.raises(BadChecksumRecord) as info:
        fetch(base + NAME, dest, progress=False)
    assert str(tmp_path / RECORD_NAME) in str(info.value) and "delete it" in str(info.value)
    assert info.value.exit_code == EXIT_BAD_INPUT


def test_a_published_checksum_applies_to_any_url(tmp_path):
    folder = tmp_path / "mirror"
    folder.mkdir()
    (folder / SPEECHCOMMANDS_ARCHIVE).write_bytes(b"not the real archive")
    dest = tmp_path / "downloads" / SPEECHCOMMANDS_ARCHIVE
    with serve(ServerConfig(folder)) as base, pytest.raises(ChecksumMismatch) as info:
        fetch(base + SPEECHCOMMANDS_ARCHIVE, dest, progress=False, accept_new_checksum=True)
    message = str(info.value)
    assert "expected 2,428,923,189" in message and KNOWN_FILES[dest.name].sha256 in message
    assert f"--url {KNOWN_FILES[dest.name].url}" in message
    assert not dest.exists() and not (dest.parent / RECORD_NAME).exists()


def test_registry_covers_every_download_over_https():
    names = {"ESC-50-master.zip", SPEECHCOMMANDS_ARCHIVE, AUDIOSET_LABEL_CSV}
    assert set(KNOWN_FILES) == names | set(SEGMENT_CSVS.values())
    assert all(entry.url.startswith("https://") for entry in KNOWN_FILES.values())
    assert AUDIOSET_CSV_URL.startswith("https://")
    for entry in KNOWN_FILES.values():  # a digest is a full lowercase sha256 or unknown
        assert entry.sha256 is None or re.fullmatch("[0-9a-f]{64}", entry.sha256)


def test_checksum_mismatch_leaves_no_extracted_files(tmp_path):
    archive = twin_cache.esc50_twin()
    wrong = KnownFile(archive.name, None, None, "0" * 64, "a test entry")
    root = tmp_path / "esc50"
    with pytest.raises(ChecksumMismatch, match="a test entry"):
        prepare_esc50(root, url=archive.as_uri(), progress=False, checksums={archive.name: wrong})
    assert not (root / "ESC-50-master").exists()
    assert not (root / "downloads" / archive.name).exists()
    assert not (root / "prepared.json").exists()


def test_data_command_reports_a_changed_mirror_in_one_line(tmp_path, capsys):
    archive = twin_cache.esc50_twin()
    folder = tmp_path / "served"
    folder.mkdir()
    shutil.copyfile(archive, folder / archive.name)
    root = tmp_path / "esc50"
    parser = argparse.ArgumentParser()
    data_cli.add_arguments(parser)
    with serve(ServerConfig(folder)) as base:
        argv = ["esc50", "--root", str(root), "--url", base + archive.name, "--no-progress"]
        assert data_cli.run(parser.parse_args([*argv, "--step", "download"])) == 0
        assert read_record(root / "downloads" / RECORD_NAME)[archive.name].sha256
        capsys.readouterr()
        data = bytearray(archive.read_bytes())
        data[100] ^= 0xFF
        (folder / archive.name).write_bytes(bytes(data))
        assert data_cli.run(parser.parse_args([*argv, "--force"])) != 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 1 and archive.name in lines[0] and "--accept-new-checksum" in lines[0]
    assert not (root / "ESC-50-master").exists()


def test_twin_record_is_checked_and_a_corrupt_archive_is_not_recorded(tmp_path):
    archive = twin_cache.esc50_twin()
    entry = twin_cache.checksums(archive)[archive.name]
    assert (entry.size, entry.sha256) == (archive.stat().st_size, digest_of(archive).sha256)
    folder = tmp_path / "served"
    folder.mkdir()
    shutil.copyfile(archive, folder / archive.name)
    root = tmp_path / "esc50"
    with serve(ServerConfig(folder, corrupt={archive.name})) as base:
        url = base + archive.name
        with pytest.raises(ChecksumMismatch, match="synthetic ESC-50 twin"):
            prepare_esc50(root, url=url, progress=False, checksums={archive.name: entry})
        # Without an entry, a corrupt archive fails to extract and is not recorded.
        with pytest.raises(ArchiveError):
            prepare_esc50(root, url=url, progress=False)
        assert archive.name not in read_record(root / "downloads" / RECORD_NAME)
    with serve(ServerConfig(folder)) as base:
        prepare_esc50(root, url=base + archive.name, progress=False, force=True)
    assert read_record(root / "downloads" / RECORD_NAME)[archive.name].sha256 == entry.sha256


# AudioSet ids ---------------------------------------------------------------------------


def _segments_csv(path: Path, ytid: str, start: str = "0.000", end: str = "10.000") -> Path:
    path.write_text(
        "# YTID, start_seconds, end_seconds, positive_labels\n"
        f'--4gqARaEJE, 0.000, 10.000, "/m/twin00"\n'
        f'{ytid}, {start}, {end}, "/m/twin00"\n'
    )
    return path


@pytest.mark.parametrize(
    "ytid", ["../../x", "../../abcde", "/etc/passwd", "Y--4gqARaEJE", "abc def_123", "é" * 11]
)
def test_a_segment_id_that_is_not_a_youtube_id_is_refused(tmp_path, ytid):
    csv = _segments_csv(tmp_path / "eval_segments.csv", ytid)
    with pytest.raises(AudioSetError, match=re.escape(f"{csv}:3: ") + ".* is not a YouTube id"):
        read_segments(csv)


def test_segment_ids_and_times_that_are_valid_pass(tmp_path):
    csv = _segments_csv(tmp_path / "eval_segments.csv", "a-Z_09xyzAB", "30.000", "40.000")
    assert [s.ytid for s in read_segments(csv)] == ["--4gqARaEJE", "a-Z_09xyzAB"]
    bad = _segments_csv(tmp_path / "bad.csv", "a-Z_09xyzAB", "nan", "10.000")
    with pytest.raises(AudioSetError, match=re.escape(f"{bad}:3: segment times")):
        read_segments(bad)


def test_a_bad_audioset_id_writes_nothing_outside_the_audio_folder(tmp_path):
    twin = twin_cache.audioset_twin()
    csvs = tmp_path / "served"
    shutil.copytree(twin / "csv", csvs)
    eval_csv = csvs / SEGMENT_CSVS["eval"]
    lines = eval_csv.read_text().splitlines()
    ytid = lines[3].split(",")[0]
    lines[3] = lines[3].replace(ytid, "../../x", 1)  # the first segment row
    eval_csv.write_text("\n".join(lines) + "\n")
    ran = tmp_path / "downloader_ran"
    fake = tmp_path / "fake_downloader.py"
    fake.write_text(
        "import pathlib, sys\n"
        f"pathlib.Path({str(ran)!r}).touch()\n"
        "pathlib.Path(sys.argv[1] + '.wav').write_bytes(b'RIFF')\n"
    )
    root = tmp_path / "as"
    before = set(tmp_path.rglob("*"))
    with pytest.raises(AudioSetError) as info:
        prepare_audioset(
            root,
            base_url=csvs.as_uri(),
            audio_dir=root / "audio",
            downloader=(sys.executable, str(fake), "{out}"),
            progress=False,
        )
    assert f"{root / 'csv' / SEGMENT_CSVS['eval']}:4:" in str(info.value)
    assert "'../../x' is not a YouTube id" in str(info.value)
    assert not ran.exists()
    assert not (tmp_path / "x.wav").exists() and not (root / "x.wav").exists()
    new = set(tmp_path.rglob("*")) - before
    assert all(p.is_relative_to(root) for p in new)
    assert not (root / "audio").exists() or not any((root / "audio").iterdir())
    command = (sys.executable, str(fake), "{out}")
    with pytest.raises(AudioSetError, match="not a YouTube id"):
        download_clips([Segment("../x", 0.0, 10.0, ())], root / "audio", command=command)
    assert not ran.exists()
