"""The `ast-repro` console script.

Every sub-command lives in the module that does the work: that module exposes
`add_arguments(parser)` and `run(args) -> int`. The Makefile, data_scripts/ and each
`torchrun` process go through this same entry point, so there is one code path per task.

The commands raise; only `main` reports. An `ast_repro.errors.AstReproError` becomes one line
on stderr and its exit code (2 bad input, 3 run failed), Ctrl-C one line and 130; any other
exception is a bug and keeps its traceback. A command's own status (`validate-data` and
`notebooks check` exit 1 when they find problems) is its `run`'s return value.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import NoReturn

from ast_repro.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, AstReproError, error_line

# name -> (module, one-line help). Adding a command is one line here plus the two
# functions in its module.
COMMANDS: dict[str, tuple[str, str]] = {
    "norm-stats": ("ast_repro.normstats", "mean and std of log-mel features of a datafile"),
    "data": ("ast_repro.datasets.cli", "download (or synthesize) and prepare a dataset"),
    "validate-data": ("ast_repro.datasets.validate", "check a json datafile before training"),
    "bench": ("ast_repro.bench", "feature-extraction speed against torchaudio and transformers"),
    "bench-model": ("ast_repro.bench_model", "model speed against transformers' AST"),
    "bench-loader": ("ast_repro.bench_loader", "clips per second one loader worker delivers"),
    "gpu-report": ("ast_repro.gpu_report", "helpers and summary of benchmarks/gpu.sh"),
    "notebooks": ("ast_repro.notebooks", "run, store, clean or check the numbered notebooks"),
    "ensemble": ("ast_repro.ensemble", "average predictions of runs or weights of checkpoints"),
    "train": ("ast_repro.crossval", "train a recipe (torchrun for several GPUs), or resume it"),
    "grid": ("ast_repro.experiments", "train a grid of variants x seeds, reusing finished runs"),
    "evaluate": ("ast_repro.evaluate", "score a training checkpoint on a datafile"),
    "predict": ("ast_repro.predict", "top-k labels of audio files from a training checkpoint"),
    "report": ("ast_repro.report", "the paper-vs-reproduced report from every run's metrics.json"),
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error like any other bad input: one line, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least `low` (a count 1, a number of workers 0).

    A value outside the range is a usage error, reported in one line with exit status 2.
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command`'s module is imported (every one when None), so a run of
    one command (and each torchrun process) does not pay for importing all the others."""
    parser = _Parser(
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
    """Run one sub-command and return its exit status.

    Args:
        argv: the arguments after `ast-repro` (default: `sys.argv[1:]`).

    Returns:
        The command's status (0 on success), an `AstReproError`'s `exit_code` (2 bad input,
        3 run failed) after printing its one line on stderr, or 130 after Ctrl-C. A usage
        error exits 2 through argparse.
    """
    argv = sys.argv[1:] if argv is None else argv
    command = next((arg for arg in argv if arg in COMMANDS), None)
    args = build_parser(command or "").parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except AstReproError as error:
        line = _report_line(args.command, error)
        if line is not None:
            print(line, file=sys.stderr, flush=True)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"ast-repro {args.command}: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED


def _report_line(command: str, error: AstReproError) -> str | None:
    """The line this process prints for `error`, or None.

    Under torchrun, every rank reads the same config and files before it joins the process
    group and meets the same bad input there: rank 0 alone reports it. An error after that
    may be one rank's own (a clip of its share of the data), so each rank reports it, once,
    naming itself.
    """
    from ast_repro.runtime import joined_group, launch_rank

    line = error_line(command, error)
    rank, world_size = launch_rank()
    if rank == 0 or world_size < 2:
        return line
    return f"[rank {rank}] {line}" if joined_group() else None


if __name__ == "__main__":
    sys.exit(main())
