"""Grids of training runs that survive a restart: the ablations of paper Tables 2-6.

A grid is a recipe, named variants (config overrides through the same validated path as
`ast-repro train --set`) and seeds. Each (variant, seed) is one ordinary training run in
`results/train/<grid>/<variant>-s<seed>/`. Starting a grid again reuses every finished run
whose stored config equals the resolved one, resumes a killed run from its `last.pt`
(`ast_repro.train`), and refuses a run whose stored config differs, naming the keys.

    ast-repro grid --recipe audioset_balanced --grid strides \\
        --variant s16 frequency_stride=16 time_stride=16 --variant s10 --seeds 0 1 2
    ast-repro grid ... --print-commands     # one torchrun command per missing run

On one device the runs train in turn in this process: killing it (or a notebook's kernel)
stops the run with it, so no orphan keeps writing into a directory that the restart resumes,
and a notebook shows the run's own output. With several GPUs they run as children, one per
GPU or each over all GPUs with torchrun (`ast_repro.launch`, where a child dies with its
parent). `read_grid` reads the table back from disk alone, for the report.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ast_repro import launch
from ast_repro.config import parse_overrides
from ast_repro.crossval import train_esc50_folds
from ast_repro.errors import RunFailed
from ast_repro.estimate import format_duration
from ast_repro.grid_plan import GridError, GridRun, describe_plan, plan_grid
from ast_repro.grid_results import format_table, grid_row, read_grid, write_manifest
from ast_repro.results import RESULTS_ENV, results_dir
from ast_repro.train import train

__all__ = ["GridError", "format_table", "grid_commands", "plan_grid", "read_grid", "run_grid"]

LOG_FILE = "train.log"  # a child run's output, in its run directory
PARALLEL = ("auto", "serial", "runs", "ddp")
DEFAULT_VARIANT = "base"


@contextlib.contextmanager
def _results_root(root: str | os.PathLike[str] | None) -> Iterator[None]:
    """Point `results_dir()` (and children) at `root` for the duration, if given."""
    if root is None:
        yield
        return
    previous = os.environ.get(RESULTS_ENV)
    os.environ[RESULTS_ENV] = str(Path(root).resolve())
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(RESULTS_ENV, None)
        else:
            os.environ[RESULTS_ENV] = previous


def _execution(parallel: str) -> tuple[str, int]:
    """(mode, visible GPUs): "auto" is "runs" with several GPUs, else "serial"."""
    if parallel not in PARALLEL:
        raise GridError(f"parallel={parallel!r} is not one of {PARALLEL}")
    gpus = torch.cuda.device_count()
    if parallel == "auto":
        return ("runs" if gpus > 1 else "serial"), gpus
    return parallel, gpus


def _quiet(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A child's overrides: no progress bars in its log unless asked for."""
    return {"progress": False, **overrides}


def rerun_command(recipe: str, run: GridRun) -> str:
    """The `ast-repro train` command line that trains (or resumes) one run of a grid."""
    prefix = f"{RESULTS_ENV}={shlex.quote(str(results_dir().resolve()))} ast-repro "
    return prefix + shlex.join(launch.train_arguments(recipe, run.overrides))


def _train_in_turn(recipe: str, runs: Sequence[GridRun], grid: str) -> None:
    for i, run in enumerate(runs, start=1):
        verb = "resuming" if run.state == "partial" else "starting"
        print(f"grid {grid}: [{i}/{len(runs)}] {verb} {run.name}", flush=True)
        start = time.perf_counter()
        try:
            if len(run.config.fold_list()) > 1:
                train_esc50_folds(run.config, resume=True)
            else:
                train(run.config, resume=run.state == "partial")
        except BaseException:
            print(f"grid {grid}: {run.name} stopped; rerun it alone with: "
                  f"{rerun_command(recipe, run)}", file=sys.stderr, flush=True)  # fmt: skip
            raise
        seconds = time.perf_counter() - start
        print(f"grid {grid}: {run.name} finished in {format_duration(seconds)}: "
              f"{_headline(run)}", flush=True)  # fmt: skip


def _train_children(recipe: str, runs: Sequence[GridRun], grid: str, mode: str, gpus: int) -> None:
    if mode == "ddp":
        prefix = launch.torchrun_prefix(max(gpus, 1), python=sys.executable)
        slots: list[dict[str, str]] = [dict(os.environ)]
    else:
        prefix = [sys.executable, "-m", "ast_repro.cli"]
        slots = [
            {**os.environ, "CUDA_VISIBLE_DEVICES": gpu} for gpu in launch.visible_gpus(gpus)
        ] or [dict(os.environ)]
    jobs = {
        run.name: launch.Job(
            name=run.name,
            command=prefix + launch.train_arguments(recipe, _quiet(run.overrides)),
            log=run.path / LOG_FILE,
            rerun=rerun_command(recipe, run),
        )
        for run in runs
    }
    by_name = {run.name: run for run in runs}
    failures = launch.run_jobs(
        list(jobs.values()),
        slots,
        label=f"grid {grid}",
        on_finish=lambda job: print(f"grid {grid}: {job.name}: {_headline(by_name[job.name])}"),
    )
    if failures:
        details = "; ".join(
            f"{f.job.name} (exit {f.returncode}, log {f.job.log}; rerun: {f.job.rerun})"
            for f in failures
        )
        raise RunFailed(f"grid {grid}: {len(failures)} of {len(runs)} runs failed: {details}")


def _headline(run: GridRun) -> str:
    """The run's main metric at its last epoch, and of its weight average and test set."""
    row = grid_row(run.path, run.variant, run.seed)
    parts = [f"{row['metric']} {row['last']:.4f}"] if row["last"] is not None else []
    parts += [f"{key} {row[key]:.4f}" for key in ("wa", "test") if row[key] is not None]
    return ", ".join(parts) or "no metric recorded"


def run_grid(
    recipe: str,
    variants: Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int] = (0,),
    *,
    grid: str,
    results_root: str | os.PathLike[str] | None = None,
    parallel: str = "auto",
    **common: Any,
) -> list[dict[str, Any]]:
    """Train every (variant, seed) of a grid that is not finished yet, and tabulate the grid.

    Prints the plan with an estimate of the time first, then a line per run as it starts
    and finishes. Finished runs with the same resolved config are reused; killed ones
    resume from `last.pt`. Restarting a killed grid therefore costs only its unfinished runs.

    Args:
        recipe: a key of `ast_repro.config.RECIPES`.
        variants: {name: {key: value}}, e.g. {"s16": {"frequency_stride": 16,
            "time_stride": 16}, "s10": {}}; validated as `ast-repro train --set`.
        seeds: every variant runs once per seed.
        grid: the grid's name: its runs are results/train/<grid>/<variant>-s<seed>/.
        results_root: the results folder; default `ast_repro.results.results_dir()`.
        parallel: "serial" (in turn, in this process), "runs" (one child per GPU), "ddp"
            (in turn, each child over every GPU with torchrun) or "auto" ("runs" with
            several GPUs, else "serial").
        **common: overrides of every run, e.g. `epochs=5`.

    Returns:
        One `ast_repro.grid_results.grid_row` per run, with `status` "reused", "resumed" or
        "trained".

    Raises:
        GridError: a bad grid, or stored runs made with another config (keys named).
        RunFailed: children failed (each reported with its log tail and rerun command).
        Errors of `ast_repro.train.train` propagate from a run in this process.
    """
    mode, gpus = _execution(parallel)
    with _results_root(results_root):
        runs = plan_grid(recipe, variants, seeds, grid=grid, common=common)
        write_manifest(grid, recipe, variants)
        print(describe_plan(runs, mode=mode, gpus=gpus), flush=True)
        for run in runs:
            if run.state == "done":
                print(f"grid {grid}: {run.name} reused ({_headline(run)})", flush=True)
        pending = [run for run in runs if run.state != "done"]
        if mode == "serial":
            _train_in_turn(recipe, pending, grid)
        elif pending:
            _train_children(recipe, pending, grid, mode, gpus)
        status = {"done": "reused", "partial": "resumed", "new": "trained"}
        return [grid_row(run.path, run.variant, run.seed, status[run.state]) for run in runs]


def grid_commands(
    recipe: str,
    variants: Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int] = (0,),
    *,
    grid: str,
    results_root: str | os.PathLike[str] | None = None,
    nproc_per_node: int | str = "gpu",
    **common: Any,
) -> list[str]:
    """One `torchrun` command line per run of the grid that is not finished.

    Each command trains (or resumes) one run and writes where `run_grid` looks, so a
    cluster scheduler can run them (one line per task of a SLURM job array, say) and a
    later `run_grid` reads back what finished and trains only what is missing.

    Args:
        recipe, variants, seeds, grid, results_root, common: as `run_grid`.
        nproc_per_node: torchrun processes per run; "gpu" takes every GPU of the node.

    Raises:
        GridError: as `run_grid`.
    """
    with _results_root(results_root):
        runs = plan_grid(recipe, variants, seeds, grid=grid, common=common)
        write_manifest(grid, recipe, variants)
        root = f"{RESULTS_ENV}={shlex.quote(str(results_dir().resolve()))} "
        prefix = launch.torchrun_prefix(nproc_per_node)
        return [
            root + shlex.join(prefix + launch.train_arguments(recipe, _quiet(run.overrides)))
            for run in runs
            if run.state != "done"
        ]


def _variants(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    variants: dict[str, dict[str, Any]] = {}
    if args.variants is not None:
        try:
            loaded = json.loads(Path(args.variants).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise GridError(f"{args.variants}: cannot read the variants ({exc})") from None
        if not isinstance(loaded, dict) or not all(isinstance(v, dict) for v in loaded.values()):
            raise GridError(f'{args.variants}: expected {{"name": {{"key": value, ...}}, ...}}')
        variants.update(loaded)
    for name, *items in args.variant:
        if name in variants:
            raise GridError(f"variant {name!r} is given twice")
        variants[name] = parse_overrides(items)
    return variants or {DEFAULT_VARIANT: {}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `ast-repro grid`."""
    parser.add_argument("--recipe", required=True, help="a recipe of ast_repro.config.RECIPES")
    parser.add_argument("--grid", required=True, help="name: runs go to results/train/<grid>/")
    parser.add_argument("--variant", nargs="+", action="append", default=[],
                        metavar=("NAME", "KEY=VALUE"), help="a variant, its overrides")  # fmt: skip
    parser.add_argument("--variants", metavar="FILE.json", help='{"name": {"key": value}}')
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="default: 0")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value of every run")  # fmt: skip
    parser.add_argument("--parallel", choices=PARALLEL, default="auto",
                        help="auto: one run per GPU with several GPUs, else in turn")  # fmt: skip
    parser.add_argument("--print-commands", action="store_true",
                        help="print a torchrun command per missing run, train nothing")  # fmt: skip
    parser.add_argument("--nproc-per-node", default="gpu",
                        help="torchrun processes per printed run (default: gpu)")  # fmt: skip
    parser.add_argument("--results", default=None, help="results folder (default: results/)")


def run(args: argparse.Namespace) -> int:
    """Run the grid (or print its commands) and print its table."""
    variants, common = _variants(args), parse_overrides(args.set)
    options = dict(grid=args.grid, results_root=args.results)
    if args.print_commands:
        for line in grid_commands(args.recipe, variants, args.seeds, **options,
                                  nproc_per_node=args.nproc_per_node, **common):  # fmt: skip
            print(line)
        return 0
    rows = run_grid(args.recipe, variants, args.seeds, **options, parallel=args.parallel, **common)
    print(format_table(rows))
    return 0
