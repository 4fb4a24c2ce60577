"""Ensembles of saved runs and Table 1 (ast_repro.ensembling, ast_repro.ensemble_table).

Most tests write run directories by hand (a metrics.json as training writes it and the
prediction files), so the numbers are known; one trains a tiny grid to check that what the
training engine saves is what the ensembles read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ast_repro.ensemble import CumulativeEnsemble, EnsembleError, load_aligned, save_predictions
from ast_repro.ensemble_table import (
    audioset_split,
    beats_line,
    epoch_lines,
    original_epoch_log,
    reproduced_rows,
    table1_bars,
    table1_lines,
    table1_rows,
)
from ast_repro.ensembling import (
    ensemble_curve,
    epoch_curve,
    epoch_rows,
    main_key,
    members,
    saved_predictions,
    score,
    subset_spread,
)
from ast_repro.experiments import run_grid
from ast_repro.metrics import compute_metrics, headline
from ast_repro.patch_ablation import stride_grid
from ast_repro.results import paper_reference, write_metrics
from tests.train_fixtures import tiny_overrides

CLIPS, CLASSES, EPOCHS = 24, 4, 3


def _targets() -> np.ndarray:
    rng = np.random.default_rng(0)
    targets = (rng.random((CLIPS, CLASSES)) < 0.3).astype(np.float32)
    targets[0] = 1.0  # every class has a positive
    targets[1] = 0.0  # and a negative
    return targets


def _probs(seed: int, targets: np.ndarray, signal: float = 0.3) -> np.ndarray:
    noise = np.random.default_rng(seed).random(targets.shape)
    return np.clip(signal * targets + noise, 0, 1).astype(np.float32)


def _fake_run(results: Path, name: str, seed: int, *, wa: bool = True, best: int = 2) -> Path:
    """A finished run as `ast_repro.train` leaves it: metrics.json and prediction files."""
    run = results / "train" / "g" / name
    targets = _targets()
    history, cumulative = [], CumulativeEnsemble()
    for epoch in range(1, EPOCHS + 1):
        probs = _probs(100 * seed + epoch, targets)
        save_predictions(run / "predictions" / f"valid_{epoch}.npz", probs=probs,
                         targets=targets, datafile="eval.json")  # fmt: skip
        mean = cumulative.update(probs)
        values = headline(compute_metrics(probs, targets))
        history.append({"epoch": epoch, **values, "main": values["mAP"],
                        "cum_mAP": compute_metrics(mean, targets)["mAP"]})  # fmt: skip
    metrics = {"epochs": history, "final": history[-1],
               "best": {"epoch": best, "main": history[best - 1]["main"]}}  # fmt: skip
    if wa:
        probs = _probs(100 * seed + 99, targets, signal=0.6)
        save_predictions(run / "predictions" / "valid_wa.npz", probs=probs, targets=targets,
                         datafile="eval.json")  # fmt: skip
        metrics["wa"] = {"label": "weight average", **headline(compute_metrics(probs, targets))}
    config = {"metric": "mAP", "wa_start": 2, "wa_end": 3, "run_name": f"g/{name}"}
    write_metrics("train", f"g/{name}", profile="smoke", config=config, metrics=metrics,
                  seed=seed, wall_time_s=1.0, extra={"complete": True})  # fmt: skip
    return run


def _arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    (run,) = load_aligned([path])
    return run.probs, run.targets


def _rows(names_seeds: list[tuple[str, int]]) -> list[dict]:
    return [{"run": f"g/{v}-s{s}", "variant": v, "seed": s} for v, s in names_seeds]


def test_saved_predictions_picks_the_file_and_its_recorded_metrics(results: Path) -> None:
    run = _fake_run(results, "stride10-s0", 0, best=2)
    wa, wa_metrics = saved_predictions(run, "wa")
    assert wa == run / "predictions" / "valid_wa.npz"
    assert wa_metrics == headline(compute_metrics(*_arrays(wa)))
    last, last_metrics = saved_predictions(run, "last")
    assert last == run / "predictions" / f"valid_{EPOCHS}.npz"
    assert last_metrics == headline(compute_metrics(*_arrays(last)))
    best, best_metrics = saved_predictions(run, "best")
    assert best == run / "predictions" / "valid_2.npz"
    assert best_metrics == headline(compute_metrics(*_arrays(best)))
    assert best_metrics != last_metrics
    with pytest.raises(EnsembleError, match="not one of"):
        saved_predictions(run, "mean")
    plain = _fake_run(results, "plain-s0", 0, wa=False)
    with pytest.raises(EnsembleError, match="averaged no weights"):
        saved_predictions(plain, "wa")
    (run / "predictions" / "valid_2.npz").unlink()
    with pytest.raises(EnsembleError, match="saved no such predictions"):
        saved_predictions(run, "best")


def test_members_keep_the_order_and_refuse_a_run_twice(results: Path) -> None:
    for v, s in [("stride10", 0), ("stride10", 1), ("stride16", 0)]:
        _fake_run(results, f"{v}-s{s}", s)
    rows = _rows([("stride16", 0), ("stride10", 0), ("stride10", 1)])
    chosen = members(rows, "last")
    assert [m.name for m in chosen] == ["stride16-s0", "stride10-s0", "stride10-s1"]
    assert [(m.variant, m.seed) for m in chosen] == [("stride16", 0), ("stride10", 0),
                                                     ("stride10", 1)]  # fmt: skip
    assert chosen[0].predictions == results / "train/g/stride16-s0/predictions/valid_3.npz"
    with pytest.raises(EnsembleError, match="listed twice"):
        members(rows + rows[:1])


def test_score_and_curves_average_the_saved_probabilities(results: Path) -> None:
    for seed in range(4):
        _fake_run(results, f"stride10-s{seed}", seed)
    chosen = members(_rows([("stride10", s) for s in range(4)]), "wa")
    runs = load_aligned([m.predictions for m in chosen])
    targets = runs[0].targets
    mean_all = compute_metrics(np.mean([r.probs for r in runs], axis=0), targets)
    assert score(chosen)["mAP"] == pytest.approx(mean_all["mAP"])
    assert set(score(chosen)) == {"mAP", "mAUC", "d_prime", "accuracy"}

    curve = ensemble_curve(chosen)
    assert [row["models"] for row in curve] == [1, 2, 3, 4]
    assert [row["added"] for row in curve] == [m.name for m in chosen]
    singles = [compute_metrics(r.probs, targets)["mAP"] for r in runs]
    assert [row["member"] for row in curve] == pytest.approx(singles)
    assert curve[0]["ensemble"] == pytest.approx(singles[0])
    first_two = compute_metrics((runs[0].probs + runs[1].probs) / 2, targets)["mAP"]
    assert curve[1]["ensemble"] == pytest.approx(first_two, abs=1e-6)
    assert curve[-1]["ensemble"] == pytest.approx(mean_all["mAP"], abs=1e-6)

    spread = subset_spread(chosen)
    assert [row["subsets"] for row in spread] == [4, 6, 4, 1]
    assert spread[0]["min"] == pytest.approx(min(singles))
    assert spread[0]["max"] == pytest.approx(max(singles))
    assert spread[0]["mean"] == pytest.approx(np.mean(singles))
    assert spread[-1]["mean"] == pytest.approx(mean_all["mAP"], abs=1e-6)
    sampled = subset_spread(chosen, max_subsets=3, seed=1)
    assert [row["subsets"] for row in sampled] == [3, 3, 3, 1]
    assert sampled == subset_spread(chosen, max_subsets=3, seed=1)  # seeded
    with pytest.raises(ValueError, match="at least 1"):
        subset_spread(chosen, max_subsets=0)


def test_ensembles_refuse_predictions_of_other_clips(results: Path) -> None:
    _fake_run(results, "a-s0", 0)
    other = _fake_run(results, "b-s0", 1)
    targets = _targets()
    save_predictions(other / "predictions" / "valid_wa.npz", probs=_probs(5, targets),
                     targets=targets, datafile="other.json")  # fmt: skip
    chosen = members(_rows([("a", 0), ("b", 0)]))
    with pytest.raises(EnsembleError, match="scores other.json"):
        score(chosen)
    save_predictions(other / "predictions" / "valid_wa.npz", probs=_probs(5, targets),
                     targets=1 - targets, datafile="eval.json")  # fmt: skip
    with pytest.raises(EnsembleError, match="targets differ"):
        ensemble_curve(chosen)


def test_epoch_curve_and_rows_read_the_recorded_history(results: Path) -> None:
    run = _fake_run(results, "stride10-s0", 0, best=1)
    curve = epoch_curve(run)
    assert curve["metric"] == "mAP" and curve["epochs"] == [1, 2, 3]
    assert curve["best_epoch"] == 1 and curve["best"] == curve["per_epoch"][0]
    assert curve["last"] == curve["per_epoch"][-1]
    assert curve["cumulative"][0] == curve["per_epoch"][0]
    assert curve["wa_range"] == (2, 3) and curve["wa"] is not None
    rows = epoch_rows({"s0": curve, "plain": epoch_curve(_fake_run(results, "p-s0", 1, wa=False))})
    assert [(r["variant"], r["seed"]) for r in rows] == [
        ("last epoch", "s0"), ("best epoch", "s0"), ("cumulative", "s0"),
        ("weight average", "s0"), ("last epoch", "plain"), ("best epoch", "plain"),
        ("cumulative", "plain"),
    ]  # fmt: skip
    assert rows[2]["mAP"] == curve["cumulative"][-1]
    assert main_key("acc") == "accuracy" and main_key("mAP") == "mAP"


def test_saved_runs_of_a_grid_are_what_the_ensembles_read(results: Path, data: dict) -> None:
    common = tiny_overrides(data, epochs=2, wa=True, wa_start=1, wa_end=2, save_model=False)
    rows = run_grid("smoke_speechcommands", {"base": {}}, [0, 1], grid="g", **common)
    chosen = members(rows, "wa")
    assert [m.name for m in chosen] == ["base-s0", "base-s1"]
    for member, row in zip(chosen, rows, strict=True):
        curve = epoch_curve(member.run)
        files = [member.run / "predictions" / f"valid_{e}.npz" for e in curve["epochs"]]
        rebuilt = CumulativeEnsemble.from_files(files)
        targets = load_aligned(files)[0].targets
        assert curve["cumulative"][-1] == pytest.approx(
            compute_metrics(rebuilt.mean, targets)["accuracy"]
        )
        # the weight average's saved predictions score what its run recorded
        assert member.metrics["accuracy"] == row["wa"]
        probs, targets = _arrays(member.predictions)
        assert compute_metrics(probs, targets)["accuracy"] == pytest.approx(row["wa"])
    assert 0 <= score(chosen)["accuracy"] <= 1


# ---------------------------------------------------------------------------- Table 1


def test_table1_rows_stand_beside_the_paper() -> None:
    reference = paper_reference()
    rows = table1_rows([0.30, 0.32, 0.34], 0.35, 0.36, kind="wa", split="balanced",
                       models_m=6, reference=reference)  # fmt: skip
    assert [r["name"] for r in rows] == ["single", "Ensemble-S", "Ensemble-M"]
    assert [r["models"] for r in rows] == [1, 3, 6]
    assert rows[0]["row"] == "AST single (weight average)"
    assert rows[0]["value"] == pytest.approx(0.32)
    assert rows[0]["pm"] == pytest.approx(np.std([0.30, 0.32, 0.34]))
    assert [(r["paper"], r["paper_pm"]) for r in rows] == [(0.347, 0.001), (0.363, None),
                                                           (0.378, None)]  # fmt: skip
    full = table1_rows([0.45], 0.47, 0.48, kind="last", split="full", models_m=4,
                       reference=reference)  # fmt: skip
    assert full[0]["ref"] == "headline.audioset_full_map_single_last_epoch"
    assert full[0]["paper"] == 0.448 and full[0]["pm"] is None
    assert [r["paper"] for r in full[1:]] == [0.475, 0.485]
    best = table1_rows([0.3], 0.3, 0.3, kind="best", split="balanced", models_m=2,
                       reference=reference)  # fmt: skip
    assert best[0]["paper"] is None and best[0]["ref"] is None

    reproduced = reproduced_rows(best, metric="mAP", dataset="audioset_balanced",
                                 variant="stride10", kind="best", seeds=[0, 1, 2],
                                 reference=reference)  # fmt: skip
    assert [r["variant"] for r in reproduced] == ["ensemble_s-best", "ensemble_m-best"]
    assert reproduced[0]["ref"] == "headline.audioset_balanced_map_ensemble_s"
    assert reproduced[0]["paper"] == 0.363 and reproduced[0]["seeds"] == [0, 1, 2]

    bars, paper = table1_bars(rows, [0.30, 0.32, 0.34], [0, 1, 2], "mAP")
    assert [(b["variant"], b.get("seed")) for b in bars] == [
        ("single", 0), ("single", 1), ("single", 2), ("Ensemble-S", None), ("Ensemble-M", None)
    ]  # fmt: skip
    assert paper == {"single": 0.347, "Ensemble-S": 0.363, "Ensemble-M": 0.378}


def test_beats_lines_say_yes_no_and_tie() -> None:
    assert beats_line("A", 0.312, "B", 0.305, label="smoke", paper=(0.363, 0.347)) == (
        "smoke: A beats B: yes (0.312 > 0.305; paper 0.363 > 0.347)"
    )
    no = beats_line("A", 0.298, "B", 0.312, label="smoke")
    assert no == "smoke: A beats B: no (0.298 < 0.312)"
    assert "no (tie at 0.300)" in beats_line("A", 0.3001, "B", 0.2999, label="paper")
    table = table1_rows([0.31, 0.31], 0.30, 0.32, kind="wa", split="balanced", models_m=4,
                        reference=paper_reference())  # fmt: skip
    lines = table1_lines(table, label="smoke")
    assert lines == [
        "smoke: Ensemble-S beats the single model: no (0.300 < 0.310; paper 0.363 > 0.347)",
        "smoke: Ensemble-M beats Ensemble-S: yes (0.320 > 0.300; paper 0.378 > 0.363)",
    ]


def test_original_epoch_log_and_its_comparisons() -> None:
    reference = paper_reference()
    full = original_epoch_log(reference, "full")
    assert full["per_epoch"] == [0.4153, 0.4349, 0.4476, 0.4490, 0.4486]
    assert (full["last"], full["wa"], full["cumulative"]) == (0.4486, 0.459, 0.4647)
    assert full["wa_range"] == (1, 5)
    balanced = original_epoch_log(reference, "balanced")
    assert balanced["per_epoch"] is None and balanced["cumulative"] is None
    assert (balanced["last"], balanced["wa"], balanced["wa_range"]) == (0.3358, 0.35, (6, 25))
    means = {"last epoch": 0.30, "best epoch": 0.33, "cumulative": 0.31, "weight average": 0.32}
    assert epoch_lines(means, full, label="smoke") == [
        "smoke: the cumulative ensemble beats the last epoch: yes (0.310 > 0.300; "
        "paper 0.465 > 0.449)",
        "smoke: weight averaging beats the last epoch: yes (0.320 > 0.300; paper 0.459 > 0.449)",
        "smoke: weight averaging beats the best epoch: no (0.320 < 0.330)",
    ]
    without_wa = {k: v for k, v in means.items() if k != "weight average"}
    assert epoch_lines(without_wa, balanced, label="smoke") == [
        "smoke: the cumulative ensemble beats the last epoch: yes (0.310 > 0.300)"
    ]
    assert audioset_split("train_full") == "full" and audioset_split("train") == "balanced"


def test_the_stride_grid_is_notebook_03s() -> None:
    assert stride_grid("smoke_audioset", synthetic=True) == "patch_overlap-smoke_audioset-twin"
    assert stride_grid("audioset_full", synthetic=False) == "patch_overlap-audioset_full"
