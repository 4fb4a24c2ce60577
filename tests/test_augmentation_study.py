"""The augmentation study's variants, per-epoch curves and comparison lines (notebook 04)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy import stats

from ast_repro import plots
from ast_repro.augment import sample_lambda
from ast_repro.augmentation_study import (
    OFF,
    StudyError,
    augmentation_study,
    chance_accuracy,
    comparison_lines,
    epoch_curves,
    overfitting,
    parse_list,
    scored_rows,
    study_config,
)
from ast_repro.config import ConfigError, resolve
from ast_repro.grid_results import run_epochs
from ast_repro.results import write_metrics
from ast_repro.seeding import make_generator


def test_speechcommands_study_takes_the_recipes_values_and_builds_every_kind() -> None:
    study = augmentation_study("speechcommands", ["mixup", "masks", "noise"])
    assert study.settings == {"mixup": {"mixup": 0.6}, "masks": {"freqm": 48, "timem": 48},
                              "noise": {"noise": True}}  # fmt: skip
    assert study.skipped == ()
    variants = study.variants()
    assert list(variants) == ["none", "only_mixup", "only_masks", "only_noise", "no_mixup",
                              "no_masks", "no_noise", "all"]  # fmt: skip
    assert variants["none"] == OFF
    assert variants["all"] == {"mixup": 0.6, "freqm": 48, "timem": 48, "noise": True}
    assert study.all_on() == variants["all"]
    assert variants["only_noise"] == {**OFF, "noise": True}
    assert variants["no_mixup"] == {"mixup": 0.0, "freqm": 48, "timem": 48, "noise": True}
    # "all" is the recipe itself, "none" switches every augmentation off
    assert resolve("speechcommands", variants["all"]) == resolve("speechcommands")
    assert study_config(resolve("speechcommands", variants["none"])) == OFF
    assert list(study.variants(["none", "alone", "all"])) == [
        "none", "only_mixup", "only_masks", "only_noise", "all"
    ]  # fmt: skip


def test_given_values_win_and_zero_takes_the_recipes() -> None:
    smoke = augmentation_study("smoke_speechcommands", ["mixup", "masks", "noise"])
    assert smoke.settings == {"noise": {"noise": True}}  # the smoke recipe turns the rest off
    assert smoke.skipped == ("mixup", "masks")
    given = augmentation_study("smoke_speechcommands", ["mixup", "freqm", "timem"], mixup=0.3,
                               freqm=20, timem=30)  # fmt: skip
    assert given.settings == {"mixup": {"mixup": 0.3}, "freqm": {"freqm": 20},
                              "timem": {"timem": 30}}  # fmt: skip


def test_esc50_skips_mixup_and_noise_and_keeps_duplicates_once() -> None:
    study = augmentation_study("esc50", ["mixup", "freqm", "timem", "noise"])
    assert study.skipped == ("mixup", "noise")
    assert study.settings == {"freqm": {"freqm": 24}, "timem": {"timem": 96}}
    variants = study.variants()
    # with two units, only_freqm is no_timem and only_timem is no_freqm
    assert list(variants) == ["none", "only_freqm", "only_timem", "all"]
    assert variants["only_timem"] == {"freqm": 0, "timem": 96}
    single = augmentation_study("esc50", ["masks"]).variants()
    assert list(single) == ["none", "all"]


def test_errors_name_the_problem() -> None:
    with pytest.raises(StudyError, match="unknown augmentation units"):
        augmentation_study("esc50", ["cutmix"])
    with pytest.raises(StudyError, match="same key"):
        augmentation_study("esc50", ["masks", "freqm"])
    with pytest.raises(StudyError, match="unknown variant kinds"):
        augmentation_study("esc50", ["masks"]).variants(["some"])
    with pytest.raises(StudyError, match="nothing to switch on"):
        augmentation_study("smoke_speechcommands", ["mixup", "masks"])
    with pytest.raises(ConfigError, match="freqm"):
        augmentation_study("speechcommands", ["masks"], freqm=500)
    assert parse_list(" mixup, masks ,,noise") == ["mixup", "masks", "noise"]
    assert parse_list(3) == ["3"]


def _run(root: Path, name: str, train: list[float], valid: list[float], main: list[float]):
    epochs = [{"epoch": i + 1, "train_loss": t, "valid_loss": v, "main": m}
              for i, (t, v, m) in enumerate(zip(train, valid, main, strict=True))]  # fmt: skip
    write_metrics("train", name, profile="smoke", config={}, metrics={"epochs": epochs},
                  seed=0, wall_time_s=1.0)  # fmt: skip
    return root / "train" / name


def test_epoch_curves_average_seeds_and_folds(results: Path) -> None:
    _run(results, "g/none-s0", [2.0, 1.0, 0.5], [2.0, 1.5, 1.7], [0.1, 0.2, 0.3])
    _run(results, "g/none-s1", [2.0, 1.2, 0.7], [2.2, 1.7, 1.9], [0.1, 0.4, 0.5])
    # an ESC-50 run: its folds hold the epochs
    _run(results, "g/all-s0/fold1", [2.0, 1.6], [2.0, 1.4], [0.2, 0.6])
    _run(results, "g/all-s0/fold2", [2.0, 1.8], [2.0, 1.6], [0.4, 0.8])
    write_metrics("train", "g/all-s0", profile="smoke", config={},
                  metrics={"cross_validation": {}}, seed=0, wall_time_s=1.0)  # fmt: skip
    assert run_epochs(results / "train" / "g/all-s0")[1] == pytest.approx(
        {"epoch": 2, "train_loss": 1.7, "valid_loss": 1.5, "main": 0.7}
    )
    rows = [{"variant": "none", "seed": 0, "run": "g/none-s0"},
            {"variant": "none", "seed": 1, "run": "g/none-s1"},
            {"variant": "all", "seed": 0, "run": "g/all-s0"}]  # fmt: skip
    curves = epoch_curves(rows)
    assert curves["none"]["epoch"] == [1.0, 2.0, 3.0]
    assert curves["none"]["train_loss"] == pytest.approx([2.0, 1.1, 0.6])
    assert curves["none"]["gap"] == pytest.approx([0.1, 0.5, 1.2])
    assert curves["all"]["valid_loss"] == pytest.approx([2.0, 1.5])
    summary = {row["variant"]: row for row in overfitting(curves)}
    assert summary["none"]["best_valid_epoch"] == 2
    assert summary["none"]["valid_rise"] == pytest.approx(0.2)
    assert summary["all"]["best_valid_epoch"] == 2 and summary["all"]["valid_rise"] == 0.0
    assert summary["all"]["gap"] == pytest.approx(-0.2)


def test_comparison_lines_are_computed_both_ways() -> None:
    lines = comparison_lines({"none": 0.2, "only_mixup": 0.25, "all": 0.3},
                             {"none": 0.5, "all": 0.1}, label="smoke, twin")  # fmt: skip
    assert lines[0] == "smoke, twin: all augmentations beat none: yes (all 0.300, none 0.200)"
    assert lines[1].startswith("smoke, twin: augmentation narrows the validation-training loss "
                               "gap: yes (all +0.100, none +0.500)")  # fmt: skip
    assert lines[2] == "smoke, twin: only_mixup against none: +0.050"
    worse = comparison_lines({"none": 0.3, "no_noise": 0.3, "all": 0.2}, {"none": 0.1, "all": 0.4},
                             label="paper")  # fmt: skip
    assert "beat none: no" in worse[0] and "gap: no" in worse[1]
    assert worse[2] == "paper: no_noise against none: +0.000"  # no "-0.000"
    assert comparison_lines({"all": 0.3}, {}, label="smoke") == []


def test_samples_vs_density_and_epoch_curves_draw() -> None:
    fig = Figure()
    left, right = fig.subplots(1, 2)
    draws = sample_lambda(make_generator(0), 4000)
    plots.samples_vs_density(left, draws, stats.beta(10, 10).pdf, label="Beta(10, 10)")
    heights = np.array([patch.get_height() for patch in left.patches])
    assert heights.argmax() in range(25, 35)  # the mode 0.5 of 60 bins over [0, 1]
    assert left.lines[0].get_ydata().max() == pytest.approx(stats.beta(10, 10).pdf(0.5), rel=1e-3)
    curves = {"none": {"epoch": [1, 2], "train_loss": [2, 1], "valid_loss": [2, 3]},
              "all": {"epoch": [1, 2], "train_loss": [2, 2], "valid_loss": [2, 2]}}  # fmt: skip
    plots.epoch_curves(right, curves)
    assert [line.get_label() for line in right.lines] == [
        "none train_loss", "none valid_loss", "all train_loss", "all valid_loss"
    ]  # fmt: skip
    assert right.lines[0].get_linestyle() == "--" and right.lines[1].get_color() == "C0"
    plots.epoch_curves(left, curves, keys=("train_loss",))
    assert left.lines[-1].get_linestyle() == "-"
    with pytest.raises(ValueError, match="at most"):
        plots.epoch_curves(right, curves, keys=("a", "b", "c", "d", "e"))


def test_scored_rows_take_the_number_the_paper_reports() -> None:
    rows = [{"variant": "none", "wa": None, "test": 0.4, "last": 0.3},
            {"variant": "all", "wa": None, "test": None, "last": 0.7}]  # fmt: skip
    assert [row["result"] for row in scored_rows(rows)] == [0.4, 0.7]
    assert "result" not in rows[0]


def test_chance_accuracy_counts_the_classes(data) -> None:
    assert chance_accuracy(resolve("smoke_speechcommands", data)) == pytest.approx(1 / 3)
    assert chance_accuracy(resolve("smoke_audioset_balanced", {"data_root": "/nowhere"})) is None
