"""Where runs write, and what every run records (DESIGN.md, "Results and reports").

Each run writes `results/<stage>/<run>/metrics.json` holding the resolved config, its
metrics, the seed, the git commit, package versions, the device and the wall time. Tables
and figures are built from these files only; nothing is typed by hand.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from ast_repro.fileio import atomic_write_json

RESULTS_ENV = "AST_REPRO_RESULTS"
DATA_ENV = "AST_REPRO_DATA"
PACKAGES = ("torch", "torchaudio", "timm", "numpy", "scikit-learn", "transformers", "ast-repro")
PROFILES = ("smoke", "paper")


def repo_root() -> Path | None:
    """The checkout this package runs from (the folder holding its pyproject.toml), if any."""
    here = Path(__file__).resolve().parent.parent
    pyproject = here / "pyproject.toml"
    if pyproject.is_file() and 'name = "ast-repro"' in pyproject.read_text(encoding="utf-8"):
        return here
    return None


def _default_dir(env: str, name: str) -> Path:
    if os.environ.get(env):
        return Path(os.environ[env])
    root = repo_root()
    return (root if root is not None else Path.cwd()) / name


def results_dir() -> Path:
    """`$AST_REPRO_RESULTS`, else `results/` in the checkout (or the working directory)."""
    return _default_dir(RESULTS_ENV, "results")


def data_dir() -> Path:
    """`$AST_REPRO_DATA`, else `data/` in the checkout (or the working directory)."""
    return _default_dir(DATA_ENV, "data")


def run_dir(stage: str, run: str) -> Path:
    """results/<stage>/<run>/, created if missing."""
    path = results_dir() / stage / run
    path.mkdir(parents=True, exist_ok=True)
    return path


def git_commit() -> str | None:
    """The checkout's commit (with "+dirty" when it has local changes), or None."""
    root = repo_root()
    if root is None:
        return None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_description() -> str:
    """ "cpu (N threads)" or the CUDA device name."""
    import torch

    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return f"cpu: {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


# Set by `ast-repro notebooks run|store` for the notebook's kernel: the command that ran it.
COMMAND_ENV = "AST_REPRO_COMMAND"
KERNEL_COMMAND = "a Jupyter kernel"  # a notebook run outside `ast-repro notebooks`


def command_line() -> str:
    """The command that produced this process's results, as a reader would repeat it.

    The process's own arguments, except inside a Jupyter kernel, whose arguments name only
    a temporary connection file: there it is the `ast-repro notebooks` command that started
    the kernel (`$AST_REPRO_COMMAND`), else `KERNEL_COMMAND`.
    """
    if "ipykernel" in Path(sys.argv[0]).name:
        return os.environ.get(COMMAND_ENV) or KERNEL_COMMAND
    return " ".join(sys.argv)


def provenance() -> dict[str, Any]:
    """What a reader needs to repeat a run."""
    return {
        "git_commit": git_commit(),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "device": device_description(),
        "command": command_line(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def notebook_run(profile: str, dataset: str, *, synthetic: bool, seeds: list[int]) -> str:
    """A notebook's run name: "smoke-esc50-twin", with "-s1" or "-s0-1-2" unless seeds are [0].

    The seeds are part of the name so that rerunning a notebook with other seeds
    (`papermill ... -p seed 1`) adds a record instead of replacing the seed-0 one.
    """
    name = f"{profile}-{dataset}{'-twin' if synthetic else ''}"
    return name if list(seeds) == [0] else name + "-s" + "-".join(str(s) for s in seeds)


def write_metrics(
    stage: str,
    run: str,
    *,
    profile: str,
    config: dict[str, Any],
    metrics: dict[str, Any],
    seed: int | None,
    wall_time_s: float,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write results/<stage>/<run>/metrics.json atomically and return its path.

    Args:
        stage: notebook or pipeline stage, e.g. "01_norm_stats" or "train".
        run: run name, unique within the stage.
        profile: "smoke" or "paper"; reports label every number with it.
        config: the resolved configuration (json-serializable).
        metrics: the numbers the run produced (per epoch lists allowed).
        seed: the run's seed.
        wall_time_s: wall-clock seconds the run took.
        extra: anything else worth keeping.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, not {profile!r}")
    record = {
        "stage": stage,
        "run": run,
        "profile": profile,
        "config": config,
        "metrics": metrics,
        "seed": seed,
        "wall_time_s": round(float(wall_time_s), 3),
        **provenance(),
        **(extra or {}),
    }
    path = run_dir(stage, run) / "metrics.json"
    # Round-trip through json first so a non-serializable value fails before anything is
    # written; non-finite floats (d' of a perfect AUC is inf) become null, keeping strict json.
    atomic_write_json(path, json.loads(json.dumps(_finite(record), allow_nan=False)))
    return path


def _finite(value: Any) -> Any:
    """`value` with every NaN or infinite float replaced by None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def read_metrics(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read one metrics.json."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def collect(
    stage: str | None = None, *, root: str | os.PathLike[str] | None = None
) -> list[dict[str, Any]]:
    """Every metrics.json under results/ (or under results/<stage>/), sorted by path.

    Args:
        stage: only this stage's folder.
        root: the results folder; default `results_dir()`.
    """
    base = Path(root) if root is not None else results_dir()
    base = base if stage is None else base / stage
    return [read_metrics(p) for p in sorted(base.glob("**/metrics.json"))]


# The paper's numbers, tracked in the checkout (results/ is otherwise git-ignored).
PAPER_REFERENCE = "paper_reference.json"


def paper_reference(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The paper's numbers: `results/paper_reference.json` of the checkout, or `path`.

    Raises:
        FileNotFoundError: no such file (the package runs outside its checkout).
    """
    if path is None:
        root = repo_root()
        if root is None:
            raise FileNotFoundError(f"{PAPER_REFERENCE} is kept in the ast-repro checkout")
        path = root / "results" / PAPER_REFERENCE
    return json.loads(Path(path).read_text(encoding="utf-8"))


# A notebook lists the paper numbers it reproduces under metrics["reproduced"], one
# `reproduced_row` each; the generated report (99_report) pairs them with the reference.
REPRODUCED_KEY = "reproduced"


def paper_value(reference: dict[str, Any], ref: str) -> float | None:
    """The number at a dotted key of the paper's reference, e.g. "patch_overlap.rows.16.balanced".

    A leaf is a number, null (the paper has no such cell) or {"value": number, ...}.

    Raises:
        KeyError: `ref` names no number of the reference (the message lists what is there).
    """
    node: Any = reference
    for i, part in enumerate(ref.split(".")):
        if not isinstance(node, dict) or part not in node:
            where = ".".join(ref.split(".")[:i]) or "the reference"
            choices = sorted(node) if isinstance(node, dict) else []
            raise KeyError(f"{ref!r}: {where} has no {part!r} (it has {choices})")
        node = node[part]
    if isinstance(node, dict):
        node = node.get("value", node)
    if node is not None and not isinstance(node, (int, float)):
        raise KeyError(f"{ref!r} is not a number of the reference but {type(node).__name__}")
    return None if node is None else float(node)


# The names reproduced rows use for what a run measured on which data; the reference's
# `metric` and `dataset` fields use the same (results/paper_reference.json).
METRIC_NAMES = {"mAP": "mAP", "acc": "accuracy", "accuracy": "accuracy"}
AUDIOSET_SPLITS = {"train": "audioset_balanced", "train_full": "audioset_full"}


def run_metric(metric: str) -> str:
    """The reference's name of a config's `metric`: "mAP" or "accuracy" (for "acc").

    Raises:
        ValueError: an unknown metric.
    """
    if metric not in METRIC_NAMES:
        raise ValueError(f"unknown metric {metric!r} (known: {sorted(METRIC_NAMES)})")
    return METRIC_NAMES[metric]


def run_dataset(dataset: str, train_split: str = "train") -> str:
    """The reference's name of the data a run trains on: AudioSet's balanced or full set
    ("audioset_balanced", "audioset_full" for `train_split` "train" / "train_full"), else
    the dataset itself ("esc50", "speechcommands")."""
    if dataset != "audioset":
        return dataset
    if train_split not in AUDIOSET_SPLITS:
        raise ValueError(f"unknown AudioSet split {train_split!r} (known: {list(AUDIOSET_SPLITS)})")
    return AUDIOSET_SPLITS[train_split]


def reproduced_row(
    ref: str,
    value: float | None,
    *,
    metric: str,
    dataset: str,
    variant: str,
    seeds: list[int],
    reference: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One reproduced paper number, as a notebook stores it under metrics["reproduced"].

    Args:
        ref: dotted key of the number in `results/paper_reference.json`.
        value: this run's number (mean over `seeds`), in the paper's unit (mAP or accuracy
            in [0, 1]); None when the run did not produce it.
        metric: what `value` is ("mAP", "accuracy"); the report compares like with like.
        dataset: the dataset it was measured on ("audioset_balanced", "esc50", ...).
        variant: the run's variant name in its grid.
        seeds: the seeds averaged.
        reference: `paper_reference()`; read from the checkout when None.

    Raises:
        KeyError: `ref` is not a number of the reference.
    """
    paper = paper_value(paper_reference() if reference is None else reference, ref)
    return {
        "ref": ref,
        "paper": paper,
        "value": None if value is None else float(value),
        "metric": metric,
        "dataset": dataset,
        "variant": variant,
        "seeds": [int(s) for s in seeds],
    }
