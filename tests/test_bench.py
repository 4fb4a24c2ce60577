"""The benchmarks run end to end at a tiny scale and write what RESULTS.md is built from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ast_repro import bench, bench_loader, bench_model, bench_training, cli


def test_fbank_benchmark_writes_rates_and_ratios(tmp_path: Path) -> None:
    out = tmp_path / "fbank.json"
    assert cli.main(["bench", "--clips", "2", "--repeats", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    rates = result["clips_per_second"]
    assert "torchaudio per-clip loop (cpu)" in rates and "ast_repro batched (cpu)" in rates
    assert all(rate > 0 for rate in rates.values())
    ratios = result["speedup_vs_torchaudio_cpu_loop"]
    assert ratios["torchaudio per-clip loop (cpu)"] == 1.0
    for name, rate in rates.items():
        # One round: the within-round ratio is the ratio of the two rates.
        expected = rate / rates["torchaudio per-clip loop (cpu)"]
        assert ratios[name] == pytest.approx(expected)
        assert result["speedup_range"][name] == pytest.approx([expected, expected])


def test_speedups_are_paired_within_rounds() -> None:
    rounds = {"loop": [2.0, 4.0, 6.0], "batched": [1.0, 1.0, 2.0]}
    paired = bench.paired_speedups(rounds, "loop")
    assert paired == {"loop": [1.0, 1.0, 1.0], "batched": [2.0, 3.0, 4.0]}


def test_model_benchmark_times_the_same_function(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    out = tmp_path / "model.json"
    argv = ["--size", "test", "--frames", "128", "--labels", "10", "--batch", "2"]
    argv += ["--batches", "3", "--steps", "1"]
    argv += ["--repeats", "1", "--device", "cpu", "--out", str(out)]
    assert cli.main(["bench-model", *argv]) == 0
    result = json.loads(out.read_text())
    paths = {
        "ast_repro (sdpa)",
        bench_model.ORIGINAL,
        "transformers (sdpa)",
        "transformers (eager)",
    }
    # Every path holds the same weights and computes the same logits.
    assert set(result["max_abs_logit_difference_fp32"]) == paths
    assert max(result["max_abs_logit_difference_fp32"].values()) <= 1e-5
    for mode in ("inference", "train step"):
        rates = result["samples_per_second"][mode]
        assert set(rates) == paths and all(rate > 0 for rate in rates.values())
        # Each speedup is the path's rate over the reference's rate (the reference's own is 1).
        for key, reference in (("transformers_sdpa", bench_model.BASELINE),
                               ("original_attention", bench_model.ORIGINAL)):  # fmt: skip
            speedups = result[f"speedup_vs_{key}"][mode]
            assert speedups == pytest.approx({n: r / rates[reference] for n, r in rates.items()})
    assert result["peak_memory_gib"] == {}  # measured on CUDA only
    # The training loop (with Adam): ours against transformers' at the batch and --batches
    compared = {"ast_repro (sdpa)", "transformers (sdpa)"}
    assert set(result["training"]) == {"2", "3"}
    for batch, row in result["training"].items():
        assert set(row) == compared
        rates = {name: figures["samples_per_second"] for name, figures in row.items()}
        assert all(rate > 0 for rate in rates.values())
        assert all(f["mfu"] is None and f["peak_memory_gib"] is None for f in row.values())
        speedups = result["training_speedup_vs_transformers"][batch]
        assert speedups == pytest.approx(
            {n: r / rates["transformers (sdpa)"] for n, r in rates.items()}
        )
    for name in compared:
        best = result["best_batch"][name]
        rates = [result["training"][b][name]["samples_per_second"] for b in ("2", "3")]
        assert result["training"][str(best)][name]["samples_per_second"] == max(rates)
        # both call PyTorch's fused (flash) SDPA kernel, forward and backward
        assert result["attention_ops"][name] == [
            "aten::_scaled_dot_product_flash_attention_for_cpu",
            "aten::_scaled_dot_product_flash_attention_for_cpu_backward",
        ]


def test_explicit_attention_calls_no_sdpa_kernel() -> None:
    model = bench_model.create_model("test", max_length=32, num_mel_bins=32, num_labels=3)
    x = torch.randn(2, 32, 32)
    assert bench_training.attention_ops(bench_model._explicit_attention(model), x, "fp32") == []
    assert bench_training.attention_ops(model, x, "fp32")  # the fused model calls one


def test_best_batch_is_the_fastest_one_that_fitted() -> None:
    def figures(rate: float | None) -> dict[str, float | None]:
        return {"samples_per_second": rate, "mfu": None, "peak_memory_gib": None}

    results = {
        "12": {"ours": figures(100.0), "hf": figures(80.0)},
        "32": {"ours": figures(150.0), "hf": figures(70.0)},
        "64": {"ours": figures(None), "hf": figures(None)},  # out of memory
    }
    assert bench_training.best_batches(results) == {"ours": 32, "hf": 12}


def test_explicit_attention_copy_leaves_the_model_fused() -> None:
    model = bench_model.create_model("test", max_length=128, num_labels=3)
    explicit = bench_model._explicit_attention(model)
    assert all(block.attn.fused_attn for block in model.blocks)
    assert not any(block.attn.fused_attn for block in explicit.blocks)


def test_loader_benchmark_times_one_worker_per_path(tmp_path: Path, data: dict) -> None:
    from tests.train_fixtures import tiny_config

    config = tiny_config(data, mixup=0.5)
    rates = bench_loader.recipe_rates(
        config,
        Path(data["train_data"]),
        Path(data["label_csv"]),
        clips=12,
        batch=4,
        device=torch.device("cpu"),
    )
    assert set(rates) == {*bench_loader.PATHS, "batched front end on cpu"}
    assert all(rate > 0 for rate in rates.values())
    # the waveform cache the paths read is the one training builds beside the datafile
    assert list((Path(data["train_data"]).parent / "cache").glob("*.cache.json"))


def test_workers_needed_round_up() -> None:
    assert bench_loader.workers_needed(100.0) == {"550": 6, "1000": 10}
    assert bench_loader.workers_needed(550.0, (550,)) == {"550": 1}


def test_loader_benchmark_records_missing_data(tmp_path: Path) -> None:
    out = tmp_path / "loader.json"
    argv = ["bench-loader", "--recipes", "esc50", "--root", f"esc50={tmp_path / 'none'}"]
    assert cli.main([*argv, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["recipes"] == {} and "ast-repro data esc50" in result["missing"]["esc50"]
    assert result["cpus"] >= 1 and len(result["load_average_before"]) == 3
