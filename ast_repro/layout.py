"""Where a prepared dataset lives on disk: the contract between `datasets` and training.

Each dataset root (default `data/<name>/`) holds `datafiles/*.json` AST datafiles and a
label csv, named as in the original recipes (`egs/esc50/prep_esc50.py`,
`egs/speechcommands/prep_sc.py`, `egs/audioset/`). `ast_repro.datasets` writes them and
training (`ast_repro.build`) reads them; neither imports the other.
"""

from __future__ import annotations

import os
from pathlib import Path

from ast_repro.datafiles import LabelMap
from ast_repro.results import data_dir

DATASET_NAMES = ("esc50", "speechcommands", "audioset")
DATAFILES_DIR = "datafiles"
# ESC-50 is evaluated by 5-fold cross-validation on the dataset's own folds
# (`egs/esc50/prep_esc50.py` writes one train/eval pair per fold, `run_esc.sh` trains each).
ESC50_FOLDS = (1, 2, 3, 4, 5)

ESC50_LABEL_CSV = "esc_class_labels_indices.csv"
SPEECHCOMMANDS_LABEL_CSV = "speechcommands_class_labels_indices.csv"
AUDIOSET_LABEL_CSV = "class_labels_indices.csv"

SPEECHCOMMANDS_MID_PREFIX = "/m/spcmd"
# The class order of the original label csv (`egs/speechcommands/data/
# speechcommands_class_labels_indices.csv`), /m/spcmd00 to /m/spcmd34, which the released
# checkpoint `speechcommands_10_10_0.9812.pth` was trained with; transformers' copy
# (`MIT/ast-finetuned-speech-commands-v2`) names its outputs in the same order.
SPEECHCOMMANDS_LABEL_ORDER = tuple(
    "backward follow five bed zero on learn two house tree dog stop seven eight down six "
    "forward cat right visual four wow no nine off three left marvin yes up sheila happy "
    "bird go one".split()
)


def speechcommands_labels() -> LabelMap:
    """The original label csv: mids /m/spcmd00../m/spcmd34 over `SPEECHCOMMANDS_LABEL_ORDER`.

    Prepared data uses this order so that the released checkpoint (and transformers' copy)
    scores it with its own class indices.
    """
    count = len(SPEECHCOMMANDS_LABEL_ORDER)
    return LabelMap(
        mids=tuple(f"{SPEECHCOMMANDS_MID_PREFIX}{i:02d}" for i in range(count)),
        names=SPEECHCOMMANDS_LABEL_ORDER,
    )


def default_root(name: str, *, synthetic: bool = False) -> Path:
    """`data/<name>` (or `data/<name>-twin` for the synthetic twin) in the data folder.

    The data folder is `$AST_REPRO_DATA`, else `data/` in the checkout, so notebooks (run
    from notebooks/) and the command line share one copy. Twins get their own root so a
    real dataset is never mixed with or overwritten by its twin.
    """
    _check_name(name)
    return data_dir() / (f"{name}-twin" if synthetic else name)


def _check_name(name: str) -> None:
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")


def esc50_datafiles(root: Path, fold: int) -> tuple[Path, Path]:
    """(train, eval) datafiles of one ESC-50 fold."""
    if fold not in ESC50_FOLDS:
        raise ValueError(f"ESC-50 fold must be one of {ESC50_FOLDS}, got {fold}")
    folder = root / DATAFILES_DIR
    return folder / f"esc_train_data_{fold}.json", folder / f"esc_eval_data_{fold}.json"


def prepared_paths(
    name: str,
    root: str | os.PathLike[str] | None = None,
    *,
    fold: int = 1,
    synthetic: bool = False,
) -> dict[str, Path]:
    """Paths of a prepared dataset's datafiles and label csv.

    Args:
        name: "esc50", "speechcommands" or "audioset".
        root: dataset root; default `data/<name>`.
        fold: ESC-50 only, the held-out fold 1..5.
        synthetic: with no `root`, use the twin's default root.

    Returns:
        Keys "train", "valid", "eval", "labels"; AudioSet adds "train_weights" and, when
        the full training set was prepared, "train_full" and "train_full_weights".
        As in the original recipes, ESC-50 validates on its held-out fold and AudioSet on
        its eval set, so "valid" equals "eval" there. Paths are returned whether or not
        they exist yet.
    """
    _check_name(name)
    base = Path(root) if root is not None else default_root(name, synthetic=synthetic)
    folder = base / DATAFILES_DIR
    if name == "esc50":
        train, held_out = esc50_datafiles(base, fold)
        return {
            "train": train,
            "valid": held_out,
            "eval": held_out,
            "labels": folder / ESC50_LABEL_CSV,
        }
    if name == "speechcommands":
        return {
            "train": folder / "speechcommand_train_data.json",
            "valid": folder / "speechcommand_valid_data.json",
            "eval": folder / "speechcommand_eval_data.json",
            "labels": folder / SPEECHCOMMANDS_LABEL_CSV,
        }
    paths = {
        "train": folder / "balanced_train_data.json",
        "valid": folder / "eval_data.json",
        "eval": folder / "eval_data.json",
        "labels": folder / AUDIOSET_LABEL_CSV,
        "train_weights": folder / "balanced_train_data_weight.csv",
    }
    full = folder / "full_train_data.json"
    if full.exists():
        paths["train_full"] = full
        paths["train_full_weights"] = folder / "full_train_data_weight.csv"
    return paths
