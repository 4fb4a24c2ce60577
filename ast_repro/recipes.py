"""The paper's training recipes as override sets over `TrainConfig`'s defaults (paper section 3).

The original passes its hyperparameters through `egs/audioset/run.sh`, `egs/esc50/run_esc.sh`
and `egs/speechcommands/run_sc.sh` into `src/run.py`. Each recipe here is the dict of values
one of those scripts sets where it differs from the defaults (the AudioSet full recipe);
the `smoke_*` variants run the same code path on CPU in minutes. `ast_repro.config.resolve`
turns a recipe and overrides into a validated config.
"""

from __future__ import annotations

from typing import Any

from ast_repro.features import AUDIOSET_STATS, ESC50_STATS, SPEECHCOMMANDS_STATS, NormStats


def _stats(stats: NormStats) -> dict[str, float]:
    return {"norm_mean": stats.mean, "norm_std": stats.std}


# The original's recipes: egs/audioset/run.sh, egs/esc50/run_esc.sh and
# egs/speechcommands/run_sc.sh, as overrides of `TrainConfig`'s defaults.
_AUDIOSET_FULL: dict[str, Any] = {
    "dataset": "audioset",
    "train_split": "train_full",
    **_stats(AUDIOSET_STATS),
    "balanced_sampler": True,
    "wa": True,
    "wa_start": 1,
    "wa_end": 5,
}
_AUDIOSET_BALANCED: dict[str, Any] = {
    **_AUDIOSET_FULL,
    "train_split": "train",
    "balanced_sampler": False,
    "lr": 5e-5,
    "epochs": 25,
    "lrscheduler_start": 10,
    "lrscheduler_step": 5,
    "wa_start": 6,
    "wa_end": 25,
}
_ESC50: dict[str, Any] = {
    "dataset": "esc50",
    **_stats(ESC50_STATS),
    "target_length": 512,
    "freqm": 24,
    "timem": 96,
    "mixup": 0.0,
    "batch_size": 48,
    "lr": 1e-5,
    "epochs": 25,
    "lrscheduler_start": 5,
    "lrscheduler_step": 1,
    "lrscheduler_decay": 0.85,
    "warmup": False,
    "loss": "ce",
    "metric": "acc",
    "audioset_pretrain": True,
    "save_model": False,
}
_SPEECHCOMMANDS: dict[str, Any] = {
    "dataset": "speechcommands",
    **_stats(SPEECHCOMMANDS_STATS),
    "target_length": 128,
    "freqm": 48,
    "timem": 48,
    # NOTE: run_sc.sh says mixup 0.6 while the released log of the 98.12% run
    # (egs/speechcommands/exp/) used 0.5. We follow the script, as for every other value
    # (its scheduler too); `--set mixup=0.5` repeats the logged run.
    "mixup": 0.6,
    "batch_size": 128,
    "lr": 2.5e-4,
    "epochs": 30,
    "lrscheduler_start": 5,
    "lrscheduler_step": 1,
    "lrscheduler_decay": 0.85,
    "warmup": False,
    "loss": "bce",
    "metric": "acc",
    "noise": True,
    "select_best": True,
}

# Smoke variants: the same code path on CPU in minutes, on the offline twins, with the tiny
# `test` model whose ImageNet stand-in is the digits proxy (ast_repro.proxy_pretrain).
_SMOKE: dict[str, Any] = {
    "profile": "smoke",
    "model_size": "test",
    "num_workers": 0,
    "epochs": 2,
    "batch_size": 8,
}

RECIPES: dict[str, dict[str, Any]] = {
    "audioset_full": _AUDIOSET_FULL,
    "audioset_balanced": _AUDIOSET_BALANCED,
    "esc50": _ESC50,
    "esc50_imagenet": {**_ESC50, "audioset_pretrain": False, "lr": 1e-4},
    "speechcommands": _SPEECHCOMMANDS,
    # AudioSet smoke: the warm-up staircase spans 1000 steps and keeps lr at 0 for the first
    # 50, longer than a whole smoke run on the twin, so it is off here.
    "smoke_audioset_full": {**_AUDIOSET_FULL, **_SMOKE, "target_length": 256, "timem": 48,
                            "lr": 1e-3, "warmup": False, "wa_start": 1, "wa_end": 2},
    "smoke_audioset_balanced": {**_AUDIOSET_BALANCED, **_SMOKE, "target_length": 256,
                                "timem": 48, "lr": 1e-3, "warmup": False, "lrscheduler_start": 1,
                                "lrscheduler_step": 1, "epochs": 3, "wa_start": 2, "wa_end": 3},
    # The smoke profile has no AudioSet model of the `test` size to start from: pass
    # `audioset_pretrain=true pretrained_path=<a smoke_audioset run's checkpoint>` to chain.
    "smoke_esc50": {**_ESC50, **_SMOKE, "audioset_pretrain": False, "folds": "1,2",
                    "lr": 1e-3, "lrscheduler_start": 1, "epochs": 3},
    "smoke_esc50_imagenet": {**_ESC50, **_SMOKE, "audioset_pretrain": False, "folds": "1,2",
                             "lr": 1e-3, "lrscheduler_start": 1, "epochs": 3},
    # Speech Commands smoke: 16 clips per word from 16 voices, tested on 2 unheard voices.
    # At this size the tiny model learns only with cross entropy (with BCE over 35 classes
    # it settles on the class prior) and without mixup and masks (they slow it several
    # fold); 40 epochs take about 70 s on 2 CPU cores and reach 0.37 test accuracy (chance 0.03).
    "smoke_speechcommands": {**_SPEECHCOMMANDS, **_SMOKE, "loss": "ce", "mixup": 0.0,
                             "freqm": 0, "timem": 0, "batch_size": 16, "lr": 1e-3,
                             "epochs": 40, "lrscheduler_start": 30},
}  # fmt: skip
