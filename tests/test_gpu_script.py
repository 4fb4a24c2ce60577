"""benchmarks/gpu.sh and its summary (ast_repro.gpu_report): the GPU run, rehearsed on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ast_repro.datafiles import read_datafile
from ast_repro.gpu_report import (
    COMPILED,
    junit_counts,
    original_days,
    projected_days,
    render_summary,
    repeat_datafile,
)
from ast_repro.results import repo_root

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0"
failures="1" skipped="2" tests="7"></testsuite></testsuites>"""


def _figures(rate: float, mfu: float, memory: float) -> dict[str, float]:
    return {"samples_per_second": rate, "mfu": mfu, "peak_memory_gib": memory}


def _write(folder: Path, name: str, value: object) -> None:
    (folder / name).write_text(json.dumps(value))


@pytest.fixture
def run_folder(tmp_path: Path) -> Path:
    """What gpu.sh leaves behind after a run whose worker epoch overran its budget."""
    env = {"mode": "gpu", "gpu": "NVIDIA H200", "cpus": 16, "torch": "2.11.0", "cuda": "13.0"}
    _write(tmp_path, "env.json", {**env, "note": "random stand-in"})
    ours, theirs = "ast_repro (sdpa)", "transformers (sdpa)"
    at12 = {ours: _figures(650.0, 0.51, 9.5), theirs: _figures(500.0, 0.4, 12.0)}
    at64 = {ours: _figures(800.0, 0.63, 40.0), theirs: _figures(560.0, 0.44, 55.0)}
    speedups = {"12": {ours: 1.3, theirs: 1.0}, "64": {ours: 800 / 560, theirs: 1.0}}
    model = {"size": "base384", "frames": 1024, "precision": "bf16"}
    model |= {"training": {"12": at12, "64": at64}, "training_speedup_vs_transformers": speedups}
    model |= {"best_batch": {ours: 64, theirs: 64}}
    model |= {"attention_ops": {ours: ["aten::_scaled_dot_product_flash_attention"]}}
    _write(tmp_path, "model.json", model)
    compiled = {ours: _figures(640.0, 0.5, 9.5), COMPILED: _figures(720.0, 0.56, 8.0)}
    _write(tmp_path, "model-compiled.json", {"training": {"12": compiled}})
    epoch = {"train_clips_per_second": 600.0, "mfu": 0.47, "peak_memory_gib": 10.25}
    _write(tmp_path, "train-device.json", {"epoch": {**epoch, "data_wait_fraction": 0.031}})
    ratios = {"ast_repro batched (cuda)": 412.0}
    _write(tmp_path, "fbank.json", {"speedup_vs_torchaudio_cpu_loop": ratios})
    path = "worker front end, audio files"
    recipe = {"clips_per_second_per_worker": {path: 90.0}}
    recipe["workers_needed"] = {path: {"550": 7, "1000": 12}}
    loader = {"cpus": 16, "load_average_before": [0.5, 0.4, 0.3]}
    loader |= {"missing": {"speechcommands": "no twin"}, "recipes": {"audioset_balanced": recipe}}
    _write(tmp_path, "loader.json", loader)
    (tmp_path / "gpu-tests.xml").write_text(JUNIT)
    phases = [
        {"name": "train-device", "budget_s": 75, "seconds": 41.2, "status": "ok"},
        {"name": "train-worker", "budget_s": 75, "seconds": 75.0,
         "status": "stopped at its 75 s budget"},
        {"name": "notebook-03", "budget_s": 75, "seconds": 50.5, "status": "ok"},
    ]  # fmt: skip
    (tmp_path / "phases.jsonl").write_text("".join(json.dumps(p) + "\n" for p in phases))
    return tmp_path


def test_summary_fills_the_results_cells(run_folder: Path) -> None:
    text = render_summary(run_folder)
    lines = text.splitlines()
    assert "| GPU | NVIDIA H200 |" in lines
    assert "| samples/s at batch 12, ours / transformers (training loop) | 650.0 / 500.0 |" in lines
    assert "| ratio to transformers at batch 12 (same run) | 1.30x |" in lines
    assert "| MFU at batch 12, ours | 51.0% |" in lines
    assert (
        "| best batch (64): samples/s, MFU, ratio to transformers | 800.0, 63.0%, 1.43x |" in lines
    )
    assert (
        "| torch.compile at batch 12: samples/s, compiled / eager (same run) | 720.0 / 640.0 |"
        in lines
    )
    row = "| training epoch, device front end + waveform cache: samples/s, MFU, peak memory, "
    assert f"{row}data wait | 600.0, 47.0%, 10.2 GiB, 3.1% |" in lines
    # 5 epochs x 2 M clips at 600 clips/s; the original: 5 x 118,072 s
    assert f"| {projected_days(600.0):.2f} days (original: 6.8 days on 4 x GTX TITAN X) |" in text
    assert "not measured (phase train-worker: stopped at its 75 s budget)" in text
    assert "| fbank on the GPU vs the per-clip torchaudio loop on the CPU | 412x |" in lines
    assert "| SDPA kernels called | aten::_scaled_dot_product_flash_attention |" in lines
    assert "`pytest -m gpu`: 4 passed, 1 failed, 2 skipped." in lines
    assert "| audioset_balanced | worker front end, audio files | 90 | 7 / 12 |" in lines
    assert "| speechcommands | not measured: no twin | | |" in lines
    assert "| notebook-03 | 75 | 50.5 | ok |" in lines


def test_a_missing_phase_says_so(tmp_path: Path) -> None:
    text = render_summary(tmp_path)
    assert "| training loop (bench-model) | not measured (phase model: not run) |" in text
    assert "fbank on the GPU vs the per-clip torchaudio loop on the CPU | not measured" in text


def test_projection_arithmetic() -> None:
    assert projected_days(1000.0) == pytest.approx(5 * 2_000_000 / 1000 / 86_400)
    assert original_days() == pytest.approx(5 * 118_072 / 86_400)  # about 7 days
    assert 6.5 < original_days() < 7.0


def test_repeated_datafile_lists_the_clips_in_turn(tmp_path: Path, data: dict) -> None:
    source = Path(data["train_data"])
    target = repeat_datafile(source, tmp_path / "elsewhere" / "epoch.json", 30)
    clips, original = read_datafile(target), read_datafile(source)
    assert len(clips) == 30 and all(clip.wav.is_file() for clip in clips)
    assert clips[: len(original)] == original and clips[len(original)] == original[0]


def test_junit_counts(tmp_path: Path) -> None:
    (tmp_path / "t.xml").write_text(JUNIT)
    assert junit_counts(tmp_path / "t.xml") == {"tests": 7, "failed": 1, "skipped": 2, "passed": 4}
    assert junit_counts(tmp_path / "absent.xml") is None


@pytest.mark.slow
def test_cpu_dry_run_of_the_gpu_script(tmp_path: Path) -> None:
    """Every phase of benchmarks/gpu.sh with tiny sizes on the CPU (about 4 minutes on two
    busy cores), including papermill over the notebooks."""
    root = repo_root()
    assert root is not None
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "GPU_WORK": str(tmp_path / "work")}
    done = subprocess.run(
        ["bash", str(root / "benchmarks" / "gpu.sh"), "--cpu", "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    phases = [json.loads(line) for line in (out / "phases.jsonl").read_text().splitlines()]
    names = [p["name"] for p in phases]
    expected = ["tests", "twins", "fbank", "model", "train-device", "train-worker", "loader"]
    assert names == expected + [f"notebook-0{n}" for n in range(4)] + ["notebook-05", "notebook-99"]
    failed = {p["name"]: p["status"] for p in phases if p["status"] != "ok"}
    assert not failed, (
        failed,
        {n: (out / "logs" / f"{n}.log").read_text()[-2000:] for n in failed},
    )
    for name in ("env", "fbank", "model", "train-device", "train-worker", "loader"):
        assert (out / f"{name}.json").is_file(), name
    summary = (out / "summary.md").read_text()
    assert "| GPU | none (cpu run) |" in summary and "CPU dry run" in summary
    assert "| ratio to transformers at batch 12 (same run) |" in summary
    assert "data wait |" in summary and "not measured (phase model-compiled" in summary
