"""The command layer's error policy: bad input exits 2, a failed run 3, Ctrl-C 130, each with
exactly one line on stderr that names the file or key; never a traceback.

Most cases run `python -m ast_repro.cli` as a real process, as a user would; the run failures
that take a training run to provoke go through `ast_repro.cli.main` in-process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ast_repro import cli
from ast_repro import ensemble as ensemble_module
from ast_repro import train as train_module
from ast_repro.datafiles import DatafileError
from ast_repro.errors import EXIT_BAD_INPUT, EXIT_RUN_FAILED, error_line, error_message
from tests.train_fixtures import TINY_FEATURES

REPO = Path(__file__).resolve().parents[1]
TINY_SETS = [f"{key}={value}" for key, value in TINY_FEATURES.items()]
TINY_SETS += ["freqm=4", "timem=4", "epochs=1", "imagenet_pretrain=false", "progress=false"]


def _ast_repro(*argv: str, cwd: Path, torchrun: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env["AST_REPRO_RESULTS"] = str(cwd / "results")
    env["AST_REPRO_PRETRAINED_DIR"] = str(cwd / "pretrained")
    env.pop("WORLD_SIZE", None)
    launcher = [sys.executable, "-m"]
    if torchrun:
        launcher += ["torch.distributed.run", "--standalone", "--nproc_per_node", str(torchrun)]
        launcher += ["-m"]
    command = [*launcher, "ast_repro.cli", *argv]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _train_argv(data: dict, *sets: str) -> list[str]:
    argv = ["train", "--recipe", "smoke_speechcommands"]
    for item in [*(f"{k}={v}" for k, v in data.items()), *TINY_SETS, *sets]:
        argv += ["--set", item]
    return argv


def _one_line(done: subprocess.CompletedProcess, command: str, *names: str) -> str:
    """The single stderr line of a failed command, checked to name every one of `names`."""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"ast-repro {command}: error: "), lines[0]
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "command", "names"),
    [
        # a usage error: argparse's message, on one line
        (["predict", "model.pt", "clip.wav", "--top-k", "0"], "predict", ["--top-k"]),
        # a key the config does not know, with the close match
        (["train", "--recipe", "smoke_speechcommands", "--set", "epoch=3"], "train",
         ["'epoch'", "epochs"]),
        (["evaluate", "missing.pt", "eval.json"], "evaluate", ["missing.pt", "not found"]),
        (["validate-data", "malformed.json"], "validate-data", ["malformed.json", "'wav'"]),
        (["ensemble", "absent.npz", "other.npz"], "ensemble", ["absent.npz"]),
        (["data", "esc50", "--root", "esc", "--url", "ftp://host/esc.zip", "--no-progress"],
         "data", ["ftp://host/esc.zip", "scheme"]),
        (["notebooks", "run", "42"], "notebooks", ["'42'", "00_data_download"]),
    ],
)  # fmt: skip
def test_bad_input_exits_2_with_one_line(
    tmp_path: Path, argv: list[str], command: str, names: list[str]
) -> None:
    (tmp_path / "malformed.json").write_text(json.dumps({"data": [{"wav": 3, "labels": "x"}]}))
    done = _ast_repro(*argv, cwd=tmp_path)
    assert done.returncode == EXIT_BAD_INPUT, done.stderr
    _one_line(done, command, *names)
    assert "Traceback" not in done.stdout + done.stderr


def test_bad_clip_in_a_dataloader_worker_is_one_line(tmp_path: Path, data: dict) -> None:
    # A NaN clip is found in a DataLoader worker; torch re-raises it in the main process with
    # the worker's traceback as its message, and only the clip's own message is printed.
    wav = Path(data["train_data"]).parent / "audio" / "nan.wav"
    sf.write(wav, np.full(8000, np.nan, dtype=np.float32), 16_000, subtype="FLOAT")
    datafile = json.loads(Path(data["train_data"]).read_text())
    datafile["data"].append({"wav": "audio/nan.wav", "labels": "/m/t0"})
    Path(data["train_data"]).write_text(json.dumps(datafile))
    done = _ast_repro(*_train_argv(data, "num_workers=1", "batch_size=4"), cwd=tmp_path)
    assert done.returncode == EXIT_BAD_INPUT, done.stderr
    line = _one_line(done, "train", "nan.wav", "NaN")
    assert "DataLoader" not in line and "Traceback" not in done.stderr


def test_bad_input_under_torchrun_is_reported_once_and_every_rank_exits_2(tmp_path: Path) -> None:
    done = _ast_repro(
        "train", "--recipe", "smoke_speechcommands", "--set", "epoch=3", cwd=tmp_path, torchrun=2
    )
    ours = [line for line in done.stderr.splitlines() if "ast-repro train" in line]
    assert ours == ["ast-repro train: error: unknown config key 'epoch'; did you mean epochs?"]
    # torch prefixes a rank's traceback with "[rankN]:"; our ranks print none
    assert "[rank" not in done.stderr
    # torchrun's own failure report lists each rank's exit status: 2, or SIGTERM for a rank
    # that torchrun stopped after the first one exited
    statuses = set(re.findall(r"exitcode\s*: (-?\d+)", done.stderr))
    assert "2" in statuses and statuses <= {"2", "-15"}, done.stderr


def test_diverged_run_exits_3_with_one_line(
    results: Path, data: dict, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    real = train_module.loss_on_logits

    def poisoned(logits: torch.Tensor, targets: torch.Tensor, kind: str) -> torch.Tensor:
        return real(logits, targets, kind) * float("nan")

    monkeypatch.setattr(train_module, "loss_on_logits", poisoned)
    assert cli.main(_train_argv(data, "run_name=nan", "num_workers=0")) == EXIT_RUN_FAILED
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("ast-repro train: error: nan: loss is nan at ")


def test_ctrl_c_exits_130_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(ensemble_module, "run", interrupted)
    assert cli.main(["ensemble", "a.npz"]) == 130
    assert capsys.readouterr().err == "ast-repro ensemble: interrupted\n"


def test_other_exceptions_keep_their_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(args: object) -> int:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(ensemble_module, "run", broken)
    with pytest.raises(ZeroDivisionError):
        cli.main(["ensemble", "a.npz"])


def test_error_line_keeps_the_message_of_a_dataloader_worker() -> None:
    worker = (
        "Caught DatafileError in DataLoader worker process 0.\n"
        "Original Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\n'
        "ast_repro.datafiles.DatafileError: d.json: entry 3 needs the keys 'wav' and 'labels'\n"
    )
    assert (
        error_message(DatafileError(worker)) == "d.json: entry 3 needs the keys 'wav' and 'labels'"
    )
    folded = error_line("evaluate", DatafileError("first line\n   second"))
    assert folded == "ast-repro evaluate: error: first line second"
