"""ESC-50 5-fold cross-validation (original `egs/esc50/run_esc.sh` and `get_esc_result.py`),
and the `ast-repro train` command, which runs a recipe: one run, or every fold of ESC-50.

The original trains one model per fold, each validated on its held-out fold, then averages
the per-epoch accuracies over the folds and reports the epoch with the best average: a
choice made on the test folds themselves (`get_esc_result.py`). `train_esc50_folds` runs the
folds and records that figure next to the unbiased last-epoch figure, each labelled
(`ast_repro.ensemble.esc50_summary`).

The command lives here, above `ast_repro.train` (one run), so that the dependency between
the two modules goes one way: this module imports `ast_repro.train`, never the reverse.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from ast_repro.config import ConfigError, TrainConfig, describe, resolve
from ast_repro.ensemble import esc50_summary
from ast_repro.results import write_metrics
from ast_repro.runtime import launch_rank, setup
from ast_repro.train import STAGE, train

# Errors of the user's making: reported in one line by `ast-repro train`, exit status 2.


def train_esc50_folds(config: TrainConfig, *, resume: bool = False) -> dict[str, Any]:
    """ESC-50 cross-validation: train each fold of `config.folds`, then summarise.

    Fold k trains on the other folds and validates on fold k (run `<run_name>/fold{k}`), as
    `egs/esc50/run_esc.sh`. The summary (`ast_repro.ensemble.esc50_summary`) gives both the
    original's figure, chosen on the test folds, and the unbiased last-epoch figure.
    """
    folds = config.fold_list()
    if not folds:
        raise ConfigError(f"dataset={config.dataset!r}: cross-validation is for esc50 only")
    runtime = setup(device=config.device, precision=config.precision)
    try:
        runs = {}
        for fold in folds:
            fold_config = dataclasses.replace(
                config, folds=str(fold), run_name=f"{config.run_name}/fold{fold}"
            )
            runs[fold] = train(fold_config, resume=resume, runtime=runtime)
        accuracy = [[record["accuracy"] for record in runs[f]["history"]] for f in folds]
        summary = esc50_summary(accuracy)
        path = None
        if runtime.is_main:
            path = write_metrics(
                STAGE,
                config.run_name,
                profile=config.profile,
                config=config.to_dict(),
                metrics={"folds": folds, "cross_validation": summary},
                seed=config.seed,
                wall_time_s=sum(runs[f]["history"][-1]["seconds"] for f in folds),
                extra={"fold_runs": {str(f): runs[f]["run_dir"] for f in folds}},
            )
            for key in ("selected", "last_epoch"):
                part = summary[key]
                print(f"ESC-50 {part['label']}: epoch {part['epoch']}, mean {part['mean']:.4f}")
        return {
            "summary": summary,
            "folds": runs,
            "metrics_path": None if path is None else str(path),
        }
    finally:
        runtime.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `ast-repro train`."""
    parser.add_argument("--recipe", required=True, help="a recipe of ast_repro.recipes.RECIPES")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value"
    )
    parser.add_argument("--resume", action="store_true", help="continue from checkpoints/last.pt")
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config and exit"
    )


def run(args: argparse.Namespace) -> int:
    """Resolve the recipe and train it (all folds of ESC-50 by default).

    Raises:
        AstReproError: a bad recipe, key, datafile or weight file (exit status 2), or
            `TrainingDiverged` (3); `ast_repro.cli.main` reports it in one line.
    """
    config = resolve(args.recipe, args.set)
    if args.print_config:
        print(describe(config))
        return 0
    if config.dataset == "esc50" and len(config.fold_list()) > 1:
        train_esc50_folds(config, resume=args.resume)
    else:
        result = train(config, resume=args.resume)
        if launch_rank()[0] == 0:
            print(f"metrics -> {result['metrics_path']}")
    return 0
