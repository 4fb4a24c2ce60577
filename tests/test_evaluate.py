"""Tests of `ast-repro evaluate` and `ast-repro predict` on a checkpoint of a tiny run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ast_repro.audio import load_audio
from ast_repro.checkpoint import CheckpointError, load_model
from ast_repro.cli import main
from ast_repro.datafiles import DatafileError, LabelMap, read_datafile, write_label_csv
from ast_repro.ensemble import load_predictions
from ast_repro.evaluate import evaluate
from ast_repro.features import normalize, pad_or_crop, reference_fbank
from ast_repro.predict import predict
from ast_repro.train import train
from tests.train_fixtures import MIDS, NAMES, tiny_config, tiny_dataset


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One tiny 3-epoch run shared by the tests of this module."""
    root = tmp_path_factory.mktemp("evaluate")
    data = tiny_dataset(root / "data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AST_REPRO_RESULTS", str(root / "results"))
        result = train(tiny_config(data, run_name="eval", epochs=3, noise=False))
    return {**result, "data": data, "root": root}


def _reference_logits(checkpoint: Path, wavs: list[Path]) -> torch.Tensor:
    """Logits from torchaudio's Kaldi fbank, padded and normalized by hand."""
    model, config, _ = load_model(checkpoint)
    features = []
    for wav in wavs:
        fbank = reference_fbank(load_audio(wav), 16_000, config.num_mel_bins)
        features.append(normalize(pad_or_crop(fbank, config.target_length), config.norm))
    with torch.no_grad():
        return model(torch.stack(features)).float()


def test_evaluate_reproduces_the_epoch_validation(run: dict, tmp_path: Path) -> None:
    checkpoint = Path(run["checkpoint_dir"]) / "epoch_2.pt"
    output = tmp_path / "valid.npz"
    metrics = evaluate(checkpoint, run["data"]["valid_data"], device="cpu", output=output)
    epoch = run["history"][1]
    for key in ("mAP", "mAUC", "accuracy"):
        assert metrics[key] == pytest.approx(epoch[key]), key
    assert metrics["loss"] == pytest.approx(epoch["valid_loss"], rel=1e-5)
    saved = load_predictions(Path(run["run_dir"]) / "predictions" / "valid_2.npz")
    written = load_predictions(output)
    np.testing.assert_allclose(written.probs, saved.probs, atol=1e-6)
    np.testing.assert_array_equal(written.targets, saved.targets)
    assert metrics["num_clips"] == 6


def test_evaluation_loss_is_computed_on_logits(run: dict) -> None:
    checkpoint = Path(run["checkpoint_dir"]) / "best.pt"
    clips = read_datafile(run["data"]["eval_data"])
    logits = _reference_logits(checkpoint, [clip.wav for clip in clips])
    targets = torch.tensor([[float(mid in clip.labels) for mid in MIDS] for clip in clips])
    expected = F.binary_cross_entropy_with_logits(logits, targets).item()
    metrics = evaluate(checkpoint, run["data"]["eval_data"], device="cpu")
    assert metrics["loss"] == pytest.approx(expected, abs=1e-4)
    # the original's loss on sigmoid outputs would be another, meaningless number
    quirk = F.binary_cross_entropy_with_logits(torch.sigmoid(logits), targets).item()
    assert metrics["loss"] != pytest.approx(quirk, abs=1e-3)


def test_predict_gives_top_k_names_like_an_independent_computation(run: dict) -> None:
    checkpoint = Path(run["checkpoint_dir"]) / "best.pt"
    wavs = [clip.wav for clip in read_datafile(run["data"]["eval_data"])[::2]]
    results = predict(checkpoint, wavs, top_k=2, device="cpu")
    probs = torch.sigmoid(_reference_logits(checkpoint, wavs))
    assert len(results) == len(wavs)
    for predictions, row in zip(results, probs, strict=True):
        order = row.argsort(descending=True)[:2].tolist()
        assert [p.mid for p in predictions] == [MIDS[i] for i in order]
        assert [p.name for p in predictions] == [NAMES[i] for i in order]
        np.testing.assert_allclose([p.probability for p in predictions], row[order], atol=1e-4)
        assert predictions[0].probability >= predictions[1].probability


def test_load_model_rebuilds_the_checkpoint_alone(run: dict) -> None:
    checkpoint = Path(run["checkpoint_dir"]) / "epoch_3.pt"
    model, config, labels = load_model(checkpoint)
    saved = torch.load(checkpoint, weights_only=True)["model"]
    assert all(torch.equal(value, saved[key]) for key, value in model.state_dict().items())
    assert config.run_name == "eval" and labels == LabelMap(mids=MIDS, names=NAMES)
    assert not model.training and model.config.max_length == config.target_length


def test_evaluate_and_predict_commands(run: dict, tmp_path: Path, capsys) -> None:
    checkpoint = str(Path(run["checkpoint_dir"]) / "best.pt")
    output = tmp_path / "eval.npz"
    code = main(["evaluate", checkpoint, run["data"]["eval_data"], "--device", "cpu",
                 "-o", str(output), "--label-csv", run["data"]["label_csv"]])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "mAP" in out and "accuracy" in out and output.is_file()
    # one clip shorter and one longer than the model's 32-frame input (0.335 s)
    wavs = [str(clip.wav) for clip in read_datafile(run["data"]["eval_data"])]
    seconds = {wav: load_audio(wav).numel() / 16_000 for wav in wavs}
    short = next(wav for wav in wavs if seconds[wav] <= 0.335)
    long = next(wav for wav in wavs if seconds[wav] > 0.34)
    assert main(["predict", checkpoint, short, long, "--top-k", "3", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 10 and lines[0] == short and lines[5] == long
    assert lines[1] == f"  the model saw all {seconds[short]:.2f} s"
    assert lines[6] == (
        f"  the model saw the first 0.34 s of {seconds[long]:.2f} s (its input length); "
        "--window 0.335 scores all of it"
    )
    # the advised window is accepted
    assert main(["predict", checkpoint, long, "--window", "0.335", "--device", "cpu"]) == 0
    assert {line.split("  ")[-2] for line in lines[2:5]} == set(NAMES)


def test_errors_name_the_problem(run: dict, tmp_path: Path, capsys) -> None:
    other = tmp_path / "other.csv"
    write_label_csv(other, LabelMap(mids=("/m/x", "/m/y", "/m/z"), names=("x", "y", "z")))
    checkpoint = Path(run["checkpoint_dir"]) / "best.pt"
    with pytest.raises(DatafileError, match="classes differ"):
        evaluate(checkpoint, run["data"]["eval_data"], label_csv=other, device="cpu")
    not_ours = tmp_path / "bare.pt"
    torch.save({"weight": torch.zeros(2)}, not_ours)
    with pytest.raises(CheckpointError, match="not an ast-repro training checkpoint"):
        load_model(not_ours)
    assert main(["evaluate", str(tmp_path / "missing.pt"), run["data"]["eval_data"]]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["predict", str(checkpoint), str(tmp_path / "nothing.wav")]) == 2
    assert "nothing.wav" in capsys.readouterr().err
