"""metrics.json: provenance, strict json, profiles; the console script imports lazily."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ast_repro.results import collect, read_metrics, write_metrics


def test_write_metrics_records_provenance_as_strict_json(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("AST_REPRO_RESULTS", str(tmp_path))
    path = write_metrics(
        "train",
        "smoke-run",
        profile="smoke",
        config={"lr": 1e-4},
        metrics={"d_prime": float("inf"), "acc": [0.5, float("nan"), 0.75]},
        seed=3,
        wall_time_s=1.23456,
    )
    assert path == tmp_path / "train" / "smoke-run" / "metrics.json"
    record = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-json {c}"))
    assert record["metrics"] == {"d_prime": None, "acc": [0.5, None, 0.75]}
    assert record["profile"] == "smoke" and record["seed"] == 3 and record["wall_time_s"] == 1.235
    assert record["packages"]["torch"] and record["device"] and "python" in record
    assert collect("train") == [read_metrics(path)]


def test_profile_and_serializability_are_checked_before_writing(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("AST_REPRO_RESULTS", str(tmp_path))
    common = dict(config={}, metrics={}, seed=0, wall_time_s=0.0)
    with pytest.raises(ValueError, match="profile"):
        write_metrics("s", "r", profile="full", **common)
    with pytest.raises(TypeError):
        write_metrics("s", "r", profile="smoke", extra={"bad": object()}, **common)
    assert not (tmp_path / "s" / "r" / "metrics.json").exists()


def test_help_imports_no_command_module() -> None:
    code = (
        "import sys; from ast_repro.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m in ('torch', 'nbformat', 'timm')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_paper_value_reads_leaves_values_and_gaps() -> None:
    from ast_repro.results import paper_reference, paper_value, reproduced_row

    reference = paper_reference()
    assert paper_value(reference, "patch_overlap.rows.10.balanced") == 0.347
    assert paper_value(reference, "headline.audioset_full_map_ensemble_m") == 0.485
    assert paper_value(reference, "patch_shape.rows.frame_slices.imagenet") is None
    with pytest.raises(KeyError, match="patch_overlap.rows has no '11'"):
        paper_value(reference, "patch_overlap.rows.11.balanced")
    with pytest.raises(KeyError, match="not a number"):
        paper_value(reference, "patch_overlap.rows")
    row = reproduced_row(
        "positional_embedding.rows.nearest",
        0.25,
        metric="mAP",
        dataset="audioset_balanced",
        variant="pos_nearest",
        seeds=[0, 1],
    )
    assert row == {"ref": "positional_embedding.rows.nearest", "paper": 0.346, "value": 0.25,
                   "metric": "mAP", "dataset": "audioset_balanced", "variant": "pos_nearest",
                   "seeds": [0, 1]}  # fmt: skip


def test_run_metric_and_dataset_use_the_references_names() -> None:
    from ast_repro.results import run_dataset, run_metric

    assert run_metric("acc") == "accuracy" and run_metric("mAP") == "mAP"
    assert run_dataset("audioset", "train") == "audioset_balanced"
    assert run_dataset("audioset", "train_full") == "audioset_full"
    assert run_dataset("esc50") == "esc50" and run_dataset("speechcommands") == "speechcommands"
    with pytest.raises(ValueError, match="unknown metric"):
        run_metric("auc")
    with pytest.raises(ValueError, match="unknown AudioSet split"):
        run_dataset("audioset", "eval")


def test_command_line_names_the_notebook_command_inside_a_kernel(monkeypatch) -> None:
    from ast_repro.results import COMMAND_ENV, KERNEL_COMMAND, command_line

    monkeypatch.setattr(sys, "argv", ["/venv/bin/ast-repro", "train", "--recipe", "esc50"])
    monkeypatch.setenv(COMMAND_ENV, "ast-repro notebooks run 03_patch_overlap")
    assert command_line() == "/venv/bin/ast-repro train --recipe esc50"  # not a kernel
    kernel = ["/venv/lib/python3.12/site-packages/ipykernel_launcher.py", "-f", "/tmp/k.json"]
    monkeypatch.setattr(sys, "argv", kernel)
    assert command_line() == "ast-repro notebooks run 03_patch_overlap"
    monkeypatch.delenv(COMMAND_ENV)
    assert command_line() == KERNEL_COMMAND


def test_notebook_runs_hand_their_command_to_the_kernel(tmp_path, monkeypatch) -> None:
    import papermill

    from ast_repro import notebooks
    from ast_repro.results import COMMAND_ENV

    seen = {}

    def execute_notebook(*args, **kwargs) -> None:  # what the kernel would inherit
        seen["command"] = os.environ.get(COMMAND_ENV)

    monkeypatch.setattr(papermill, "execute_notebook", execute_notebook)
    monkeypatch.delenv(COMMAND_ENV, raising=False)
    path = notebooks.resolve("03")
    notebooks.execute(path, parameters={"seeds": "0,1,2", "profile": "paper"},
                      output_dir=tmp_path)  # fmt: skip
    assert seen["command"] == (
        "ast-repro notebooks run 03_patch_overlap -p seeds 0,1,2 -p profile paper"
    )
    assert COMMAND_ENV not in os.environ  # restored after the run
    # comma lists stay the strings the parameters cells parse; numbers and flags are typed
    typed = notebooks.check_parameters(
        [path], [("seeds", "0,1,2"), ("epochs", "3"), ("synthetic", "False")]
    )
    assert typed[path] == {"seeds": "0,1,2", "epochs": 3, "synthetic": False}


def test_notebook_run_names_other_seeds_apart() -> None:
    from ast_repro.results import notebook_run

    assert notebook_run("smoke", "esc50", synthetic=True, seeds=[0]) == "smoke-esc50-twin"
    assert notebook_run("paper", "audioset", synthetic=False, seeds=[1]) == "paper-audioset-s1"
    three = notebook_run("smoke", "esc50", synthetic=True, seeds=[0, 1, 2])
    assert three == "smoke-esc50-twin-s0-1-2"
