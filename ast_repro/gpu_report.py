"""The GPU run of `benchmarks/gpu.sh`: its helpers and the markdown summary of what it measured.

`benchmarks/gpu.sh` (`make bench-gpu`) runs every GPU measurement of benchmarks/RESULTS.md
in one go, each phase under a time budget, writing json files and `phases.jsonl` into one
folder; `render_summary` turns that folder into `summary.md`, whose cells RESULTS.md's
"GPU scale" section takes. Nothing in the summary is typed: a figure whose phase did not
run or failed says so. The helpers are the steps a machine without internet needs:
`repeat_datafile` (a training epoch of a chosen length from a small twin) and
`standin_weights` (random weights in the DeiT file's place, so the base384 code path with
`imagenet_pretrain` runs; speeds only, never accuracies).

    ast-repro gpu-report summary results/bench/gpu    (also: env, repeat, standin, epoch)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import xml.etree.ElementTree as ElementTree
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ast_repro.datafiles import read_datafile, write_datafile
from ast_repro.fileio import atomic_write_json, atomic_write_text
from ast_repro.results import git_commit

# The full AudioSet recipe: 5 epochs of about 2 M clips drawn by the balanced sampler
# (paper section 3.1; the original's `egs/audioset/run.sh`).
FULL_AUDIOSET_EPOCHS = 5
FULL_AUDIOSET_CLIPS = 2_000_000
# The original's cost: about 118,072 s per full-AudioSet epoch on 4 GTX TITAN X, 5 epochs
# in about 7 days (original repository, issue #116).
ORIGINAL_SECONDS_PER_EPOCH = 118_072
ORIGINAL_HARDWARE = "4 x GTX TITAN X"
# The figures the issue's targets name: batch 12 is the original's AudioSet batch.
RECIPE_BATCH = "12"
OURS, THEIRS = "ast_repro (sdpa)", "transformers (sdpa)"
COMPILED = "ast_repro (sdpa, torch.compile)"
TRAIN_RUNS = {"train-device.json": "device front end + waveform cache",
              "train-worker.json": "worker front end (the original's place)"}  # fmt: skip
SUMMARY_NAME = "summary.md"


def projected_days(samples_per_second: float) -> float:
    """Days for the full AudioSet recipe at a training rate: 5 x ~2 M clips / rate."""
    return FULL_AUDIOSET_EPOCHS * FULL_AUDIOSET_CLIPS / samples_per_second / 86_400


def original_days() -> float:
    """The original's days for the same recipe (5 epochs at 118,072 s each)."""
    return FULL_AUDIOSET_EPOCHS * ORIGINAL_SECONDS_PER_EPOCH / 86_400


def environment(mode: str, note: str) -> dict[str, Any]:
    """What the run ran on: GPU name, torch and CUDA versions, CPUs, date, commit."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "mode": mode,
        "gpu": gpu,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "machine": platform.node(),
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "note": note,
    }


def repeat_datafile(source: Path, target: Path, clips: int) -> Path:
    """Write a datafile listing `source`'s clips over and over until `clips` entries.

    Speed measurements only: a clip seen twice in an epoch costs what a new one does. The
    written paths are absolute, so `target` may live anywhere.
    """
    entries = read_datafile(source)
    write_datafile(target, [entries[i % len(entries)] for i in range(clips)])
    return target


def standin_weights(size: str) -> Path:
    """Random weights of the size's timm DeiT, saved where its ImageNet file is read from.

    Only for speed runs on a machine that cannot download the real file: a run started from
    them is as fast as one from ImageNet weights and learns like one from scratch.

    Raises:
        ValueError: the size has no DeiT (the `test` size uses the digits proxy).
    """
    import timm
    import torch

    from ast_repro.model_config import MODEL_SIZES
    from ast_repro.pretrained import imagenet_weights_path

    name = MODEL_SIZES[size].timm_name
    if name is None:
        raise ValueError(f"model size {size!r} has no DeiT to stand in for")
    path = imagenet_weights_path(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(timm.create_model(name.split(".")[0], pretrained=False).state_dict(), path)
    return path


def epoch_record(metrics_path: Path, target: Path) -> Path:
    """Copy the first epoch's record of a training run's metrics.json, with its device,
    precision and config, to `target` (a summary input, e.g. `train-device.json`)."""
    stored = json.loads(metrics_path.read_text(encoding="utf-8"))
    keep = ("model_size", "batch_size", "frontend", "waveform_cache", "num_workers",
            "target_length", "compile", "imagenet_pretrain", "train_data")  # fmt: skip
    atomic_write_json(
        target,
        {
            "epoch": stored["metrics"]["epochs"][0],
            "device": stored.get("device"),
            "precision": stored.get("precision"),
            "config": {key: stored["config"].get(key) for key in keep},
        },
    )
    return target


def _read(folder: Path, name: str) -> Any:
    path = folder / name
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def read_phases(folder: Path) -> list[dict[str, Any]]:
    """The phases of a run in order, from `phases.jsonl` (one json object per line)."""
    path = folder / "phases.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def junit_counts(path: Path) -> dict[str, int] | None:
    """passed/failed/skipped counts of a pytest junit xml, or None without the file."""
    if not path.is_file():
        return None
    suites = ElementTree.parse(path).getroot().iter("testsuite")
    counts = {"tests": 0, "failed": 0, "skipped": 0}
    for suite in suites:
        counts["tests"] += int(suite.get("tests", 0))
        counts["failed"] += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        counts["skipped"] += int(suite.get("skipped", 0))
    counts["passed"] = counts["tests"] - counts["failed"] - counts["skipped"]
    return counts


def _num(value: float | None, spec: str = ".0f", suffix: str = "") -> str:
    return "not measured" if value is None else f"{value:{spec}}{suffix}"


def _status(phases: list[dict[str, Any]], name: str) -> str:
    found = [p for p in phases if p["name"] == name]
    return f"phase {name}: {found[0]['status']}" if found else f"phase {name}: not run"


def headline(folder: Path) -> list[tuple[str, str]]:
    """(figure, value) rows of the summary's headline table (RESULTS.md's cells)."""
    env, model = _read(folder, "env.json") or {}, _read(folder, "model.json")
    phases = read_phases(folder)
    rows = [("GPU", str(env.get("gpu") or f"none ({env.get('mode', 'unknown')} run)"))]
    if model is not None and RECIPE_BATCH in model.get("training", {}):
        at12 = model["training"][RECIPE_BATCH]
        ours, theirs = at12.get(OURS, {}), at12.get(THEIRS, {})
        ratio = model["training_speedup_vs_transformers"][RECIPE_BATCH].get(OURS)
        rows += [
            ("samples/s at batch 12, ours / transformers (training loop)",
             f"{_num(ours.get('samples_per_second'), '.1f')} / "
             f"{_num(theirs.get('samples_per_second'), '.1f')}"),
            ("ratio to transformers at batch 12 (same run)", _num(ratio, ".2f", "x")),
            ("MFU at batch 12, ours", _num(ours.get("mfu"), ".1%")),
            ("peak memory at batch 12, ours / transformers",
             f"{_num(ours.get('peak_memory_gib'), '.1f')} / "
             f"{_num(theirs.get('peak_memory_gib'), '.1f')} GiB"),
        ]  # fmt: skip
        best = model["best_batch"].get(OURS)
        if best is not None:
            top = model["training"][str(best)]
            ratio = model["training_speedup_vs_transformers"][str(best)].get(OURS)
            rows.append((
                f"best batch ({best}): samples/s, MFU, ratio to transformers",
                f"{_num(top[OURS]['samples_per_second'], '.1f')}, "
                f"{_num(top[OURS]['mfu'], '.1%')}, {_num(ratio, '.2f', 'x')}",
            ))  # fmt: skip
        kernels = sorted({op for ops in model.get("attention_ops", {}).values() for op in ops})
        rows.append(("SDPA kernels called", ", ".join(kernels) or "none"))
    else:
        rows.append(("training loop (bench-model)", f"not measured ({_status(phases, 'model')})"))
    compiled_run = (_read(folder, "model-compiled.json") or {}).get("training", {})
    both = compiled_run.get(RECIPE_BATCH, {})
    if COMPILED in both and OURS in both:
        compiled, eager = (both[k]["samples_per_second"] for k in (COMPILED, OURS))
        rows.append(("torch.compile at batch 12: samples/s, compiled / eager (same run)",
                     f"{_num(compiled, '.1f')} / {_num(eager, '.1f')}"))  # fmt: skip
    else:
        rows.append(("torch.compile at batch 12", f"not measured "
                     f"({_status(phases, 'model-compiled')})"))  # fmt: skip
    for name, label in TRAIN_RUNS.items():
        record = (_read(folder, name) or {}).get("epoch")
        if record is None:
            rows.append(
                (f"training epoch, {label}", f"not measured ({_status(phases, name[:-5])})")
            )
            continue
        rate = record["train_clips_per_second"]
        rows.append((
            f"training epoch, {label}: samples/s, MFU, peak memory, data wait",
            f"{rate:.1f}, {_num(record.get('mfu'), '.1%')}, "
            f"{_num(record.get('peak_memory_gib'), '.1f', ' GiB')}, "
            f"{_num(record.get('data_wait_fraction'), '.1%')}",
        ))  # fmt: skip
        rows.append((
            f"projected full AudioSet at that rate ({FULL_AUDIOSET_EPOCHS} x "
            f"{FULL_AUDIOSET_CLIPS:,} clips / samples/s)",
            f"{projected_days(rate):.2f} days (original: {original_days():.1f} days on "
            f"{ORIGINAL_HARDWARE})",
        ))  # fmt: skip
    fbank = _read(folder, "fbank.json")
    gpu_ratio = (
        (fbank or {}).get("speedup_vs_torchaudio_cpu_loop", {}).get("ast_repro batched (cuda)")
    )
    rows.append(("fbank on the GPU vs the per-clip torchaudio loop on the CPU",
                 _num(gpu_ratio, ".0f", "x") if fbank else
                 f"not measured ({_status(phases, 'fbank')})"))  # fmt: skip
    return rows


def render_summary(folder: Path) -> str:
    """The markdown summary of a `benchmarks/gpu.sh` run folder."""
    env, phases = _read(folder, "env.json") or {}, read_phases(folder)
    lines = [
        "# GPU run summary",
        "",
        f"Machine: {env.get('gpu') or 'no GPU'} ({env.get('mode', '?')} run), "
        f"{env.get('cpus', '?')} CPUs, torch {env.get('torch', '?')} (CUDA "
        f"{env.get('cuda')}), {env.get('date', '?')}, commit {env.get('git_commit')}.",
        "",
        f"**Weights:** {env.get('note', '')}",
        "",
        "| figure | value |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in headline(folder)),
    ]
    tests = junit_counts(folder / "gpu-tests.xml")
    if tests is not None:
        lines += ["", f"`pytest -m gpu`: {tests['passed']} passed, {tests['failed']} failed, "
                      f"{tests['skipped']} skipped."]  # fmt: skip
    model = _read(folder, "model.json")
    if model is not None:
        lines += ["", f"## Training loop by batch ({model['size']}, {model['frames']} frames, "
                      f"{model['precision']}, Adam)", "",
                  "| batch | path | samples/s | MFU | peak GiB | vs transformers |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for batch, row in model["training"].items():
            for name, f in row.items():
                ratio = model["training_speedup_vs_transformers"][batch].get(name)
                lines.append(
                    f"| {batch} | {name} | {_num(f['samples_per_second'], '.1f')} | "
                    f"{_num(f['mfu'], '.1%')} | {_num(f['peak_memory_gib'], '.1f')} | "
                    f"{_num(ratio, '.2f', 'x')} |"
                )
    loader = _read(folder, "loader.json")
    if loader is not None:
        lines += ["", f"## One loader worker (clips/s; {loader['cpus']} CPUs, load average "
                      f"{loader['load_average_before'][0]:.1f})", "",
                  "| recipe | path | clips/s per worker | workers for 550 / 1000 clips/s |",
                  "|---|---|---|---|"]  # fmt: skip
        for recipe, entry in loader["recipes"].items():
            for path, rate in entry["clips_per_second_per_worker"].items():
                workers = entry["workers_needed"].get(path)
                need = " / ".join(str(w) for w in workers.values()) if workers else "-"
                lines.append(f"| {recipe} | {path} | {rate:.0f} | {need} |")
        for recipe, why in loader["missing"].items():
            lines.append(f"| {recipe} | not measured: {why} | | |")
    lines += ["", "## Phases", "", "| phase | budget s | wall s | status |", "|---|---|---|---|"]
    lines += [f"| {p['name']} | {p['budget_s']} | {p['seconds']} | {p['status']} |"
              for p in phases]  # fmt: skip
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("env", "repeat", "standin", "epoch", "summary"))
    parser.add_argument("args", nargs="*", help="env: FOLDER MODE NOTE; repeat: SOURCE TARGET "
                        "CLIPS; standin: SIZE; epoch: METRICS TARGET; summary: FOLDER")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    values = args.args
    if args.action == "env":
        atomic_write_json(Path(values[0]) / "env.json", environment(values[1], values[2]))
    elif args.action == "repeat":
        print(repeat_datafile(Path(values[0]), Path(values[1]), int(values[2])))
    elif args.action == "epoch":
        print(epoch_record(Path(values[0]), Path(values[1])))
    elif args.action == "standin":
        print(f"random stand-in for the {values[0]} ImageNet weights: {standin_weights(values[0])}")
    else:
        folder = Path(values[0])
        text = render_summary(folder)
        atomic_write_text(folder / SUMMARY_NAME, text)
        print(text)
    return 0
