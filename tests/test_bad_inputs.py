"""Bad inputs crossed with every command that takes them, each run as a real process.

Every row runs `python -m ast_repro.cli ...` as a user would and asserts the exit status and,
for a bad input, exactly one line on stderr that names the input and the problem, with no
traceback: clips (`ast_repro.checks`) through `evaluate`, `predict`, `norm-stats`, `train`
and `validate-data`; datafiles; checkpoints; training configs (which leave no run
directory); downloads' roots; prediction files; notebook parameters. The rows of silent
wrong numbers assert the right number. The processes of the selected rows start together
(as many at a time as there are CPUs, up to 4), so the table costs about three minutes on two
idle cores; rows marked slow repeat a fast row's check through a costlier command start.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ast_repro.datafiles import LabelMap, read_label_csv, write_datafile, write_label_csv
from ast_repro.errors import EXIT_BAD_INPUT
from ast_repro.train import train
from tests.train_fixtures import TINY_FEATURES, tiny_config, tiny_dataset

REPO = Path(__file__).resolve().parents[1]
WORKERS = max(2, min(4, os.cpu_count() or 2))
CUDA = torch.cuda.is_available()


@dataclass(frozen=True)
class Case:
    """One row: the command line ({name} fields filled from the world's paths), the exit
    status and what the one stderr line (or, for status 0 and 1, stdout) must contain."""

    id: str
    argv: tuple[str, ...]
    names: tuple[str, ...]
    code: int = EXIT_BAD_INPUT
    check: Callable[[str], None] | None = field(default=None, compare=False)
    cpu_only: bool = False
    slow: bool = False  # the same check as a fast row, through the costlier `train` start


# A bad clip: its file, the kind validate-data reports and words of the commands' message.
CLIPS = {
    "short": ("too short", "shorter than one 25 ms frame"),
    "truncated": ("truncated", "promises 16000 samples"),
    "loud": ("out of range", "far outside [-1, 1]"),
    "nan": ("not finite", "NaN"),
    "garbage": ("unreadable", "unreadable audio"),
    "missing": ("missing file", "file not found"),
    "empty": ("zero length", "no samples"),
    "folder": ("unreadable", "unreadable audio"),
}
# A bad datafile: words of the message (besides its name).
DATAFILES = {
    "nodata": "no clips",
    "wavint": "'wav' must be a string",
    "nolabel": "lists no label",
    "unknown": "/m/zzz",
    "broken": "not valid json",
}
# The issue's own example (NaN samples in a training datafile) and two more run fast.
FAST_TRAIN_CLIPS = ("nan", "short", "loud")
TINY_TRAIN = [f"{k}={v}" for k, v in TINY_FEATURES.items()] + [
    "freqm=4", "timem=4", "epochs=1", "imagenet_pretrain=false", "progress=false",
    "num_workers=0", "batch_size=4",
]  # fmt: skip


def _train(run: str, *sets: str, train_data: str = "{data}/train.json") -> tuple[str, ...]:
    values = [f"train_data={train_data}", "valid_data={data}/valid.json",
              "eval_data={data}/eval.json", "label_csv={data}/labels.csv", *TINY_TRAIN,
              f"run_name={run}", *sets]  # fmt: skip
    argv = ["train", "--recipe", "smoke_speechcommands"]
    for value in values:
        argv += ["--set", value]
    return tuple(argv)


def _validate_all(out: str) -> None:
    """validate-data lists every bad entry of all.json, with the kind the commands refuse."""
    for i, (name, (kind, _)) in enumerate(CLIPS.items()):
        assert re.search(rf"entry {i}: \S*{name}\.wav: {kind}: ", out), (name, out)
    assert re.search(r"entry 8: \S*ok\.wav: no labels: ", out), out
    assert re.search(r"entry 9: \S*ok\.wav: unknown label: /m/zzz", out), out
    assert "note: resampled: 1 (e.g. entry 10: 44100 Hz, resampled to 16000 Hz)" in out
    assert "clips:     11 (1 ok, 10 with problems)" in out and "PROBLEMS FOUND" in out


def _softmax_sums_to_one(out: str) -> None:
    probs = [float(p) for p in re.findall(r"^\s+\d\. (\d\.\d{4})", out, re.MULTILINE)]
    assert len(probs) == 3 and sum(probs) == pytest.approx(1.0, abs=2e-4), out


def _saw_part(out: str) -> None:
    assert "  the model saw the first 0.34 s of 2.00 s (its input length)" in out, out


def _timeline(out: str) -> None:
    lines = out.splitlines()
    assert lines[0].endswith("long.wav: 8 windows, one every 0.25 s"), out
    starts = [float(line.split("-")[0]) for line in lines[1:]]
    assert starts == [0.25 * i for i in range(8)], out
    assert lines[-1].split("s")[0].split("-")[1].strip() == "2.00", out


CASES: list[Case] = [
    # ---- clips: every command refuses each the same way; validate-data lists them all
    *(
        Case(
            f"{command}-{name}",
            argv,
            (f"{name}.wav", words),
            slow=command == "train" and name not in FAST_TRAIN_CLIPS,
        )  # fmt: skip
        for name, (_, words) in CLIPS.items()
        for command, argv in (
            ("evaluate", ("evaluate", "{bce}", f"{{bad}}/{name}.json", "--device", "cpu")),
            ("predict", ("predict", "{bce}", f"{{bad}}/{name}.wav", "--device", "cpu")),
            (
                "norm-stats",
                (
                    "norm-stats",
                    f"{{bad}}/{name}.json",
                    "--target-length",
                    "32",
                    "--num-mel-bins",
                    "32",
                ),
            ),
            ("train", _train(f"clip-{name}", train_data=f"{{bad}}/{name}_train.json")),
        )  # fmt: skip
    ),
    Case(
        "validate-data-clips",
        ("validate-data", "{bad}/all.json", "--labels", "{data}/labels.csv", "--max-listed", "20"),
        (),
        code=1,
        check=_validate_all,
    ),  # fmt: skip
    # a 44.1 kHz clip is resampled by every command, so validate-data passes it with a note
    Case(
        "validate-data-44k",
        ("validate-data", "{bad}/rate44.json", "--labels", "{data}/labels.csv"),
        (),
        code=0,
        check=lambda out: "note: resampled: 1" in out and out.rstrip().endswith("OK"),
    ),
    Case(
        "evaluate-44k",
        ("evaluate", "{bce}", "{bad}/rate44.json", "--device", "cpu"),
        (),
        code=0,
        check=lambda out: "rate44.json (1 clips): mAP" in out,
    ),  # fmt: skip
    # ---- datafiles
    *(
        Case(
            f"{command}-{name}",
            argv,
            (f"{name}.json", words),
            slow=command == "train" and name in ("wavint", "broken"),
        )  # fmt: skip
        for name, words in DATAFILES.items()
        for command, argv in (
            ("validate-data", ("validate-data", f"{{bad}}/{name}.json")),
            ("evaluate", ("evaluate", "{bce}", f"{{bad}}/{name}.json", "--device", "cpu")),
            ("norm-stats", ("norm-stats", f"{{bad}}/{name}.json", "--target-length", "32")),
            ("train", _train(f"data-{name}", train_data=f"{{bad}}/{name}.json")),
        )
        # validate-data lists entry problems (exit 1, above); norm-stats has no label set
        if not (command == "validate-data" and name in ("nolabel", "unknown"))
        and not (command == "norm-stats" and name == "unknown")
    ),
    # ---- checkpoints: evaluate and predict rebuild a model through the same loader
    *(
        Case(f"{command}-{name}", argv, (f"{name}.pt", words), slow=command not in fast)
        for name, (words, fast) in {
            "absent": ("checkpoint not found", ("evaluate",)),
            "bare": ("not an ast-repro training checkpoint", ("evaluate",)),
            "nomodelconfig": ("lacks its model_config", ("predict",)),
            "fewerlabels": ("2 label ids and 2 names for a head of 3 outputs", ("predict",)),
            "newer": ("unknown config key 'future_key'", ("predict",)),
            "nanweights": ("holds NaN or inf", ("evaluate", "predict")),
        }.items()
        for command, argv in (
            ("evaluate", ("evaluate", f"{{bad}}/{name}.pt", "{data}/eval.json", "--device", "cpu")),
            ("predict", ("predict", f"{{bad}}/{name}.pt", "{bad}/ok.wav", "--device", "cpu")),
        )
    ),
    Case(
        "evaluate-label-order",
        (
            "evaluate",
            "{bce}",
            "{data}/eval.json",
            "--label-csv",
            "{bad}/reordered.csv",
            "--device",
            "cpu",
        ),
        ("reordered.csv", "class 0 is /m/t2"),
    ),  # fmt: skip
    # ---- training configs: refused before a run directory exists
    Case("train-unknown-key", _train("cfg-key", "epoch=3"), ("'epoch'", "epochs")),
    Case("train-wrong-type", _train("cfg-type", "lr=fast"), ("lr='fast'", "float")),
    Case("train-target-length", _train("cfg-len", "target_length=10"), ("target_length=10",)),
    Case("train-no-gpu", _train("cfg-gpu", "device=cuda"), ("device='cuda'",), cpu_only=True),
    Case(
        "train-fp16-cpu", _train("cfg-fp16", "precision=fp16"), ("precision='fp16'",), cpu_only=True
    ),  # fmt: skip
    *(
        Case(
            f"train-pretrained-{name}",
            _train(f"cfg-{name}", "imagenet_pretrain=true", f"pretrained_path={{bad}}/{name}.pth"),
            (f"{name}.pth", words),
        )  # fmt: skip
        for name, words in {
            "nowhere": "not found",
            "damaged": "not a readable PyTorch weight file",
            "unfit": "missing",
        }.items()
    ),
    # ---- data, ensemble, notebooks
    Case(
        "data-root-file",
        ("data", "esc50", "--root", "{bad}/ok.wav", "--synthetic", "--no-progress"),
        ("ok.wav", "must be a folder"),
    ),  # fmt: skip
    Case(
        "data-scheme",
        ("data", "esc50", "--root", "{bad}/esc", "--url", "ftp://host/esc.zip", "--no-progress"),
        ("ftp://host/esc.zip", "scheme"),
    ),  # fmt: skip
    Case("data-size", ("data", "esc50", "--synthetic", "--size", "huge"), ("--size", "huge")),
    *(
        Case(
            f"ensemble-{name}",
            ("ensemble", "{bad}/good.npz", f"{{bad}}/{name}.npz"),
            (f"{name}.npz", words),
        )  # fmt: skip
        for name, words in {
            "gone": "prediction file not found",
            "nanprobs": "NaN or inf",
            "flat": "must be equal (N, C) shapes",
            "text": "cannot read prediction file",
        }.items()
    ),
    Case(
        "notebooks-name",
        ("notebooks", "run", "01", "-p", "target_lenght", "128"),
        ("-p target_lenght", "did you mean target_length"),
    ),  # fmt: skip
    Case(
        "notebooks-type",
        ("notebooks", "run", "01", "-p", "limit", "eight"),
        ("-p limit 'eight'", "limit is an int"),
    ),  # fmt: skip
    Case("notebooks-unknown", ("notebooks", "run", "42"), ("'42'", "00_data_download")),
    # ---- silent wrong numbers, now right
    Case(
        "predict-ce-softmax",
        ("predict", "{ce}", "{bad}/ok.wav", "--top-k", "3", "--device", "cpu"),
        (),
        code=0,
        check=_softmax_sums_to_one,
    ),  # fmt: skip
    Case(
        "predict-long-file",
        ("predict", "{bce}", "{bad}/long.wav", "--device", "cpu"),
        (),
        code=0,
        check=_saw_part,
    ),  # fmt: skip
    Case(
        "predict-window",
        (
            "predict",
            "{bce}",
            "{bad}/long.wav",
            "--window",
            "0.25",
            "--top-k",
            "1",
            "--device",
            "cpu",
        ),
        (),
        code=0,
        check=_timeline,
    ),  # fmt: skip
    Case(
        "predict-window-hop",
        ("predict", "{bce}", "{bad}/long.wav", "--window", "5", "--device", "cpu"),
        ("--window 5", "0.335"),
    ),  # fmt: skip
]


# ---------------------------------------------------------------------------- the world


def _bad_clips(folder: Path, rng: np.random.Generator) -> None:
    sf.write(folder / "ok.wav", 0.1 * rng.standard_normal(8000), 16_000, subtype="PCM_16")
    sf.write(folder / "short.wav", 0.1 * rng.standard_normal(300), 16_000, subtype="PCM_16")
    sf.write(folder / "whole.wav", 0.1 * rng.standard_normal(16_000), 16_000, subtype="PCM_16")
    whole = (folder / "whole.wav").read_bytes()
    (folder / "truncated.wav").write_bytes(whole[: 44 + 8000])  # the header says 16000
    loud = (3000 * rng.standard_normal(8000)).astype(np.float32)  # int16 values as floats
    sf.write(folder / "loud.wav", loud, 16_000, subtype="FLOAT")
    sf.write(folder / "nan.wav", np.full(8000, np.nan, np.float32), 16_000, subtype="FLOAT")
    (folder / "garbage.wav").write_bytes(b"RIFF but not really a wave file")
    sf.write(folder / "empty.wav", np.zeros(0), 16_000, subtype="PCM_16")
    (folder / "folder.wav").mkdir()
    sf.write(folder / "rate44.wav", 0.1 * rng.standard_normal(22_050), 44_100, subtype="PCM_16")
    sf.write(folder / "long.wav", 0.1 * rng.standard_normal(32_000), 16_000, subtype="PCM_16")


def _bad_datafiles(folder: Path, data: Path) -> None:
    train = json.loads((data / "train.json").read_text())["data"]
    for name in CLIPS:
        entry = {"wav": f"{name}.wav", "labels": "/m/t0"}
        write_datafile(folder / f"{name}.json", [entry])
        absolute = [{**e, "wav": str(data / e["wav"])} for e in train]
        write_datafile(folder / f"{name}_train.json", [*absolute, entry])
    entries = [{"wav": f"{name}.wav", "labels": "/m/t0"} for name in CLIPS]
    entries += [{"wav": "ok.wav", "labels": ""}, {"wav": "ok.wav", "labels": "/m/zzz"}]
    entries += [{"wav": "rate44.wav", "labels": "/m/t0"}]
    (folder / "all.json").write_text(json.dumps({"data": entries}))
    write_datafile(folder / "rate44.json", [{"wav": "rate44.wav", "labels": "/m/t0"}])
    write_datafile(folder / "nodata.json", [])
    (folder / "wavint.json").write_text(json.dumps({"data": [{"wav": 3, "labels": "/m/t0"}]}))
    write_datafile(folder / "nolabel.json", [{"wav": "ok.wav", "labels": ""}])
    write_datafile(folder / "unknown.json", [{"wav": "ok.wav", "labels": "/m/zzz"}])
    (folder / "broken.json").write_text("{not json")
    labels = read_label_csv(data / "labels.csv")
    write_label_csv(folder / "reordered.csv", LabelMap(labels.mids[::-1], labels.names[::-1]))


def _bad_checkpoints(folder: Path, good: Path) -> None:
    payload = torch.load(good, map_location="cpu", weights_only=True)
    torch.save({"weight": torch.zeros(2)}, folder / "bare.pt")
    torch.save(
        {k: v for k, v in payload.items() if k != "model_config"}, folder / "nomodelconfig.pt"
    )
    fewer = {"mids": payload["labels"]["mids"][:2], "names": payload["labels"]["names"][:2]}
    torch.save({**payload, "labels": fewer}, folder / "fewerlabels.pt")
    torch.save({**payload, "config": {**payload["config"], "future_key": 1}}, folder / "newer.pt")
    model = dict(payload["model"])
    model["mlp_head.1.weight"] = torch.full_like(model["mlp_head.1.weight"], float("nan"))
    torch.save({**payload, "model": model}, folder / "nanweights.pt")
    (folder / "damaged.pth").write_bytes(good.read_bytes()[:4000])
    torch.save({"model": {"w": torch.zeros(3)}}, folder / "unfit.pth")


def _bad_predictions(folder: Path) -> None:
    targets = np.eye(3, dtype=np.float32)[:2]

    def save(name: str, probs: np.ndarray, target: np.ndarray) -> None:
        np.savez(folder / f"{name}.npz", probs=probs, targets=target,
                 datafile=np.array("x.json"), format_version=np.array(1))  # fmt: skip

    save("good", np.full((2, 3), 0.5, np.float32), targets)
    save("nanprobs", np.full((2, 3), np.nan, np.float32), targets)
    save("flat", np.full(3, 0.5, np.float32), np.ones(3, np.float32))
    (folder / "text.npz").write_text("not an npz")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Tiny data, a BCE and a CE checkpoint, and every bad file of the table."""
    root = tmp_path_factory.mktemp("bad_inputs")
    data = tiny_dataset(root / "data")
    bad = root / "bad"
    bad.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AST_REPRO_RESULTS", str(root / "setup"))
        bce = train(tiny_config(data, run_name="bce", epochs=1))
        ce = train(tiny_config(data, run_name="ce", epochs=1, loss="ce"))
    _bad_clips(bad, np.random.default_rng(0))
    _bad_datafiles(bad, root / "data")
    good = Path(bce["checkpoint_dir"]) / "best.pt"
    _bad_checkpoints(bad, good)
    _bad_predictions(bad)
    return {
        "root": str(root),
        "data": str(root / "data"),
        "bad": str(bad),
        "bce": str(good),
        "ce": str(Path(ce["checkpoint_dir"]) / "best.pt"),
    }


def _run(case: Case, world: dict[str, str]) -> subprocess.CompletedProcess:
    root = Path(world["root"])
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env["AST_REPRO_RESULTS"] = str(root / "results")
    env["AST_REPRO_PRETRAINED_DIR"] = str(root / "pretrained")
    env.pop("WORLD_SIZE", None)
    argv = [arg.format(**world) for arg in case.argv]
    command = [sys.executable, "-m", "ast_repro.cli", *argv]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest, world: dict[str, str]) -> dict[str, object]:
    """Every selected row's process, run a few at a time."""
    selected = [
        item.callspec.params["case"]
        for item in request.session.items
        if getattr(item, "module", None) is sys.modules[__name__]
        and hasattr(item, "callspec")
        and "case" in item.callspec.params
    ]
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {case.id: pool.submit(_run, case, world) for case in selected}
        return {key: future.result() for key, future in futures.items()}


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c.id, marks=[pytest.mark.slow] * c.slow) for c in CASES]
)
def test_bad_input(case: Case, outcomes: dict, world: dict[str, str]) -> None:
    if case.cpu_only and CUDA:
        pytest.skip("this machine has the GPU the case asks for")
    done = outcomes[case.id]
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    assert done.returncode == case.code, (done.returncode, done.stdout, done.stderr)
    if case.code == EXIT_BAD_INPUT:
        lines = done.stderr.splitlines()
        assert len(lines) == 1, done.stderr
        command = case.argv[0]
        assert lines[0].startswith(f"ast-repro {command}: error: "), lines[0]
        for name in case.names:
            assert name in lines[0], (name, lines[0])
    if case.check is not None:
        assert case.check(done.stdout) is not False, done.stdout
    if case.argv[0] == "train":
        # a refused config or a bad clip leaves no run directory behind
        run = next(arg for arg in case.argv if arg.startswith("run_name=")).partition("=")[2]
        assert not (Path(world["root"]) / "results" / "train" / run).exists()
