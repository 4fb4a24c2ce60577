"""The grid runner (ast_repro.experiments): reuse, refusal, resumption, commands and tables.

Every run is the smoke Speech Commands recipe on the tiny tone dataset (tests/train_fixtures),
an epoch of a second or less on a CPU.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ast_repro import checkpoint as ckpt
from ast_repro.cli import build_parser, main
from ast_repro.config import resolve
from ast_repro.errors import EXIT_BAD_INPUT, AstReproError, RunFailed
from ast_repro.estimate import Throughput, gpu_flops, run_flops
from ast_repro.experiments import GridError, grid_commands, plan_grid, read_grid, run_grid
from ast_repro.grid_plan import config_differences
from ast_repro.grid_results import format_table
from ast_repro.launch import set_items, visible_gpus
from ast_repro.model_config import forward_flops, size_config
from ast_repro.train import train
from tests.train_fixtures import tiny_config, tiny_overrides

REPO = Path(__file__).resolve().parents[1]
RECIPE = "smoke_speechcommands"
# 32 mel bins x 32 frames at stride 10: a 2 x 2 patch grid
TINY_PATCHES = 4


def _common(data: dict) -> dict:
    return tiny_overrides(data, epochs=1)


def _cli_sets(data: dict) -> list[str]:
    sets = []
    for item in set_items(_common(data)):
        sets += ["--set", item]
    return sets


def _run_dir(results: Path, grid: str, run: str) -> Path:
    return results / "train" / grid / run


# ---------------------------------------------------------------------------- reuse and tables


def test_finished_runs_are_reused_and_the_table_reads_back(
    results: Path, data: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    variants = {"base": {}, "fast": {"lr": 2e-3}}
    first = run_grid(RECIPE, variants, grid="g", **_common(data))
    out = capsys.readouterr().out
    assert "estimate:" in out and "feature extraction and data loading not counted" in out
    assert "samples_per_epoch" in out and " 12 " in out  # 4 clips of each of 3 tones
    assert [(r["variant"], r["seed"], r["status"]) for r in first] == [
        ("base", 0, "trained"),
        ("fast", 0, "trained"),
    ]
    for row in first:
        assert row["metric"] == "acc" and 0 <= row["last"] <= 1 and 0 <= row["test"] <= 1
        assert row["wa"] is None  # the Speech Commands recipe does not average weights
        assert row["patches"] == TINY_PATCHES and row["params"] > 0
        assert row["samples_per_s"] > 0 and row["wall_s"] > 0 and row["epochs"] == 1
        assert row["peak_memory_gib"] is None  # CPU
    metrics = [_run_dir(results, "g", f"{v}-s0") / "metrics.json" for v in variants]
    before = [(p.read_bytes(), p.stat().st_mtime_ns) for p in metrics]

    # the same grid again, on another device setting (it does not change what a run computes)
    again = run_grid(RECIPE, variants, grid="g", **_common(data), device="cpu")
    out = capsys.readouterr().out
    assert "grid g: base-s0 reused" in out and "grid g: fast-s0 reused" in out
    assert "starting" not in out and "estimate:" not in out
    assert [(p.read_bytes(), p.stat().st_mtime_ns) for p in metrics] == before
    assert [r["status"] for r in again] == ["reused", "reused"]
    strip = [{k: v for k, v in r.items() if k != "status"} for r in first]
    assert [{k: v for k, v in r.items() if k != "status"} for r in again] == strip

    table = read_grid("g", results_root=results)
    assert [{k: v for k, v in r.items() if k != "status"} for r in table] == strip
    assert {r["status"] for r in table} == {"complete"}
    text = format_table(table)
    assert text.splitlines()[0].split()[:4] == ["variant", "seed", "metric", "last"]
    assert " wa " not in text  # empty in every row, so left out


def test_a_changed_config_is_refused_with_the_keys_named(
    results: Path, data: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    run_grid(RECIPE, {"a": {}}, grid="g", **_common(data))
    stored = _run_dir(results, "g", "a-s0") / "metrics.json"
    before = stored.read_bytes()
    with pytest.raises(GridError) as error:
        run_grid(RECIPE, {"a": {"lr": 2e-3, "freqm": 4}}, grid="g", **_common(data))
    message = str(error.value)
    assert "a-s0" in message and "lr: 0.001 -> 0.002" in message and "freqm: 8 -> 4" in message
    assert "epochs" not in message
    assert stored.read_bytes() == before  # never overwritten
    capsys.readouterr()


def test_a_run_resumed_with_another_lr_is_not_reused(
    results: Path, data: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    # a grid run that diverged and was resumed by hand at a lower lr ends with the grid's
    # own config (lr 1e-4), but its first epoch ran at 1e-3: it is not the run asked for
    train(tiny_config(data, run_name="g/a-s0", epochs=1, lr=1e-3))
    train(tiny_config(data, run_name="g/a-s0", epochs=2, lr=1e-4), resume=True)
    with pytest.raises(GridError, match=r"a-s0: .* was resumed with another schedule \(lr: 0.001"):
        run_grid(RECIPE, {"a": {}}, grid="g", **tiny_overrides(data, epochs=2, lr=1e-4))
    # more epochs alone continue the same schedule: that run is reused
    train(tiny_config(data, run_name="g/b-s0", epochs=1))
    train(tiny_config(data, run_name="g/b-s0", epochs=2), resume=True)
    rows = run_grid(RECIPE, {"b": {}}, grid="g", **tiny_overrides(data, epochs=2))
    assert [row["status"] for row in rows] == ["reused"]
    capsys.readouterr()


def test_config_differences_ignore_what_does_not_change_a_run() -> None:
    config = resolve(RECIPE, {"num_workers": 3, "progress": False, "device": "cpu"})
    stored = {**resolve(RECIPE).to_dict(), "tensorboard": True}
    assert config_differences(stored, config) == {}
    changed = resolve(RECIPE, {"epochs": 7, "time_stride": 12})
    assert config_differences(stored, changed) == {"epochs": (40, 7), "time_stride": (10, 12)}
    # a key the stored run predates counts as its default
    older = {k: v for k, v in stored.items() if k != "pos_embed_mode"}
    assert config_differences(older, config) == {}


@pytest.mark.parametrize(
    ("variants", "expected"),
    [
        ({"a/b": {}}, "variant name 'a/b'"),
        ({"a": {"seed": 3}}, "seed are set by the grid"),
        ({"a": {"learning_rate": 1e-3}}, "unknown config key 'learning_rate'"),
        ({"a": {"epochs": "many"}}, "epochs='many' is not a valid int"),
        ({}, "has no variants"),
    ],
)
def test_bad_variants_are_errors_naming_them(results: Path, variants: dict, expected: str) -> None:
    with pytest.raises(GridError, match=expected):
        plan_grid(RECIPE, variants, grid="g")


def test_a_grid_keeps_its_recipe(results: Path) -> None:
    grid_commands(RECIPE, {"a": {}}, grid="g")
    manifest = json.loads((results / "train" / "g" / "grid.json").read_text())
    assert manifest == {"grid": "g", "recipe": RECIPE, "variants": {"a": {}}}
    with pytest.raises(AstReproError, match="runs recipe 'smoke_speechcommands'"):
        grid_commands("smoke_esc50", {"a": {}}, grid="g")


# ---------------------------------------------------------------------------- cluster commands


def test_printed_commands_train_exactly_the_missing_runs(
    results: Path, data: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    run_grid(RECIPE, {"a": {}}, grid="g", **_common(data))
    capsys.readouterr()
    argv = ["grid", "--recipe", RECIPE, "--grid", "g", "--variant", "a", "--variant", "b",
            "lr=0.002", "--seeds", "0", "1", *_cli_sets(data), "--results", str(results),
            "--print-commands", "--nproc-per-node", "4"]  # fmt: skip
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3  # a-s0 is finished
    runs = plan_grid(RECIPE, {"a": {}, "b": {"lr": 0.002}}, (0, 1), grid="g", common=_common(data))
    planned = {run.config.run_name: run.config for run in runs}
    commands = {}
    for line in lines:
        words = shlex.split(line)
        assert words[0] == f"AST_REPRO_RESULTS={results.resolve()}"
        assert words[1:5] == ["torchrun", "--standalone", "--nproc_per_node=4", "-m"]
        assert words[5] == "ast_repro.cli" and words[-1] == "--resume"
        args = build_parser("train").parse_args(words[6:])
        config = resolve(args.recipe, args.set)
        assert config == planned[config.run_name]  # the same resolved run, key for key
        commands[config.run_name] = words[6:]
    assert sorted(commands) == ["g/a-s1", "g/b-s0", "g/b-s1"]

    # a scheduler runs one of them; the grid then trains only the other two
    assert main(commands["g/b-s0"]) == 0
    capsys.readouterr()
    assert main([*argv[:-3]]) == 0
    out = capsys.readouterr().out
    assert "a-s0 reused" in out and "b-s0 reused" in out
    assert "starting a-s1" in out and "starting b-s1" in out and "starting b-s0" not in out


def test_variants_from_a_file_join_those_of_the_command_line(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    variants = tmp_path / "variants.json"
    variants.write_text(json.dumps({"s16": {"frequency_stride": 16, "time_stride": 16}}))
    argv = ["grid", "--recipe", RECIPE, "--grid", "g", "--variants", str(variants),
            "--variant", "s12", "time_stride=12", "--print-commands"]  # fmt: skip
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "--set frequency_stride=16 --set time_stride=16" in lines[0]
    assert "--set time_stride=12 --set seed=0 --set run_name=g/s12-s0" in lines[1]
    manifest = json.loads((results / "train" / "g" / "grid.json").read_text())
    assert list(manifest["variants"]) == ["s16", "s12"]
    assert main([*argv, "--variant", "s16"]) == EXIT_BAD_INPUT
    assert "variant 's16' is given twice" in capsys.readouterr().err


# ---------------------------------------------------------------------------- children


def test_children_get_the_gpus_this_process_sees(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_gpus(2) == ["0", "1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3, 5,GPU-ab12")
    assert visible_gpus(3) == ["3", "5", "GPU-ab12"]


@pytest.mark.slow
def test_a_failed_child_is_reported_with_its_log_and_rerun_command(
    results: Path, data: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = Path(data["train_data"]).with_name("broken.json")  # relative paths still hold
    entries = json.loads(Path(data["train_data"]).read_text())
    entries["data"][0]["wav"] = "audio/missing.wav"
    broken.write_text(json.dumps(entries))
    variants = {"good": {}, "broken": {"train_data": str(broken)}}
    with pytest.raises(RunFailed) as error:
        run_grid(RECIPE, variants, grid="g", parallel="runs", **_common(data))
    message = str(error.value)
    log = _run_dir(results, "g", "broken-s0") / "train.log"
    assert "1 of 2 runs failed" in message and f"log {log}" in message
    assert "ast-repro train --recipe smoke_speechcommands" in message and "--resume" in message
    captured = capsys.readouterr()
    assert "grid g: good-s0: acc" in captured.out  # the child that finished
    assert f"last lines of {log}" in captured.err and "missing.wav" in captured.err
    assert "missing.wav" in log.read_text()
    assert [r["variant"] for r in read_grid("g", results_root=results)] == ["good"]


@pytest.mark.slow
def test_a_killed_grid_reuses_its_first_run_and_resumes_the_second(
    results: Path, data: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGKILL `ast-repro grid` during its second run, start it again: the first run is
    reused untouched and the second continues from the epoch its last.pt holds."""
    argv = ["grid", "--recipe", RECIPE, "--grid", "g", "--variant", "first", "--variant",
            "second", "epochs=12", "save_model=false", *_cli_sets(data),
            "--results", str(results)]  # fmt: skip
    first = _run_dir(results, "g", "first-s0") / "metrics.json"
    last = _run_dir(results, "g", "second-s0") / ckpt.CHECKPOINT_DIR / ckpt.LAST_NAME
    process = subprocess.Popen(
        [sys.executable, "-m", "ast_repro.cli", *argv],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while not last.is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    output = process.communicate()[0].decode()
    assert process.returncode == -signal.SIGKILL, output
    assert last.is_file(), output
    saved = ckpt.load(last)
    assert 1 <= saved["epoch"] < 12, "the second run ended before the kill"
    before = (first.read_bytes(), first.stat().st_mtime_ns)

    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "grid g: first-s0 reused" in out and "resuming second-s0" in out
    assert "starting" not in out
    assert f"resuming g/second-s0 after epoch {saved['epoch']}" in out
    assert (first.read_bytes(), first.stat().st_mtime_ns) == before
    record = json.loads((_run_dir(results, "g", "second-s0") / "metrics.json").read_text())
    history = record["metrics"]["epochs"]
    assert record["complete"] and [e["epoch"] for e in history] == list(range(1, 13))
    # the epochs before the kill are the ones the checkpoint held, not trained again
    keys = ("epoch", "train_loss", "valid_loss", "seconds")
    kept = [[e[k] for k in keys] for e in history[: saved["epoch"]]]
    assert kept == [[e[k] for k in keys] for e in saved["history"]]


# ---------------------------------------------------------------------------- estimate


@pytest.mark.parametrize(
    ("name", "key"),
    [("NVIDIA A100-SXM4-80GB", "A100"), ("NVIDIA A10", "A10"), ("NVIDIA L40S", "L40S"),
     ("NVIDIA L4", "L4"), ("Tesla T4", "T4"), ("NVIDIA H200", "H200")],
)  # fmt: skip
def test_gpu_kinds_are_told_apart(name: str, key: str) -> None:
    assert gpu_flops(name)[1] == f"nominal {key} bf16"


def test_unknown_gpu_is_labelled_an_assumption() -> None:
    assert "assumed" in gpu_flops("Some Future Accelerator")[1]


def test_run_flops_count_training_validation_and_the_final_evaluations() -> None:
    config = resolve("audioset_balanced")
    per_clip = forward_flops(size_config("base384"))
    # 25 epochs of 3x-cost training clips, validation after each and of the weight average
    assert run_flops(config, 100, 10) == per_clip * (3 * 100 * 25 + 10 * 26)
    esc = resolve("smoke_esc50")  # two folds, each a whole run
    one = resolve("smoke_esc50", {"folds": "1"})
    assert run_flops(esc, 8, 2) == 2 * run_flops(one, 8, 2)
    throughput = Throughput("x", 2, 100e12, "nominal", 0.5)
    assert throughput.seconds(1e15) == pytest.approx(10.0)
