"""What a resumed run may change: the check between `last.pt`'s config and the new one.

The original cannot resume a run (`src/traintest.py` restarts from epoch 1); this package
continues a killed run from `checkpoints/last.pt` bit for bit (`ast_repro.checkpoint`), and
so refuses a resume whose configuration would make it a different run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ast_repro.config import ConfigError, TrainConfig

# Keys that may differ between a checkpoint and the config that resumes it.
RESUMABLE_KEYS = ("epochs", "num_workers", "progress", "tensorboard", "device")

# Every config field's default, for checkpoints written before a field existed.
_DEFAULTS = {field.name: field.default for field in dataclasses.fields(TrainConfig)}


def config_changes(saved: dict[str, Any], config: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """The keys outside `RESUMABLE_KEYS` whose value differs, as key -> (saved, new).

    A key newer than the checkpoint counts as its default, which is what that run used.
    """
    saved = {**_DEFAULTS, **saved}
    return {
        key: (saved.get(key), value)
        for key, value in config.to_dict().items()
        if key not in RESUMABLE_KEYS and saved.get(key) != value
    }


def check_resumable(last: Path, saved: dict[str, Any], config: TrainConfig) -> None:
    """Refuse to resume `last` (whose config is `saved`) with a config that changes the run.

    Raises:
        ConfigError: naming the checkpoint and each changed key with its old and new value.
    """
    changed = config_changes(saved, config)
    if changed:
        details = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
        raise ConfigError(f"{last}: cannot resume with a different config ({details})")
