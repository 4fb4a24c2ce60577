"""`ast-repro data NAME`: get a dataset (real or its offline twin) and prepare its datafiles.

`fetch` runs download -> verify -> extract -> prepare for one dataset, as the original
recipes' preparation scripts do (`egs/esc50/prep_esc50.py`, `egs/speechcommands/prep_sc.py`,
AudioSet's datafiles); the `data` command's `run` calls it with the parsed flags. With
`synthetic=True` (`--synthetic`) the twin is generated first under `<root>/twin/` and then
goes through exactly the same download (a file:// URL) and preparation code. `step`
(`--step`) runs one stage only; data_scripts/ uses it.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path

from ast_repro.datafiles import DatafileError
from ast_repro.datasets import audioset, esc50, speechcommands
from ast_repro.datasets.common import DOWNLOADS_DIR, read_marker, write_marker
from ast_repro.datasets.common import fetch as fetch_file
from ast_repro.datasets.registry import RECORD_NAME, KnownFile, read_record
from ast_repro.datasets.synth.audioset import make_audioset_twin
from ast_repro.datasets.synth.esc50 import make_esc50_twin
from ast_repro.datasets.synth.speechcommands import (
    make_speechcommands_twin,
)
from ast_repro.fileio import atomic_write_json
from ast_repro.layout import DATASET_NAMES, default_root, prepared_paths

STEPS = ("all", "synthesize", "download", "prepare")
SIZES = ("smoke", "small", "medium")
TWIN_DIR = "twin"
TWIN_RECORD = "twin.json"
_ARCHIVES = {
    "esc50": (esc50.ESC50_URL, esc50.ARCHIVE_NAME),
    "speechcommands": (speechcommands.SPEECHCOMMANDS_URL, speechcommands.ARCHIVE_NAME),
}


def synthesize(name: str, root: Path, *, size: str, seed: int) -> str:
    """Generate (or reuse) the twin of `name` under `root/twin/`.

    Returns:
        The URL to fetch it from: the archive for ESC-50 and Speech Commands, the csv
        folder for AudioSet (whose audio is in `root/twin/audio`).
    """
    twin = root / TWIN_DIR
    record = {"dataset": name, "size": size, "seed": seed}
    record_path = twin / TWIN_RECORD
    fresh = record_path.is_file() and json.loads(record_path.read_text()) == record
    fresh = fresh and (twin / RECORD_NAME).is_file()  # its checksums, written at generation
    if name == "audioset":
        if not fresh:
            shutil.rmtree(twin / audioset.AUDIO_DIR, ignore_errors=True)  # another seed's clips
            make_audioset_twin(twin, size=size, seed=seed)
        location = twin / audioset.CSV_DIR
    else:
        location = twin / _ARCHIVES[name][1]
        if not (fresh and location.is_file()):
            maker = make_esc50_twin if name == "esc50" else make_speechcommands_twin
            maker(twin, size=size, seed=seed)
    atomic_write_json(record_path, record)
    return location.resolve().as_uri() + ("/" if name == "audioset" else "")


def twin_checksums(root: Path, synthetic: bool) -> dict[str, KnownFile] | None:
    """The twin's own registry entries (written at generation), or None for the real data."""
    return read_record(root / TWIN_DIR / RECORD_NAME) if synthetic else None


def fetch_only(
    name: str,
    root: Path,
    url: str,
    *,
    progress: bool,
    checksums: dict[str, KnownFile] | None = None,
    accept_new_checksum: bool = False,
) -> list[Path]:
    """Download step only: the archive (ESC-50, Speech Commands) or the csvs (AudioSet), checked."""
    check = {"checksums": checksums, "accept_new_checksum": accept_new_checksum}
    if name == "audioset":
        return list(audioset.fetch_csvs(root, base_url=url, progress=progress, **check).values())
    dest = root / DOWNLOADS_DIR / _ARCHIVES[name][1]
    return [fetch_file(url, dest, progress=progress, **check)]


def prepare(
    name: str,
    root: Path,
    url: str,
    *,
    force: bool = False,
    audio_dir: Path | None = None,
    unbalanced: bool = True,
    downloader: tuple[str, ...] | None = None,
    progress: bool = False,
    checksums: dict[str, KnownFile] | None = None,
    accept_new_checksum: bool = False,
) -> dict[str, Path]:
    """Full preparation of one dataset from `url` (the AudioSet options only apply to it).

    `checksums` replaces the official registry entries (a twin's record); every download is
    checked against them, or against the record of its first download.
    """
    check = {"checksums": checksums, "accept_new_checksum": accept_new_checksum}
    if name == "esc50":
        return esc50.prepare_esc50(root, url=url, progress=progress, force=force, **check)
    if name == "speechcommands":
        return speechcommands.prepare_speechcommands(
            root, url=url, progress=progress, force=force, **check
        )
    return audioset.prepare_audioset(
        root,
        base_url=url,
        audio_dir=audio_dir,
        unbalanced=unbalanced,
        downloader=downloader,
        progress=progress,
        **check,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `ast-repro data`."""
    parser.add_argument("name", choices=DATASET_NAMES, help="dataset to get and prepare")
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="use the offline synthetic twin instead of the real data",
    )
    parser.add_argument("--size", choices=SIZES, default="smoke", help="twin size")
    parser.add_argument("--seed", type=int, default=0, help="twin seed")
    parser.add_argument("--root", type=Path, default=None, help="dataset root (default data/NAME)")
    parser.add_argument(
        "--url",
        default=None,
        help="archive URL (AudioSet: csv folder URL) overriding the official one",
    )
    parser.add_argument(
        "--step", choices=STEPS, default="all", help="run one stage only (default: all of them)"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="download and extract again even if a prepared copy exists",
    )
    parser.add_argument(
        "--accept-new-checksum",
        action="store_true",
        help="record a download that differs from the checksum recorded at its first "
        "download (an upstream update); published checksums still apply",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    audio = parser.add_argument_group("AudioSet")
    audio.add_argument(
        "--audio-dir",
        type=Path,
        default=None,
        help="folder of clips named <YTID>.wav (default ROOT/audio)",
    )
    audio.add_argument(
        "--no-unbalanced", action="store_true", help="skip the unbalanced (full) training set"
    )
    audio.add_argument(
        "--download-audio",
        action="store_true",
        help="fetch missing clips with yt-dlp (install it and ffmpeg yourself)",
    )
    audio.add_argument(
        "--downloader-command",
        default=None,
        help="downloader command template with {ytid} {start} {end} {out}",
    )


def run(args: argparse.Namespace) -> int:
    """Run the requested steps and print what was written.

    Raises:
        AstReproError: bad data or a missing tool (exit status 2), a download that broke
            off (3); `ast_repro.cli.main` reports it in one line.
    """
    downloader = None
    if args.downloader_command:
        downloader = tuple(shlex.split(args.downloader_command))
    elif args.download_audio:
        downloader = audioset.YT_DLP_COMMAND
    fetch(
        args.name,
        synthetic=args.synthetic,
        size=args.size,
        seed=args.seed,
        root=args.root,
        url=args.url,
        step=args.step,
        force=args.force,
        audio_dir=args.audio_dir,
        unbalanced=not args.no_unbalanced,
        downloader=downloader,
        progress=not args.no_progress,
        accept_new_checksum=args.accept_new_checksum,
    )
    return 0


def fetch(
    name: str,
    *,
    synthetic: bool = False,
    size: str = "smoke",
    seed: int = 0,
    root: str | os.PathLike[str] | None = None,
    url: str | None = None,
    step: str = "all",
    force: bool = False,
    audio_dir: str | os.PathLike[str] | None = None,
    unbalanced: bool = True,
    downloader: Sequence[str] | None = None,
    fold: int = 1,
    progress: bool = False,
    accept_new_checksum: bool = False,
) -> dict[str, Path]:
    """Get and prepare a dataset (or its twin), printing what was written: `ast-repro data`.

    Downloads, verifies, extracts and writes the AST datafiles as the original recipes'
    preparation scripts do (`egs/esc50/prep_esc50.py`, `egs/speechcommands/prep_sc.py`;
    AudioSet's datafiles and `egs/audioset/gen_weight_file.py`). A twin is generated under
    `<root>/twin/` first and then goes through the same download and preparation.

    Args:
        name: "esc50", "speechcommands" or "audioset".
        synthetic: use the offline synthetic twin instead of the real data.
        size: twin size, one of `SIZES`.
        seed: twin seed.
        root: dataset root; default `default_root(name, synthetic=...)`.
        url: archive URL (AudioSet: csv folder URL) overriding the official one.
        step: one of `STEPS`: "all", or one stage only ("synthesize" implies `synthetic`).
        force: download and extract again even if a prepared copy exists.
        audio_dir: AudioSet only, the folder of clips named `<YTID>.wav` (default
            `<root>/audio`, the twin's clips for a twin).
        unbalanced: AudioSet only, also prepare the unbalanced (full) training set.
        downloader: AudioSet only, the command fetching missing clips, with `{ytid}`,
            `{start}`, `{end}` and `{out}` placeholders (e.g. `audioset.YT_DLP_COMMAND`).
        fold: ESC-50 only, the held-out fold (1..5) whose paths are returned.
        progress: show progress bars.
        accept_new_checksum: record a download that differs from the checksum recorded at
            its first download (an upstream update); published checksums still apply.

    Returns:
        `prepared_paths(name, root, fold=fold)`: the train/valid/eval datafiles and labels
        (paths that do not exist yet after the "synthesize" or "download" step alone).

    Raises:
        ValueError: unknown `name`, `size`, `step` or `fold`.
        DatafileError: `root` is a file.
        DownloadError, ArchiveError, DatafileError, AudioError: the data, the network or the
            environment failed; the message says which file and what to do.
    """
    for value, choices, what in ((size, SIZES, "twin size"), (step, STEPS, "step")):
        if value not in choices:
            raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")
    synthetic = synthetic or step == "synthesize"
    base = Path(root) if root is not None else default_root(name, synthetic=synthetic)
    prepared_paths(name, base, fold=fold)  # an unknown name or fold fails before any work
    if base.exists() and not base.is_dir():
        raise DatafileError(f"{base}: the dataset root must be a folder, not a file (--root)")
    if synthetic and not force:
        marker = read_marker(base)
        # A prepared twin of another size or seed must be prepared again, not reused.
        if marker and (marker.get("twin_size"), marker.get("twin_seed")) != (size, seed):
            force = True
    official = audioset.AUDIOSET_CSV_URL if name == "audioset" else _ARCHIVES[name][0]
    url = url or official
    if synthetic:
        url = synthesize(name, base, size=size, seed=seed)
        print(f"synthetic twin ({size}, seed {seed}): {url}")
        if step == "synthesize":
            return prepared_paths(name, base, fold=fold)
    check = {
        "checksums": twin_checksums(base, synthetic),
        "accept_new_checksum": accept_new_checksum,
    }
    if step == "download":
        for path in fetch_only(name, base, url, progress=progress, **check):
            print(f"downloaded: {path}")
        return prepared_paths(name, base, fold=fold)
    if name == "audioset" and audio_dir is None and synthetic:
        audio_dir = base / TWIN_DIR / audioset.AUDIO_DIR
    written = prepare(
        name,
        base,
        url,
        force=force,
        audio_dir=None if audio_dir is None else Path(audio_dir),
        unbalanced=unbalanced,
        downloader=None if downloader is None else tuple(downloader),
        progress=progress,
        **check,
    )
    marker = read_marker(base)
    marker["synthetic"] = synthetic
    if synthetic:
        marker.update(twin_size=size, twin_seed=seed)
    write_marker(base, marker)
    for key, path in written.items():
        print(f"{key}: {path}")
    for split, counts in marker.get("clips", {}).items():  # AudioSet: what is missing
        print(
            f"{split}: {counts['listed']} segments listed, {counts['found']} with audio, "
            f"{counts['missing']} missing"
        )
    paths = prepared_paths(name, base)
    print(f"prepared {name} in {base}: train {paths['train']}, eval {paths['eval']}")
    return prepared_paths(name, base, fold=fold)
