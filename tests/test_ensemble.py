"""Tests of ast_repro.ensemble: weight averaging, prediction ensembles, the ESC-50 summary and
the `ast-repro ensemble` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ast_repro import cli
from ast_repro.ensemble import (
    LAST_EPOCH_LABEL,
    SELECTED_LABEL,
    CumulativeEnsemble,
    EnsembleError,
    average_predictions,
    average_state_dicts,
    esc50_summary,
    load_predictions,
    load_state_dict,
    save_predictions,
    weight_average,
)
from ast_repro.metrics import compute_metrics


def _linear(seed: int) -> torch.nn.Linear:
    torch.manual_seed(seed)
    return torch.nn.Linear(6, 3)


def test_average_state_dicts_by_hand_prefix_and_wrapping() -> None:
    a = {"module.w": torch.tensor([1.0, 2.0]), "module.steps": torch.tensor(4)}
    b = {"model": {"w": torch.tensor([3.0, 5.0]), "steps": torch.tensor(9)}, "epoch": 2}
    averaged = average_state_dicts([a, b])
    assert set(averaged) == {"w", "steps"}
    torch.testing.assert_close(averaged["w"], torch.tensor([2.0, 3.5]), rtol=0, atol=0)
    assert averaged["steps"].item() == 9 and averaged["steps"].dtype == torch.int64
    half = average_state_dicts([{"w": torch.tensor([1.0], dtype=torch.bfloat16)}] * 3)
    assert half["w"].dtype == torch.bfloat16 and half["w"].item() == 1.0


def test_weight_average_of_linear_models_averages_their_outputs(tmp_path: Path) -> None:
    models = [_linear(seed) for seed in range(1, 6)]
    for epoch, model in enumerate(models, start=1):
        torch.save({"model": model.state_dict(), "epoch": epoch}, tmp_path / f"m.{epoch}.pth")
    averaged = weight_average(str(tmp_path / "m.{epoch}.pth"), start=2, end=4)
    probe = _linear(0)
    probe.load_state_dict(averaged)
    x = torch.randn(7, 6)
    expected = torch.stack([m(x) for m in models[1:4]]).mean(dim=0)  # epochs 2..4 inclusive
    torch.testing.assert_close(probe(x), expected, rtol=0, atol=1e-6)
    with pytest.raises(EnsembleError, match=r"missing: .*m\.6\.pth"):
        weight_average(str(tmp_path / "m.{epoch}.pth"), start=4, end=6)
    with pytest.raises(EnsembleError, match="epoch"):
        weight_average(str(tmp_path / "m.pth"), start=1, end=2)


def test_average_state_dicts_rejects_mismatches(tmp_path: Path) -> None:
    with pytest.raises(EnsembleError, match="keys differ"):
        average_state_dicts([{"w": torch.zeros(2)}, {"v": torch.zeros(2)}])
    with pytest.raises(EnsembleError, match="shape"):
        average_state_dicts([{"w": torch.zeros(2)}, {"w": torch.zeros(3)}])
    with pytest.raises(EnsembleError, match="not found"):
        load_state_dict(tmp_path / "absent.pth")
    with pytest.raises(EnsembleError, match="state dict"):
        load_state_dict({"model": "not tensors"})


def test_prediction_file_round_trip(tmp_path: Path) -> None:
    probs = np.random.default_rng(0).random((4, 3)).astype(np.float32)
    targets = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    path = tmp_path / "preds" / "predictions_3.npz"
    save_predictions(path, probs=probs, targets=targets, datafile="data/eval.json")
    assert sorted(p.name for p in path.parent.iterdir()) == ["predictions_3.npz"]  # no temp left
    loaded = load_predictions(path)
    np.testing.assert_array_equal(loaded.probs, probs)
    np.testing.assert_array_equal(loaded.targets, targets)
    assert loaded.datafile == "data/eval.json"
    with pytest.raises(EnsembleError, match="shapes"):
        save_predictions(path, probs=probs, targets=targets[:2], datafile="x")
    np.savez(tmp_path / "other.npz", probs=probs)
    with pytest.raises(EnsembleError, match="missing"):
        load_predictions(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(EnsembleError, match="cannot read"):
        load_predictions(tmp_path / "junk.npz")


def test_average_predictions_and_cumulative_ensemble(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    epochs = [rng.random((5, 4)) for _ in range(4)]
    np.testing.assert_allclose(
        average_predictions(epochs[:2]), (epochs[0] + epochs[1]) / 2, rtol=1e-6
    )
    cumulative = CumulativeEnsemble()
    recursive = None  # the original: cum = (cum * (e - 1) + p_e) / e
    for e, probs in enumerate(epochs, start=1):
        mean = cumulative.update(probs)
        recursive = probs if recursive is None else (recursive * (e - 1) + probs) / e
        np.testing.assert_allclose(mean, recursive, rtol=1e-6)
        assert cumulative.count == e
    paths = []
    for e, probs in enumerate(epochs, start=1):
        paths.append(tmp_path / f"predictions_{e}.npz")
        save_predictions(paths[-1], probs=probs, targets=np.zeros((5, 4)), datafile="eval.json")
    np.testing.assert_allclose(
        CumulativeEnsemble.from_files(paths).mean, cumulative.mean, rtol=1e-6
    )
    with pytest.raises(EnsembleError, match="shape"):
        cumulative.update(np.zeros((5, 3)))
    with pytest.raises(EnsembleError, match="shape"):
        average_predictions([np.zeros((5, 4)), np.zeros((4, 4))])


def test_esc50_summary_selection_versus_last_epoch() -> None:
    accuracy = [  # [fold][epoch], 3 epochs
        [0.80, 0.95, 0.90],
        [0.82, 0.97, 0.93],
        [0.84, 0.93, 0.95],
        [0.86, 0.96, 0.94],
        [0.88, 0.94, 0.91],
    ]
    summary = esc50_summary(accuracy)
    selected, last = summary["selected"], summary["last_epoch"]
    assert selected["label"] == SELECTED_LABEL and last["label"] == LAST_EPOCH_LABEL
    assert selected["epoch"] == 2 and last["epoch"] == 3
    assert selected["fold_accuracies"] == [0.95, 0.97, 0.93, 0.96, 0.94]
    assert selected["mean"] == pytest.approx(0.95)
    assert last["mean"] == pytest.approx(0.926)
    assert summary["mean_per_epoch"] == pytest.approx([0.84, 0.95, 0.926])
    with pytest.raises(EnsembleError, match="equal rows"):
        esc50_summary([[0.9, 0.8], [0.9]])


def _run_cli(argv: list[str]) -> int:
    return cli.main(["ensemble", *argv])


def test_ensemble_command_averages_predictions(tmp_path: Path, capsys) -> None:
    assert cli.COMMANDS["ensemble"][0] == "ast_repro.ensemble"
    rng = np.random.default_rng(2)
    targets = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 30)]
    runs = []
    for seed in range(3):
        probs = np.clip(targets * 0.3 + rng.random((30, 4)), 0, 1).astype(np.float32)
        runs.append(probs)
        save_predictions(tmp_path / f"run{seed}.npz", probs=probs, targets=targets, datafile="e")
    inputs = [str(tmp_path / f"run{seed}.npz") for seed in range(3)]
    out, report = tmp_path / "ens.npz", tmp_path / "ens.json"
    assert _run_cli([*inputs, "-o", str(out), "--metrics-json", str(report)]) == 0
    expected = compute_metrics(np.mean(runs, axis=0), targets)
    written = json.loads(report.read_text())
    assert written["mAP"] == pytest.approx(expected["mAP"], abs=1e-6)
    assert written["inputs"] == inputs
    np.testing.assert_allclose(load_predictions(out).probs, np.mean(runs, axis=0), rtol=1e-6)
    assert "ensemble of 3" in capsys.readouterr().out
    save_predictions(tmp_path / "other.npz", probs=runs[0], targets=targets, datafile="f")
    assert _run_cli([inputs[0], str(tmp_path / "other.npz")]) == 2
    assert "scores f" in capsys.readouterr().err


def test_ensemble_command_names_each_run_by_its_folder(tmp_path: Path, capsys) -> None:
    targets = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    inputs = []
    for seed in range(2):
        path = tmp_path / f"stride10-s{seed}" / "predictions" / "valid_wa.npz"
        save_predictions(path, probs=targets * 0.5 + 0.1 * seed, targets=targets, datafile="e")
        inputs.append(str(path))
    assert _run_cli(inputs) == 0
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:3]]
    assert rows == ["stride10-s0/predictions/valid_wa.npz", "stride10-s1/predictions/valid_wa.npz"]


def test_ensemble_command_averages_weights(tmp_path: Path, capsys) -> None:
    paths = []
    for seed in (1, 2):
        paths.append(tmp_path / f"ckpt{seed}.pth")
        torch.save({"module." + k: v for k, v in _linear(seed).state_dict().items()}, paths[-1])
    out = tmp_path / "wa.pth"
    assert _run_cli(["--weights", *map(str, paths), "-o", str(out)]) == 0
    averaged = load_state_dict(out)
    expected = (_linear(1).weight + _linear(2).weight) / 2
    torch.testing.assert_close(averaged["weight"], expected.detach(), rtol=0, atol=1e-7)
    assert _run_cli(["--weights", *map(str, paths)]) == 2
    assert "--output" in capsys.readouterr().err
