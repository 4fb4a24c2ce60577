"""Tests of the training engine (ast_repro.train, build, crossval) on tiny data."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ast_repro import build as build_module
from ast_repro import train as train_module
from ast_repro.build import build_data
from ast_repro.cli import main
from ast_repro.config import ConfigError, resolve
from ast_repro.crossval import train_esc50_folds
from ast_repro.data import make_dataset
from ast_repro.datafiles import DatafileError, LabelMap, write_datafile, write_label_csv
from ast_repro.ensemble import LAST_EPOCH_LABEL, SELECTED_LABEL, load_predictions
from ast_repro.evaluate import evaluate_dataset, loss_on_logits
from ast_repro.frontend import batch_front_end, frontend_config
from ast_repro.metrics import compute_metrics
from ast_repro.model import create_model
from ast_repro.optim import (
    ADAM_BETAS,
    ADAM_WEIGHT_DECAY,
    adam_implementation,
    make_optimizer,
    make_scheduler,
    warmup_lr,
)
from ast_repro.pretrained import PROXY_FILE
from ast_repro.runtime import resolve_precision, setup
from ast_repro.sampling import DistributedWeightedSampler, write_weight_file
from ast_repro.train import TrainingDiverged, train
from tests.train_fixtures import MIDS, NAMES, tiny_config, write_split

# The smoke show's bar for test accuracy (chance is 1/35 = 0.029). The test speakers are voices
# the model never heard: a logistic regression over pooled log-mel features of the same twin
# reaches about 0.28, and the smoke recipe 0.37 (seed 0, 2 CPU threads); 0.2 leaves room for
# other machines' rounding.
SMOKE_TEST_ACCURACY = 0.2


def _model_state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


# ---------------------------------------------------------------------------- schedule


def test_warmup_is_the_original_staircase() -> None:
    """lr = step/1000 * base, set at steps 0, 50, ..., 1000 and kept in between."""
    base, current, seen = 2e-4, None, []
    for step in range(1200):
        value = warmup_lr(step, base)
        current = value if value is not None else current
        seen.append(current)
    assert all(lr == 0.0 for lr in seen[:50])  # steps 0..49 run at learning rate 0
    assert seen[50] == seen[99] == pytest.approx(0.05 * base)
    assert seen[999] == pytest.approx(0.95 * base)
    assert all(lr == pytest.approx(base) for lr in seen[1000:])
    assert warmup_lr(1050, base) is None  # nothing is set after step 1000


@pytest.mark.parametrize(
    ("recipe", "expected"),
    [
        # original `src/traintest.py`: logged AudioSet-full rates, halved after epoch 2
        ("audioset_full", [1e-5, 1e-5, 5e-6, 2.5e-6, 1.25e-6]),
        # ESC-50: epochs 1-5 at 1e-5, then x0.85 per epoch
        ("esc50", [1e-5] * 5 + [8.5e-6, 7.225e-6]),
        # balanced: halved every 5 epochs after epoch 10 (paper section 3.1)
        ("audioset_balanced", [5e-5] * 10 + [2.5e-5] * 5 + [1.25e-5] * 5 + [6.25e-6] * 5),
    ],
)
def test_step_decay_matches_the_logged_rates(recipe: str, expected: list[float]) -> None:
    config = resolve(recipe)
    model = torch.nn.Linear(2, 2)
    optimizer = make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, config)
    rates = []
    for _ in expected:
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()  # once per epoch, after validation
    assert rates == pytest.approx(expected, rel=1e-9)


def test_optimizer_is_the_original_adam() -> None:
    optimizer = make_optimizer(torch.nn.Linear(3, 3), resolve("speechcommands"))
    group = optimizer.param_groups[0]
    assert isinstance(optimizer, torch.optim.Adam)
    assert group["betas"] == (0.95, 0.999) and group["weight_decay"] == 5e-7
    assert group["lr"] == 2.5e-4 and len(optimizer.param_groups) == 1
    assert group["foreach"] and not group["fused"]  # the multi-tensor kernel on a CPU


def test_fused_and_foreach_adam_compute_the_plain_update() -> None:
    """Three steps of each Adam kernel from the same weights and gradients.

    foreach equals the per-parameter loop bit for bit on a CPU; fused (one kernel for all
    tensors, the CUDA choice) rounds in another order: within 1e-8 of updates of ~3e-3.
    """
    generator = torch.Generator().manual_seed(0)
    weights = [torch.randn(64, 64, generator=generator), torch.randn(64, generator=generator)]
    grads = [torch.randn(w.shape, generator=generator) for w in weights]
    results = {}
    for kind, keyword in (("plain", {"foreach": False, "fused": False}),
                          ("foreach", {"foreach": True}), ("fused", {"fused": True})):  # fmt: skip
        params = [torch.nn.Parameter(w.clone()) for w in weights]
        optimizer = torch.optim.Adam(
            params, lr=1e-3, betas=ADAM_BETAS, weight_decay=ADAM_WEIGHT_DECAY, **keyword
        )
        for step in range(3):
            for param, grad in zip(params, grads, strict=True):
                param.grad = grad * (step + 1)
            optimizer.step()
        results[kind] = torch.cat([p.detach().flatten() for p in params])
    moved = (results["plain"] - torch.cat([w.flatten() for w in weights])).abs().max()
    assert moved > 1e-3  # the steps did move the weights
    assert torch.equal(results["foreach"], results["plain"])
    torch.testing.assert_close(results["fused"], results["plain"], rtol=0, atol=1e-8)
    assert adam_implementation([torch.zeros(1)]) == {"foreach": True}


def test_losses_on_logits() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 4, generator=generator)
    one_hot = F.one_hot(torch.tensor([0, 3, 1, 1, 2]), 4).float()
    # CE on one-hot labels is the original's CE on argmax(labels)
    expected = F.cross_entropy(logits, one_hot.argmax(1))
    torch.testing.assert_close(loss_on_logits(logits, one_hot, "ce"), expected)
    # with mixup's soft labels it is -sum(y log softmax), not a truncated argmax
    soft = 0.7 * one_hot + 0.3 * one_hot.roll(1, dims=0)
    manual = -(soft * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
    torch.testing.assert_close(loss_on_logits(logits, soft, "ce"), manual)
    p = torch.sigmoid(logits)
    bce = -(soft * torch.log(p) + (1 - soft) * torch.log(1 - p)).mean()
    torch.testing.assert_close(loss_on_logits(logits, soft, "bce"), bce)
    with pytest.raises(ValueError, match="unknown loss"):
        loss_on_logits(logits, soft, "mse")


def test_precision_choices_on_this_machine() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(RuntimeError, match="fp16.*needs a CUDA device"):
        resolve_precision("fp16", cpu)
    runtime = setup(device="cpu")
    assert runtime.world_size == 1 and runtime.is_main and not runtime.grad_scaler().is_enabled()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bf16_and_fp16_training_on_cuda(results: Path, data: dict) -> None:
    for precision in ("bf16", "fp16"):
        config = tiny_config(data, precision=precision, epochs=1, run_name=precision)
        result = train(config)
        assert np.isfinite(result["final"]["train_loss"])
        metrics = json.loads(Path(result["metrics_path"]).read_text())
        assert metrics["precision"] == precision
        assert result["history"][0]["peak_memory_gib"] > 0
        assert 0 < result["history"][0]["data_wait_fraction"] < 1


# ---------------------------------------------------------------------------- a whole run


def test_tiny_run_writes_checkpoints_predictions_and_metrics(results: Path, data: dict) -> None:
    config = tiny_config(data, mixup=0.5, wa=True, wa_start=1, wa_end=2, run_name="tiny")
    result = train(config)
    run = results / "train" / "tiny"
    ckpts = run / "checkpoints"
    assert Path(result["run_dir"]) == run
    for name in ("epoch_1.pt", "epoch_2.pt", "last.pt", "best.pt", "wa.pt"):
        assert (ckpts / name).is_file(), name
    # weight averaging: the uniform mean of the epoch weights (validate_wa)
    first, second = _model_state(ckpts / "epoch_1.pt"), _model_state(ckpts / "epoch_2.pt")
    wa = _model_state(ckpts / "wa.pt")
    for key in first:
        torch.testing.assert_close(wa[key], (first[key] + second[key]) / 2, rtol=0, atol=1e-7)
    # best.pt is the epoch with the best validation accuracy (first one on ties)
    history = result["history"]
    # every epoch records its training speed; peak memory is a GPU figure only
    assert all(record["train_clips_per_second"] > 0 for record in history)
    assert not any("peak_memory_gib" in record for record in history)
    # MFU needs a GPU's nominal peak; the data wait is a share of the epoch's step time
    assert all(record["mfu"] is None for record in history)
    assert all(0 < record["data_wait_fraction"] < 1 for record in history)
    best_epoch = 1 + int(np.argmax([record["accuracy"] for record in history]))
    for key, value in _model_state(ckpts / "best.pt").items():
        assert torch.equal(value, _model_state(ckpts / f"epoch_{best_epoch}.pt")[key])
    # the cumulative ensemble: the mean of the epochs' predictions, scored
    preds = [load_predictions(run / "predictions" / f"valid_{e}.npz") for e in (1, 2)]
    cumulative = compute_metrics((preds[0].probs + preds[1].probs) / 2, preds[0].targets)
    assert history[1]["cum_mAP"] == pytest.approx(cumulative["mAP"])
    assert history[0]["cum_mAP"] == pytest.approx(history[0]["mAP"])
    assert history[1]["mAP"] == pytest.approx(
        compute_metrics(preds[1].probs, preds[1].targets)["mAP"]
    )
    # metrics.json records the config, every epoch and the final evaluations
    record = json.loads((run / "metrics.json").read_text())
    assert record["complete"] and record["profile"] == "smoke" and record["seed"] == 0
    assert record["config"] == config.to_dict()
    assert [e["epoch"] for e in record["metrics"]["epochs"]] == [1, 2]
    assert record["metrics"]["wa"]["accuracy"] == pytest.approx(result["wa"]["accuracy"])
    test = record["metrics"]["test"]
    assert test["epoch"] == best_epoch and "test set" in test["label"]
    best_test = load_predictions(run / "predictions" / "test_best.npz")
    assert test["accuracy"] == pytest.approx(
        compute_metrics(best_test.probs, best_test.targets)["accuracy"]
    )
    assert best_test.datafile == data["eval_data"]


def test_training_learns_the_tones(results: Path, data: dict) -> None:
    config = tiny_config(
        data, noise=False, freqm=0, timem=0, epochs=8, lrscheduler_start=20, run_name="learn"
    )
    history = train(config)["history"]
    assert history[-1]["accuracy"] == 1.0  # chance is 1/3
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]


def test_waveform_cache_changes_nothing_but_speed(results: Path, data: dict) -> None:
    plain = train(tiny_config(data, mixup=0.5, run_name="plain"))["history"]
    cached = train(tiny_config(data, mixup=0.5, waveform_cache=True, run_name="cached"))
    assert list(Path(data["train_data"]).parent.glob("cache/*.cache.json"))
    for a, b in zip(plain, cached["history"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a["mAP"] == pytest.approx(b["mAP"], rel=1e-6)


def test_compiled_training_matches_eager(
    results: Path, data: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """compile=True traces training and evaluation with dynamo; with its "eager" backend
    (the graphs run as traced, no code generation: seconds on a CPU) the run is the eager
    run's, and checkpoints keep the plain parameter names."""
    monkeypatch.setattr(build_module, "COMPILE_BACKEND", "eager")
    plain = train(tiny_config(data, epochs=1, run_name="eager"))
    compiled = train(tiny_config(data, epochs=1, compile=True, run_name="compiled"))
    for key in ("train_loss", "valid_loss", "mAP"):
        assert compiled["final"][key] == pytest.approx(plain["final"][key], rel=1e-6), key
    states = [_model_state(Path(r["checkpoint_dir"]) / "last.pt") for r in (plain, compiled)]
    assert list(states[0]) == list(states[1])


@pytest.mark.slow
def test_inductor_compiled_logits_match_eager() -> None:
    """The default backend (inductor, C++ kernels on a CPU; about a minute to compile)."""
    torch.manual_seed(0)
    model = create_model("test", max_length=32, num_mel_bins=32, num_labels=3).eval()
    x = torch.randn(4, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        eager = model(x)
        config = tiny_config({}, compile=True)
        compiled = build_module.compile_model(model, config)(x)
    assert compiled is not eager
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)


def test_warmup_runs_the_first_50_steps_at_lr_zero(results: Path, data: dict) -> None:
    config = tiny_config(data, warmup=True, run_name="warm")  # 2 epochs x 3 steps
    result = train(config)
    assert [record["lr"] for record in result["history"]] == [0.0, 0.0]
    initial = train_module.build_model(config, 3, setup(device="cpu")).state_dict()
    for key, value in _model_state(Path(result["checkpoint_dir"]) / "last.pt").items():
        assert torch.equal(value, initial[key]), key


def test_non_finite_loss_stops_the_run_and_keeps_the_last_checkpoint(
    results: Path, data: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, calls = train_module.loss_on_logits, []

    def poisoned(logits: torch.Tensor, targets: torch.Tensor, kind: str) -> torch.Tensor:
        calls.append(kind)
        loss = real(logits, targets, kind)
        return loss * float("nan") if len(calls) == 5 else loss  # epoch 2, step 1

    monkeypatch.setattr(train_module, "loss_on_logits", poisoned)
    last = results / "train" / "nan" / "checkpoints" / "last.pt"
    with pytest.raises(TrainingDiverged, match=r"loss is nan at epoch 2, step 1") as info:
        train(tiny_config(data, run_name="nan"))
    assert str(last) in str(info.value)
    state = torch.load(last, weights_only=True)
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values())
    record = json.loads((results / "train" / "nan" / "metrics.json").read_text())
    assert not record["complete"] and len(record["metrics"]["epochs"]) == 1


def test_a_finished_run_is_not_overwritten(results: Path, data: dict) -> None:
    config = tiny_config(data, epochs=1, run_name="once")
    train(config)
    with pytest.raises(ConfigError, match=r"already holds a run.*--resume"):
        train(config)


# ---------------------------------------------------------------------------- data paths


def test_device_front_end_scores_like_the_worker_front_end(data: dict) -> None:
    worker = tiny_config(data)
    device = tiny_config(data, frontend="device")
    model = create_model("test", max_length=32, num_mel_bins=32, num_labels=3)
    runtime = setup(device="cpu")
    frontends = [frontend_config(worker), frontend_config(device)]
    assert [frontend.batched for frontend in frontends] == [False, True]
    results = [
        evaluate_dataset(
            model,
            make_dataset(frontend, data["valid_data"], data["label_csv"]),
            runtime=runtime,
            batch_size=4,
            loss="bce",
            frontend=batch_front_end(frontend),
        )
        for frontend in frontends
    ]
    np.testing.assert_allclose(results[0].logits, results[1].logits, atol=1e-4)
    np.testing.assert_array_equal(results[0].targets, results[1].targets)


def test_device_front_end_trains_with_augmentation(
    results: Path, data: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, seen = train_module.loss_on_logits, []

    def spy(logits: torch.Tensor, targets: torch.Tensor, kind: str) -> torch.Tensor:
        seen.append(targets.detach().cpu())
        return real(logits, targets, kind)

    monkeypatch.setattr(train_module, "loss_on_logits", spy)
    plain = train(tiny_config(data, frontend="device", epochs=1, run_name="d0", mixup=0.0))
    one_hot, seen[:] = torch.cat(seen), []
    mixed = train(tiny_config(data, frontend="device", epochs=1, run_name="d1", mixup=1.0))
    soft = torch.cat(seen)
    assert np.isfinite(plain["final"]["train_loss"]) and np.isfinite(mixed["final"]["train_loss"])
    assert plain["final"]["train_loss"] != mixed["final"]["train_loss"]
    # Without mixup the loss sees one-hot rows. With mixup=1 every clip is mixed with a
    # partner, lam * y + (1 - lam) * y_partner with lam ~ Beta(10, 10): rows still sum to 1,
    # and a partner of another class splits the row into two values well inside (0, 1).
    assert len(one_hot) == len(soft) == 12
    assert set(one_hot.unique().tolist()) == {0.0, 1.0}
    torch.testing.assert_close(one_hot.sum(1), torch.ones(12), rtol=0, atol=0)
    torch.testing.assert_close(soft.sum(1), torch.ones(12))
    blended = soft[(soft > 0).sum(1) == 2]
    assert len(blended) >= 2, soft
    assert ((blended == 0) | ((blended > 0.1) & (blended < 0.9))).all(), blended


def test_balanced_sampler_uses_the_original_weights(tmp_path: Path, data: dict) -> None:
    root = tmp_path / "imbalanced"
    root.mkdir()
    shutil.copytree(Path(data["train_data"]).parent / "audio", root / "audio")
    entries = [{"wav": f"audio/train_{k}_{i}.wav", "labels": MIDS[k]}
               for k, count in enumerate((4, 2, 1)) for i in range(count)]  # fmt: skip
    write_datafile(root / "train.json", entries)
    config = tiny_config({**data, "train_data": str(root / "train.json")}, balanced_sampler=True)
    sampler = build_data(config, setup(device="cpu")).sampler
    assert isinstance(sampler, DistributedWeightedSampler)
    per_class = {0: 1000 / 4.01, 1: 1000 / 2.01, 2: 1000 / 1.01}  # gen_weight_file.py
    expected = [per_class[k] for k, count in enumerate((4, 2, 1)) for _ in range(count)]
    np.testing.assert_allclose(sampler.weights.numpy(), expected)
    assert len(sampler) == 7  # len(weights) draws per epoch, with replacement
    # a weight file beside the datafile takes precedence
    write_weight_file(root / "train_weight.csv", np.eye(7)[2])
    sampler = build_data(config, setup(device="cpu")).sampler
    sampler.set_epoch(3)
    assert set(sampler) == {2}


def test_imagenet_init_goes_through_the_weights_module(
    results: Path, tmp_path: Path, data: dict
) -> None:
    """imagenet_pretrain on the `test` size loads the proxy file in timm's DeiT format."""
    from ast_repro.proxy_pretrain import build_proxy_vit

    torch.manual_seed(5)
    deit = build_proxy_vit().state_dict()
    folder = tmp_path / "pretrained"  # AST_REPRO_PRETRAINED_DIR of the `results` fixture
    folder.mkdir()
    torch.save(deit, folder / PROXY_FILE)
    config = tiny_config(data, imagenet_pretrain=True)
    model = train_module.build_model(config, 3, setup(device="cpu"))
    kernel = deit["patch_embed.proj.weight"].sum(dim=1, keepdim=True)  # the original's sum
    assert torch.equal(model.patch_embed.proj.weight, kernel)
    assert torch.equal(model.blocks[1].mlp.fc2.weight, deit["blocks.1.mlp.fc2.weight"])
    assert torch.equal(model.cls_token, deit["cls_token"])
    # pos_embed_mode reaches the adaptation: on a grid bigger than the proxy's 3 x 3 (so
    # that every mode interpolates) each mode gives its own grid positions, all keeping the
    # cls and dist positions
    grids = {}
    for mode in ("ast", "nearest", "reinit"):
        wide = dataclasses.replace(config, pos_embed_mode=mode, target_length=96, timem=0)
        adapted = train_module.build_model(wide, 3, setup(device="cpu")).pos_embed
        torch.testing.assert_close(adapted[:, :2], deit["pos_embed"][:, :2])
        grids[mode] = adapted[:, 2:]
    assert not torch.allclose(grids["ast"], grids["nearest"])
    assert not torch.allclose(grids["ast"], grids["reinit"])


def test_audioset_init_from_an_audioset_run(results: Path, data: dict) -> None:
    """AST-P chained from one of our AudioSet runs: backbone copied, grid adapted, fresh head."""
    source = tiny_config(data, run_name="as", epochs=1)
    source = dataclasses.replace(source, dataset="audioset", train_split="train")
    checkpoint = Path(train(source)["checkpoint_dir"]) / "last.pt"
    trained = torch.load(checkpoint, weights_only=True)["model"]
    config = tiny_config(
        data, target_length=48, timem=8, audioset_pretrain=True, imagenet_pretrain=True,
        pretrained_path=str(checkpoint), recipe="smoke_esc50", folds="1",
    )  # fmt: skip
    model = train_module.build_model(config, 3, setup(device="cpu"))
    assert model.config.grid == (2, 4)  # 32 x 48 at stride 10, from the source's 2 x 2
    for key in ("blocks.0.attn.qkv.weight", "norm.weight", "patch_embed.proj.weight"):
        assert torch.equal(model.state_dict()[key], trained[key]), key
    assert not torch.equal(model.mlp_head[1].weight, trained["mlp_head.1.weight"])
    torch.testing.assert_close(model.pos_embed[:, :2], trained["pos_embed"][:, :2])
    with pytest.raises(ConfigError, match="needs an AudioSet run"):
        speech = Path(train(tiny_config(data, run_name="sc", epochs=1))["checkpoint_dir"])
        train_module.build_model(
            dataclasses.replace(config, pretrained_path=str(speech / "last.pt")),
            3,
            setup(device="cpu"),
        )


def test_missing_data_says_how_to_prepare_it(tmp_path: Path) -> None:
    config = resolve("smoke_speechcommands", {"data_root": str(tmp_path / "nothing")})
    with pytest.raises(DatafileError, match=r"missing\. Prepare the data with `ast-repro data"):
        build_data(config, setup(device="cpu"))


def test_esc50_cross_validation_reports_both_figures(results: Path, tmp_path: Path) -> None:
    root = tmp_path / "esc50"
    folder = root / "datafiles"
    write_label_csv(folder / "esc_class_labels_indices.csv", LabelMap(mids=MIDS, names=NAMES))
    for fold in (1, 2):
        write_split(folder, f"esc_train_data_{fold}", 3, seed=10 + fold)
        write_split(folder, f"esc_eval_data_{fold}", 2, seed=20 + fold)
    config = resolve(
        "smoke_esc50",
        {"data_root": str(root), "target_length": 32, "num_mel_bins": 32, "freqm": 8,
         "timem": 8, "batch_size": 3, "epochs": 3, "progress": False, "run_name": "cv",
         "imagenet_pretrain": False},
    )  # fmt: skip
    out = train_esc50_folds(config)
    per_fold = []
    for fold in (1, 2):
        record = json.loads((results / "train" / "cv" / f"fold{fold}" / "metrics.json").read_text())
        assert record["config"]["folds"] == str(fold)
        per_fold.append([epoch["accuracy"] for epoch in record["metrics"]["epochs"]])
    mean = np.mean(per_fold, axis=0)
    summary = json.loads((results / "train" / "cv" / "metrics.json").read_text())["metrics"]
    selected, last = (
        summary["cross_validation"]["selected"],
        summary["cross_validation"]["last_epoch"],
    )
    assert selected["label"] == SELECTED_LABEL and last["label"] == LAST_EPOCH_LABEL
    assert selected["epoch"] == 1 + int(np.argmax(mean))
    assert selected["mean"] == pytest.approx(mean.max()) and last["mean"] == pytest.approx(mean[-1])
    assert last["fold_accuracies"] == pytest.approx([row[-1] for row in per_fold])
    assert out["summary"] == summary["cross_validation"]
    # save_model=False (the ESC-50 recipe): only the last epoch's weights stay, with best and last
    kept = {p.name for p in (results / "train" / "cv" / "fold1" / "checkpoints").iterdir()}
    assert kept == {"epoch_3.pt", "best.pt", "last.pt"}
    with pytest.raises(ConfigError, match="train\\(\\) runs one fold"):
        train(config)


def test_train_command(results: Path, data: dict, capsys: pytest.CaptureFixture) -> None:
    sets = [f"{key}={value}" for key, value in data.items()]
    sets += ["target_length=32", "num_mel_bins=32", "freqm=4", "timem=4", "epochs=1"]
    sets += ["imagenet_pretrain=false", "batch_size=6", "progress=false", "run_name=cli"]
    argv = ["train", "--recipe", "smoke_speechcommands"]
    for item in sets:
        argv += ["--set", item]
    assert main(argv) == 0
    record = json.loads((results / "train" / "cli" / "metrics.json").read_text())
    assert record["config"]["batch_size"] == 6 and record["config"]["eval_batch_size"] == 12
    assert "metrics ->" in capsys.readouterr().out
    assert main(["train", "--recipe", "smoke_speechcommands", "--set", "epoch=2"]) == 2
    assert "unknown config key 'epoch'" in capsys.readouterr().err


# ---------------------------------------------------------------------------- the show


@pytest.mark.slow
def test_smoke_recipe_learns_the_speech_commands_twin(results: Path, tmp_path: Path) -> None:
    """The smoke recipe trains the tiny AST on the Speech Commands twin, on CPU, in minutes.

    The test speakers are voices the model never heard; chance is 1/35.
    """
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng): no twin to train on")
    root = tmp_path / "speechcommands"
    argv = ["data", "speechcommands", "--synthetic", "--root", str(root), "--no-progress"]
    assert main(argv) == 0
    config = resolve("smoke_speechcommands", {"data_root": str(root), "progress": False})
    result = train(config)
    record = json.loads(Path(result["metrics_path"]).read_text())
    assert record["complete"] and record["profile"] == "smoke"
    test = record["metrics"]["test"]
    assert test["epoch"] == record["metrics"]["best"]["epoch"]
    assert test["accuracy"] > SMOKE_TEST_ACCURACY, test


def test_tensorboard_logging(results: Path, data: dict) -> None:
    config = tiny_config(data, epochs=1, tensorboard=True, run_name="tb")
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        with pytest.raises(ConfigError, match=r"pip install 'ast-repro\[tensorboard\]'"):
            train(config)
        return
    record = train(config)["history"][0]
    events = EventAccumulator(str(results / "train" / "tb" / "tensorboard"))
    events.Reload()
    # Every step's loss and lr; the epoch's train_loss is the mean over its 3 equal batches.
    steps = events.Scalars("train/loss")
    assert [event.step for event in steps] == [1, 2, 3]
    assert np.mean([event.value for event in steps]) == pytest.approx(record["train_loss"], 1e-5)
    assert events.Scalars("train/lr")[-1].value == pytest.approx(record["lr"], rel=1e-6)
    for key in ("mAP", "valid_loss", "accuracy"):
        (epoch,) = events.Scalars(f"valid/{key}")
        assert (epoch.step, epoch.value) == (1, pytest.approx(record[key], rel=1e-6)), key
