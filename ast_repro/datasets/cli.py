"""`ast-repro data NAME`: get a dataset (real or its offline twin) and prepare its datafiles.

One command per dataset runs download -> verify -> extract -> prepare (original_ast.md
sections 2.3-2.5). With `--synthetic` the twin is generated first under `<root>/twin/` and
then goes through exactly the same download (a file:// URL) and preparation code.
`--step` runs one stage only; data_scripts/ uses it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
from pathlib import Path

from ast_repro.datasets import audioset, esc50, speechcommands
from ast_repro.datasets.common import DOWNLOADS_DIR, read_marker, write_marker
from ast_repro.datasets.common import fetch as fetch_file
from ast_repro.datasets.layout import DATASET_NAMES, default_root, prepared_paths
from ast_repro.datasets.synth.audioset import make_audioset_twin
from ast_repro.datasets.synth.esc50 import make_esc50_twin
from ast_repro.datasets.synth.speechcommands import make_speechcommands_twin
from ast_repro.fileio import atomic_write_json

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


def fetch_only(name: str, root: Path, url: str, *, progress: bool) -> list[Path]:
    """Download step only: the archive (ESC-50, Speech Commands) or the csvs (AudioSet)."""
    if name == "audioset":
        return list(audioset.fetch_csvs(root, base_url=url, progress=progress).values())
    return [fetch_file(url, root / DOWNLOADS_DIR / _ARCHIVES[name][1], progress=progress)]


def prepare(name: str, root: Path, url: str, args: argparse.Namespace) -> dict[str, Path]:
    """Full preparation of one dataset from `url`."""
    progress = not args.no_progress
    if name == "esc50":
        return esc50.prepare_esc50(root, url=url, progress=progress, force=args.force)
    if name == "speechcommands":
        return speechcommands.prepare_speechcommands(
            root, url=url, progress=progress, force=args.force
        )
    audio_dir = args.audio_dir
    if audio_dir is None and args.synthetic:
        audio_dir = root / TWIN_DIR / audioset.AUDIO_DIR
    downloader = None
    if args.downloader_command:
        downloader = tuple(shlex.split(args.downloader_command))
    elif args.download_audio:
        downloader = audioset.YT_DLP_COMMAND
    return audioset.prepare_audioset(
        root,
        base_url=url,
        audio_dir=audio_dir,
        unbalanced=not args.no_unbalanced,
        downloader=downloader,
        progress=progress,
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
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    name = args.name
    synthetic = args.synthetic or args.step == "synthesize"
    args.synthetic = synthetic
    root = args.root if args.root is not None else default_root(name, synthetic=synthetic)
    if synthetic and not args.force:
        marker = read_marker(root)
        # A prepared twin of another size or seed must be prepared again, not reused.
        if marker and (marker.get("twin_size"), marker.get("twin_seed")) != (args.size, args.seed):
            args.force = True
    official = audioset.AUDIOSET_CSV_URL if name == "audioset" else _ARCHIVES[name][0]
    url = args.url or official
    if synthetic:
        url = synthesize(name, root, size=args.size, seed=args.seed)
        print(f"synthetic twin ({args.size}, seed {args.seed}): {url}")
        if args.step == "synthesize":
            return 0
    if args.step == "download":
        for path in fetch_only(name, root, url, progress=not args.no_progress):
            print(f"downloaded: {path}")
        return 0
    written = prepare(name, root, url, args)
    marker = read_marker(root)
    marker["synthetic"] = synthetic
    if synthetic:
        marker.update(twin_size=args.size, twin_seed=args.seed)
    write_marker(root, marker)
    for key, path in written.items():
        print(f"{key}: {path}")
    for split, counts in marker.get("clips", {}).items():  # AudioSet: what is missing
        print(
            f"{split}: {counts['listed']} segments listed, {counts['found']} with audio, "
            f"{counts['missing']} missing"
        )
    paths = prepared_paths(name, root)
    print(f"prepared {name} in {root}: train {paths['train']}, eval {paths['eval']}")
    return 0


def fetch(
    name: str,
    *,
    synthetic: bool = False,
    size: str = "smoke",
    seed: int = 0,
    root: str | Path | None = None,
    url: str | None = None,
    fold: int = 1,
    progress: bool = False,
) -> dict[str, Path]:
    """Get and prepare a dataset (or its twin) from Python, exactly as `ast-repro data` does.

    Returns:
        `prepared_paths(name, root, fold=fold)`: the train/valid/eval datafiles and labels.
    """
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    argv = [name, "--size", size, "--seed", str(seed)]
    argv += ["--synthetic"] if synthetic else []
    argv += ["--root", str(root)] if root is not None else []
    argv += ["--url", url] if url is not None else []
    argv += [] if progress else ["--no-progress"]
    args = parser.parse_args(argv)
    _run(args)
    base = Path(root) if root is not None else default_root(name, synthetic=synthetic)
    return prepared_paths(name, base, fold=fold)
