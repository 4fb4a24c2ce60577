"""Safe extraction: good archives extract; traversal, links and corruption are refused."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile

import pytest

from ast_repro.datasets.archive import ArchiveError, check_archive, safe_extract


def _zip(path, members):
    """members: (name, payload, unix mode or None)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, payload, mode in members:
            info = zipfile.ZipInfo(name)
            if mode is not None:
                info.external_attr = mode << 16
            zf.writestr(info, payload)
    return path


def _tar(path, members):
    """members: (name, payload, tar type, link target)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, payload, kind, link in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = link
            info.size = len(payload) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(payload) if kind == tarfile.REGTYPE else None)
    return path


def _files_under(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_zip_extracts_in_place(tmp_path):
    archive = _zip(
        tmp_path / "good.zip",
        [
            ("ESC-50-master/", b"", stat.S_IFDIR | 0o755),
            ("ESC-50-master/meta/esc50.csv", b"filename\n", stat.S_IFREG | 0o644),
            ("./ESC-50-master/audio/a.wav", b"RIFF", None),
        ],
    )
    target = tmp_path / "out"
    written = safe_extract(archive, target)
    assert _files_under(target) == ["ESC-50-master/audio/a.wav", "ESC-50-master/meta/esc50.csv"]
    assert (target / "ESC-50-master/meta/esc50.csv").read_bytes() == b"filename\n"
    assert sorted(p.relative_to(target).as_posix() for p in written) == _files_under(target)


def test_tar_gz_extracts_in_place(tmp_path):
    archive = _tar(
        tmp_path / "good.tar.gz",
        [
            ("./yes", b"", tarfile.DIRTYPE, ""),
            ("./yes/a_nohash_0.wav", b"RIFF....", tarfile.REGTYPE, ""),
            ("testing_list.txt", b"yes/a_nohash_0.wav\n", tarfile.REGTYPE, ""),
        ],
    )
    target = tmp_path / "sc"
    safe_extract(archive, target)
    assert _files_under(target) == ["testing_list.txt", "yes/a_nohash_0.wav"]
    assert (target / "yes/a_nohash_0.wav").read_bytes() == b"RIFF...."


@pytest.mark.parametrize(
    ("name", "mode", "reason"),
    [
        ("../evil.txt", None, "'..'"),
        ("data/../../evil.txt", None, "'..'"),
        ("/tmp/evil.txt", None, "absolute"),
        ("C:/evil.txt", None, "absolute"),
        ("link", stat.S_IFLNK | 0o777, "symbolic link"),
        ("fifo", stat.S_IFIFO | 0o644, "special file"),
    ],
)
def test_zip_unsafe_members_are_refused(tmp_path, name, mode, reason):
    archive = _zip(tmp_path / "bad.zip", [("ok.txt", b"fine", None), (name, b"../../x", mode)])
    target = tmp_path / "out"
    with pytest.raises(ArchiveError, match=reason) as info:
        safe_extract(archive, target)
    assert repr(name) in str(info.value)
    assert _files_under(tmp_path / "out") == []  # nothing extracted, not even ok.txt
    assert not (tmp_path / "evil.txt").exists()
    with pytest.raises(ArchiveError, match=reason):
        check_archive(archive)


@pytest.mark.parametrize(
    ("name", "kind", "link", "reason"),
    [
        ("../evil", tarfile.REGTYPE, "", "'..'"),
        ("/etc/evil", tarfile.REGTYPE, "", "absolute"),
        ("sym", tarfile.SYMTYPE, "/etc/passwd", "symbolic link"),
        ("relsym", tarfile.SYMTYPE, "../../outside", "symbolic link"),
        ("hard", tarfile.LNKTYPE, "ok.txt", "hard link"),
        ("dev", tarfile.CHRTYPE, "", "special file"),
    ],
)
def test_tar_unsafe_members_are_refused(tmp_path, name, kind, link, reason):
    members = [("ok.txt", b"fine", tarfile.REGTYPE, ""), (name, b"evil", kind, link)]
    archive = _tar(tmp_path / "bad.tar.gz", members)
    target = tmp_path / "out"
    with pytest.raises(ArchiveError, match=reason) as info:
        safe_extract(archive, target)
    assert repr(name) in str(info.value)
    assert _files_under(target) == []
    assert not (tmp_path / "evil").exists()


def test_corrupt_zip_is_reported_and_leaves_nothing(tmp_path):
    archive = _zip(tmp_path / "c.zip", [("a/data.bin", bytes(range(256)) * 400, None)])
    raw = bytearray(archive.read_bytes())
    middle = len(raw) // 3  # inside the compressed member data
    raw[middle : middle + 32] = bytes(b ^ 0xFF for b in raw[middle : middle + 32])
    archive.write_bytes(bytes(raw))
    target = tmp_path / "out"
    with pytest.raises(ArchiveError, match="corrupt"):
        safe_extract(archive, target)
    assert _files_under(target) == []


def test_truncated_tar_gz_is_reported(tmp_path):
    archive = _tar(
        tmp_path / "t.tar.gz", [("a.bin", bytes(range(256)) * 4000, tarfile.REGTYPE, "")]
    )
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(ArchiveError, match="corrupt|not a zip or tar"):
        safe_extract(archive, tmp_path / "out")
    out = tmp_path / "out"
    assert not out.exists() or _files_under(out) == []


def test_not_an_archive_is_reported(tmp_path):
    junk = tmp_path / "master.zip"
    junk.write_bytes(b"<html>rate limited</html>")
    with pytest.raises(ArchiveError, match="not a zip or tar archive"):
        safe_extract(junk, tmp_path / "out")
