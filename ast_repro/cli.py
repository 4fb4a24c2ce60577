"""The `ast-repro` console script.

Every sub-command lives in the module that does the work: that module exposes
`add_arguments(parser)` and `run(args) -> int`. The Makefile and data_scripts/ go
through this same entry point, so there is one code path per task.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). Adding a command is one line here plus the two
# functions in its module.
COMMANDS: dict[str, tuple[str, str]] = {
    "norm-stats": ("ast_repro.normstats", "mean and std of log-mel features of a datafile"),
    "data": ("ast_repro.datasets.cli", "download (or synthesize) and prepare a dataset"),
    "validate-data": ("ast_repro.datasets.validate", "check a json datafile before training"),
    "bench": ("ast_repro.bench", "feature-extraction speed against torchaudio and transformers"),
    "bench-model": ("ast_repro.bench_model", "model speed against transformers' AST"),
    "notebooks": ("ast_repro.notebooks", "run, store, clean or check the numbered notebooks"),
    "ensemble": ("ast_repro.ensemble", "average predictions of runs or weights of checkpoints"),
    "train": ("ast_repro.crossval", "train a recipe (torchrun for several GPUs), or resume it"),
    "grid": ("ast_repro.experiments", "train a grid of variants x seeds, reusing finished runs"),
    "evaluate": ("ast_repro.evaluate", "score a training checkpoint on a datafile"),
    "predict": ("ast_repro.predict", "top-k labels of audio files from a training checkpoint"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command`'s module is imported (every one when None), so a run of
    one command (and each torchrun process) does not pay for importing all the others."""
    parser = argparse.ArgumentParser(
        prog="ast-repro",
        description="Reproduce the Audio Spectrogram Transformer (Gong et al., 2021).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if command in (None, name):
            module = importlib.import_module(module_name)
            module.add_arguments(command_parser)
            command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((arg for arg in argv if arg in COMMANDS), None)
    args = build_parser(command or "").parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
