"""Training runs as child processes: their command lines, logs, GPUs and failures.

`ast_repro.experiments` runs a grid in its own process on one device; with several GPUs it
starts `ast-repro train` children here instead, one per GPU (`CUDA_VISIBLE_DEVICES`) or one
`torchrun` over all of them at a time. Each child writes its output to a log in its run
directory; a failure is reported with the log's last lines and the command that reruns it.
The same command lines, printed, let a cluster scheduler run a grid's runs on other nodes.
"""

from __future__ import annotations

import ctypes
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Lines of a failed child's log shown with its failure.
LOG_TAIL_LINES = 20
# Seconds between checks on running children.
POLL_SECONDS = 0.5
# prctl option: the signal a child receives when its parent dies (linux/prctl.h).
_PR_SET_PDEATHSIG = 1


def set_items(overrides: Mapping[str, Any]) -> list[str]:
    """{key: value} -> ["key=value", ...] that `ast-repro train --set` parses back exactly.

    Booleans are written true/false; floats with `repr`, which round-trips.
    """
    items = []
    for key, value in overrides.items():
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        items.append(f"{key}={text}")
    return items


def train_arguments(recipe: str, overrides: Mapping[str, Any]) -> list[str]:
    """Arguments after `ast-repro` for one run, resuming it when it has a checkpoint."""
    arguments = ["train", "--recipe", recipe]
    for item in set_items(overrides):
        arguments += ["--set", item]
    return [*arguments, "--resume"]


def torchrun_prefix(nproc_per_node: int | str, *, python: str | None = None) -> list[str]:
    """`torchrun --standalone --nproc_per_node N -m ast_repro.cli` (or through `python -m`).

    Args:
        nproc_per_node: processes per node, or "gpu" for every GPU of the node it runs on.
        python: an interpreter to run torchrun's module with (children of this process use
            `sys.executable`); None prints the `torchrun` console script.
    """
    launcher = ["torchrun"] if python is None else [python, "-m", "torch.distributed.run"]
    return [*launcher, "--standalone", f"--nproc_per_node={nproc_per_node}", "-m", "ast_repro.cli"]


@dataclass(frozen=True)
class Job:
    """One child process.

    Attributes:
        name: e.g. "stride12-s0", used in progress lines.
        command: the child's argv.
        log: file receiving the child's stdout and stderr (appended to).
        rerun: the command line a user types to run it again.
    """

    name: str
    command: list[str]
    log: Path
    rerun: str


@dataclass(frozen=True)
class Failure:
    """A child that exited with a non-zero status."""

    job: Job
    returncode: int
    tail: str


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log (empty if it does not exist)."""
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def visible_gpus(count: int) -> list[str]:
    """The `CUDA_VISIBLE_DEVICES` entry of each of this process's `count` visible GPUs."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return [str(i) for i in range(count)]
    return [entry.strip() for entry in listed.split(",") if entry.strip()][:count]


def _die_with_parent() -> None:
    """Run in the child before exec (Linux): SIGTERM it when its parent dies, so a killed
    grid leaves no orphaned run writing into a directory that its restart resumes."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _start(job: Job, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    job.log.parent.mkdir(parents=True, exist_ok=True)
    with job.log.open("ab") as log:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"== {stamp} {shlex.join(job.command)}\n".encode())
        log.flush()
        return subprocess.Popen(
            job.command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )


def run_jobs(
    jobs: Sequence[Job],
    slots: Sequence[Mapping[str, str]],
    *,
    label: str,
    on_finish: Callable[[Job], None] | None = None,
) -> list[Failure]:
    """Run `jobs`, at most one per slot at a time, and report progress on stdout.

    Args:
        jobs: in the order to start them.
        slots: one environment per concurrent child (e.g. one `CUDA_VISIBLE_DEVICES` each).
        label: prefix of progress lines, e.g. "grid strides".
        on_finish: called with the job after each success (e.g. to print its metric).

    Returns:
        The failures, each already reported on stderr with its log tail and rerun command.
        A child still running when this process is interrupted is terminated.
    """
    pending = list(jobs)
    free = list(range(len(slots)))
    active: dict[int, tuple[Job, subprocess.Popen[bytes], float]] = {}
    failures: list[Failure] = []
    total = len(pending)
    try:
        while pending or active:
            while pending and free:
                slot, job = free.pop(0), pending.pop(0)
                active[slot] = (job, _start(job, slots[slot]), time.perf_counter())
                where = slots[slot].get("CUDA_VISIBLE_DEVICES")
                on = f" on GPU {where}" if where is not None and len(slots) > 1 else ""
                print(f"{label}: [{total - len(pending)}/{total}] {job.name} started{on} "
                      f"(log {job.log})", flush=True)  # fmt: skip
            time.sleep(POLL_SECONDS)
            for slot, (job, process, start) in list(active.items()):
                if process.poll() is None:
                    continue
                del active[slot]
                free.append(slot)
                seconds = time.perf_counter() - start
                if process.returncode == 0:
                    print(f"{label}: {job.name} finished in {seconds:.0f} s", flush=True)
                    if on_finish is not None:
                        on_finish(job)
                    continue
                failure = Failure(job, process.returncode, log_tail(job.log))
                failures.append(failure)
                print(
                    f"{label}: {job.name} failed (exit {process.returncode}) after "
                    f"{seconds:.0f} s; last lines of {job.log}:\n{failure.tail}\n"
                    f"rerun it with: {job.rerun}",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        for _, process, _ in active.values():
            process.terminate()
        for _, process, _ in active.values():
            process.wait()
    return failures
