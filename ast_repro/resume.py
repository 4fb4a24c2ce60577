"""What a resumed run may change: the check between `last.pt`'s config and the new one.

The original cannot resume a run (`src/traintest.py` restarts from epoch 1); this package
continues a killed run from `checkpoints/last.pt` bit for bit (`ast_repro.checkpoint`), and
so refuses a resume whose configuration would make it a different run. Two kinds of keys
may change:

- `EXECUTION_KEYS` say where and how the run executes, not what it computes;
- `SCHEDULE_KEYS` are the learning-rate schedule and its length: a diverged run can go on
  from its last good epoch at a lower lr. The new schedule takes over from that epoch (its lr
  is what the new keys give there), and the change is recorded in the run's `resumed` list
  (in `last.pt` and metrics.json) with the epoch it took effect after.

A run resumed with another schedule is not the run a grid asks for (`ast_repro.grid_plan`).
"""

from __future__ import annotations

import bisect
import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ast_repro import checkpoint as ckpt
from ast_repro.config import ConfigError, TrainConfig
from ast_repro.datafiles import LabelMap
from ast_repro.optim import LAST_MILESTONE
from ast_repro.seeding import set_rng_state

# Keys that do not change what a run computes.
EXECUTION_KEYS = ("num_workers", "progress", "tensorboard", "device")
# The schedule: base lr, number of epochs and the step decay (original `src/traintest.py`).
SCHEDULE_KEYS = ("lr", "epochs", "lrscheduler_start", "lrscheduler_step", "lrscheduler_decay")
# Keys that may differ between a checkpoint and the config that resumes it.
RESUMABLE_KEYS = (*SCHEDULE_KEYS, *EXECUTION_KEYS)
# Schedule keys whose change leaves the run what an uninterrupted run would compute: more
# epochs continue the same schedule.
_SAME_RUN_KEYS = ("epochs",)

# Every config field's default, for checkpoints written before a field existed.
_DEFAULTS = {field.name: field.default for field in dataclasses.fields(TrainConfig)}


@dataclass(frozen=True)
class RestoredRun:
    """Where a resumed run stands after `restore`, and what its resume changed."""

    epoch: int
    global_step: int
    elapsed: float
    history: list[dict[str, Any]]
    best: dict[str, Any]
    resumed: list[dict[str, Any]]  # `resume_record` entries, this resume's last if it changed
    changes: dict[str, tuple[Any, Any]]  # the schedule keys this resume changed


def restore(
    last: Path,
    config: TrainConfig,
    labels: LabelMap,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.MultiStepLR,
    scaler: torch.amp.GradScaler,
) -> RestoredRun:
    """Load `last.pt` into a run's model, optimizer, scheduler, scaler and global RNGs.

    Raises:
        CheckpointError: `last` is not a readable training checkpoint.
        ConfigError: `config` or `labels` change the run (`check_resumable`).
    """
    state = ckpt.load(last)
    changes = check_resumable(
        last, state["config"], config, saved_labels=state["labels"], labels=labels
    )
    ckpt.unwrap(model).load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    resumed = list(state.get("resumed", []))
    # where the run executes is not part of its record
    changes = {k: v for k, v in changes.items() if k in SCHEDULE_KEYS}
    if changes:
        resumed.append(resume_record(state["epoch"], changes))
    if set(changes) - set(_SAME_RUN_KEYS):
        apply_schedule(optimizer, scheduler, config, state["epoch"])
    set_rng_state(state["rng"])
    return RestoredRun(
        epoch=state["epoch"],
        global_step=state["global_step"],
        elapsed=state["elapsed"],
        history=state["history"],
        best=state["best"],
        resumed=resumed,
        changes=changes,
    )


def config_changes(saved: dict[str, Any], config: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """Every key whose value differs, as key -> (saved, new).

    A key newer than the checkpoint counts as its default, which is what that run used.
    """
    saved = {**_DEFAULTS, **saved}
    return {
        key: (saved.get(key), value)
        for key, value in config.to_dict().items()
        if saved.get(key) != value
    }


def check_resumable(
    last: Path,
    saved: dict[str, Any],
    config: TrainConfig,
    *,
    saved_labels: Mapping[str, Sequence[str]] | None = None,
    labels: LabelMap | None = None,
) -> dict[str, tuple[Any, Any]]:
    """Refuse to resume `last` (whose config is `saved`) with a config that changes the run.

    Args:
        last: the checkpoint, for messages.
        saved: its config.
        config: the config resuming it.
        saved_labels, labels: the checkpoint's label set and the run's now; a resume with
            other classes (or the same in another order) is refused.

    Returns:
        The changes a resume may make (`RESUMABLE_KEYS`), as key -> (saved, new).

    Raises:
        ConfigError: naming the checkpoint and each other changed key with its old and new
            value, or the first label that differs.
    """
    changed = config_changes(saved, config)
    refused = {k: v for k, v in changed.items() if k not in RESUMABLE_KEYS}
    if refused:
        details = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in refused.items())
        allowed = ", ".join(SCHEDULE_KEYS)
        raise ConfigError(
            f"{last}: cannot resume with a different config ({details}); a resume may change "
            f"only {allowed} and where it runs. Start a new run_name for the rest"
        )
    if saved_labels is not None and labels is not None:
        before = LabelMap(tuple(saved_labels["mids"]), tuple(saved_labels["names"]))
        if before != labels:
            raise ConfigError(
                f"{last}: the run's label csv has changed since it was saved ({before.num_classes}"
                f" -> {labels.num_classes} classes, or the same in another order); resume with "
                "the label csv it was trained with"
            )
    return {k: v for k, v in changed.items() if k in RESUMABLE_KEYS}


def schedule_lr(config: TrainConfig, epoch: int) -> float:
    """The learning rate after `epoch` finished epochs under `config`'s step decay.

    `MultiStepLR(milestones=range(start, 1000, step))` stepped once per epoch (`ast_repro.optim`)
    has decayed once for every milestone up to `epoch`.
    """
    milestones = list(range(config.lrscheduler_start, LAST_MILESTONE, config.lrscheduler_step))
    return config.lr * config.lrscheduler_decay ** bisect.bisect_right(milestones, epoch)


def apply_schedule(
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.MultiStepLR,
    config: TrainConfig,
    epoch: int,
) -> float:
    """Switch a restored optimizer and scheduler to `config`'s schedule after `epoch` epochs.

    The optimizer keeps its moments; its lr becomes `schedule_lr(config, epoch)` and the
    scheduler decays from there with `config`'s milestones and factor.

    Returns:
        The lr now set.
    """
    milestones = range(config.lrscheduler_start, LAST_MILESTONE, config.lrscheduler_step)
    # MultiStepLR keeps its milestones as a Counter and multiplies by gamma at each
    scheduler.milestones = Counter(milestones)
    scheduler.gamma = config.lrscheduler_decay
    scheduler.base_lrs = [config.lr] * len(optimizer.param_groups)
    lr = schedule_lr(config, epoch)
    for group in optimizer.param_groups:
        group["initial_lr"], group["lr"] = config.lr, lr
    return lr


def resume_record(epoch: int, changes: Mapping[str, tuple[Any, Any]]) -> dict[str, Any]:
    """The entry of a run's `resumed` list: after which epoch, and key -> [old, new]."""
    return {"after_epoch": epoch, "changed": {k: list(v) for k, v in changes.items()}}


def schedule_changes(resumed: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The recorded resume changes that make a run differ from an uninterrupted one.

    Args:
        resumed: a run's `resumed` list (metrics.json or last.pt).

    Returns:
        key -> [first old value, last new value], for schedule keys other than `epochs`.
    """
    changes: dict[str, list[Any]] = {}
    for record in resumed:
        for key, (old, new) in record.get("changed", {}).items():
            if key in SCHEDULE_KEYS and key not in _SAME_RUN_KEYS:
                changes[key] = [changes.get(key, [old])[0], new]
    return changes
