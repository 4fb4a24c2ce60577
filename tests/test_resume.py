"""Resumption: a killed run continued with --resume ends bit-identical to an uninterrupted one."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from ast_repro import checkpoint as ckpt
from ast_repro import train as train_module
from ast_repro.config import ConfigError
from ast_repro.datafiles import LabelMap, read_label_csv, write_label_csv
from ast_repro.seeding import rng_state, set_rng_state
from ast_repro.train import TrainingDiverged, train
from tests.train_fixtures import tiny_config


class Killed(Exception):
    """Stands in for the process being killed after a checkpoint was written."""


def _kill_after(epoch: int):
    def callback(done: int, record: dict) -> None:
        if done == epoch:
            raise Killed(f"killed after epoch {done}")

    return callback


def _without_timing(history: list[dict]) -> list[dict]:
    timing = {"seconds", "train_clips_per_second", "peak_memory_gib", "mfu", "data_wait_fraction"}
    return [{k: v for k, v in record.items() if k not in timing} for record in history]


def _assert_same_tensors(a: object, b: object, where: str = "") -> None:
    """Recursively: every tensor equal bit for bit, every other leaf equal."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            _assert_same_tensors(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(results: Path, data: dict) -> None:
    # mixup, masks, noise and a decaying lr: every random draw and every state matters
    settings = dict(epochs=3, mixup=0.5, lrscheduler_start=1, lrscheduler_decay=0.5)
    straight = train(tiny_config(data, run_name="straight", **settings))

    config = tiny_config(data, run_name="killed", **settings)
    with pytest.raises(Killed):
        train(config, on_epoch_end=_kill_after(1))
    assert ckpt.load(results / "train" / "killed" / "checkpoints" / "last.pt")["epoch"] == 1
    resumed = train(config, resume=True)

    assert _without_timing(resumed["history"]) == _without_timing(straight["history"])
    a = ckpt.load(results / "train" / "straight" / "checkpoints" / "last.pt")
    b = ckpt.load(results / "train" / "killed" / "checkpoints" / "last.pt")
    assert a["epoch"] == b["epoch"] == 3 and a["global_step"] == b["global_step"] == 9
    for part in ("model", "optimizer", "scheduler", "scaler"):
        _assert_same_tensors(a[part], b[part], part)
    assert resumed["test"] == straight["test"]


def test_worker_processes_draw_what_the_main_process_draws(results: Path, data: dict) -> None:
    """Per-item generators seeded by (seed, epoch, index): workers do not change the run."""
    settings = dict(epochs=1, mixup=0.5)
    inline = train(tiny_config(data, run_name="w0", num_workers=0, **settings))
    workers = train(tiny_config(data, run_name="w2", num_workers=2, **settings))
    assert inline["final"]["train_loss"] == workers["final"]["train_loss"]
    a = ckpt.load(Path(inline["checkpoint_dir"]) / "last.pt")["model"]
    b = ckpt.load(Path(workers["checkpoint_dir"]) / "last.pt")["model"]
    _assert_same_tensors(a, b, "model")


def test_resume_refuses_a_different_config_but_allows_more_epochs(
    results: Path, data: dict
) -> None:
    config = tiny_config(data, run_name="grow", epochs=1)
    train(config)
    with pytest.raises(ConfigError, match=r"cannot resume with a different config \(mixup: 0.0"):
        train(tiny_config(data, run_name="grow", epochs=2, mixup=0.5), resume=True)
    longer = train(tiny_config(data, run_name="grow", epochs=2), resume=True)
    assert [record["epoch"] for record in longer["history"]] == [1, 2]
    # resuming a finished run trains nothing more and reports the same history
    again = train(tiny_config(data, run_name="grow", epochs=2), resume=True)
    assert _without_timing(again["history"]) == _without_timing(longer["history"])
    metrics = json.loads((results / "train" / "grow" / "metrics.json").read_text())
    assert metrics["metrics"]["resumed"] == [{"after_epoch": 1, "changed": {"epochs": [1, 2]}}]


def test_resume_may_change_the_schedule_which_takes_over_at_that_epoch(
    results: Path, data: dict
) -> None:
    settings = dict(epochs=2, lrscheduler_start=1, lrscheduler_decay=0.5, lr=1e-3)
    train(tiny_config(data, run_name="sched", **settings))
    changed = dict(settings, epochs=4, lr=4e-4, lrscheduler_start=3, lrscheduler_decay=0.25)
    resumed = train(tiny_config(data, run_name="sched", **changed), resume=True)
    # epochs 1-2 ran at 1e-3 then 5e-4; after epoch 2 the new schedule gives 4e-4 (no
    # milestone up to 2), after epoch 3 one decay: 1e-4
    assert [record["lr"] for record in resumed["history"]] == pytest.approx(
        [1e-3, 5e-4, 4e-4, 1e-4]
    )
    last = ckpt.load(results / "train" / "sched" / "checkpoints" / "last.pt")
    assert last["resumed"] == [
        {
            "after_epoch": 2,
            "changed": {
                "lr": [1e-3, 4e-4],
                "epochs": [2, 4],
                "lrscheduler_start": [1, 3],
                "lrscheduler_decay": [0.5, 0.25],
            },
        }
    ]
    assert last["optimizer"]["param_groups"][0]["lr"] == pytest.approx(4e-4 * 0.25**2)


def test_a_diverged_run_follows_its_own_advice(
    results: Path, data: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    train(tiny_config(data, run_name="div", epochs=1, lr=1e-3))
    real = train_module.loss_on_logits
    monkeypatch.setattr(train_module, "loss_on_logits", lambda *args: real(*args) * float("nan"))
    with pytest.raises(TrainingDiverged) as info:
        train(tiny_config(data, run_name="div", epochs=2, lr=1e-3), resume=True)
    monkeypatch.setattr(train_module, "loss_on_logits", real)
    advice = re.search(
        r"Resume it with a lower lr \(--resume --set lr=([0-9.e-]+)\)", str(info.value)
    )
    assert advice is not None, str(info.value)
    assert "the last good checkpoint is" in str(info.value)
    lower = float(advice.group(1))
    assert lower == pytest.approx(1e-4)
    # the advice, as a command: --resume --set lr=<lower>
    resumed = train(tiny_config(data, run_name="div", epochs=2, lr=lower), resume=True)
    assert [record["epoch"] for record in resumed["history"]] == [1, 2]
    assert resumed["history"][1]["lr"] == pytest.approx(lower)
    metrics = json.loads((results / "train" / "div" / "metrics.json").read_text())
    assert metrics["metrics"]["resumed"] == [
        {"after_epoch": 1, "changed": {"lr": [1e-3, lower], "epochs": [1, 2]}}
    ]
    assert metrics["config"]["lr"] == lower


def test_resume_refuses_a_label_csv_in_another_order(results: Path, data: dict) -> None:
    train(tiny_config(data, run_name="order", epochs=1))
    # the same file rewritten in another order (as re-preparing a dataset can do)
    labels = read_label_csv(data["label_csv"])
    write_label_csv(data["label_csv"], LabelMap(labels.mids[::-1], labels.names[::-1]))
    with pytest.raises(ConfigError, match="label csv has changed"):
        train(tiny_config(data, run_name="order", epochs=2), resume=True)


def test_resume_takes_a_config_key_newer_than_the_checkpoint_as_its_default(
    results: Path, data: dict
) -> None:
    train(tiny_config(data, run_name="older", epochs=1))
    last = results / "train" / "older" / "checkpoints" / "last.pt"
    state = ckpt.load(last)
    del state["config"]["pos_embed_mode"]  # as written before the key existed
    torch.save(state, last)
    resumed = train(tiny_config(data, run_name="older", epochs=2), resume=True)
    assert [record["epoch"] for record in resumed["history"]] == [1, 2]
    state = ckpt.load(last)
    state["config"]["pos_embed_mode"] = "nearest"  # a real difference is still refused
    torch.save(state, last)
    with pytest.raises(ConfigError, match=r"pos_embed_mode: 'nearest' -> 'ast'"):
        train(tiny_config(data, run_name="older", epochs=3), resume=True)


def test_resume_without_a_checkpoint_starts_fresh(
    results: Path, data: dict, capsys: pytest.CaptureFixture
) -> None:
    result = train(tiny_config(data, run_name="fresh", epochs=1), resume=True)
    assert len(result["history"]) == 1
    assert "starting fresh from scratch" in capsys.readouterr().out


def test_checkpoints_hold_what_resumption_and_evaluation_need(results: Path, data: dict) -> None:
    config = tiny_config(data, run_name="contents", epochs=1)
    train(config)
    folder = results / "train" / "contents" / "checkpoints"
    last = torch.load(folder / "last.pt", map_location="cpu", weights_only=True)
    for key in ("model", "model_config", "labels", "config", "optimizer", "scheduler",
                "scaler", "epoch", "global_step", "sampler", "rng", "history", "best"):  # fmt: skip
        assert key in last, key
    assert last["config"] == config.to_dict()
    assert last["sampler"] == {"seed": config.seed, "epoch": 1}
    assert last["labels"]["names"] == ["low tone", "mid tone", "high tone"]
    epoch = torch.load(folder / "epoch_1.pt", map_location="cpu", weights_only=True)
    assert "optimizer" not in epoch  # per-epoch files keep weights, not optimizer moments
    _assert_same_tensors(epoch["model"], last["model"], "model")
    with pytest.raises(ckpt.CheckpointError, match="checkpoint not found"):
        ckpt.load(folder / "epoch_9.pt")


def test_rng_state_round_trip() -> None:
    state = rng_state()
    first = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    set_rng_state(state)
    second = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    assert torch.equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert first[2] == second[2]
