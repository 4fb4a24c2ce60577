"""The package's error types and the one exit-code policy of the `ast-repro` command.

Every error a user can act on derives from `AstReproError`: its message is one line that
names the file or key, the problem and what to do. Each module keeps its own subclass where
callers need to tell them apart (`ConfigError`, `DatafileError`, `CheckpointError`, ...), and
each subclass keeps the builtin base it had (ValueError, FileNotFoundError, RuntimeError), so
`except ValueError` in callers still works.

`ast_repro.cli.main` is the only place that turns these errors into output: it prints
`error_line(...)` on stderr and exits with the error's `exit_code`: 2 for bad input (a file,
a key, a value or the machine is not what the command needs), 3 for a run that started and
failed (a training run that diverged, a download that broke off). Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C

# How torch.utils.data re-raises an error of a DataLoader worker: the worker's formatted
# traceback follows this line, and its last line is "module.ErrorClass: message".
_WORKER_TRACEBACK = "Original Traceback (most recent call last):"


class AstReproError(Exception):
    """Bad input: the message says which file or key, what is wrong and what to do."""

    exit_code: int = EXIT_BAD_INPUT


class RunFailed(AstReproError):
    """A run that started on good input and could not finish (divergence, lost connection)."""

    exit_code: int = EXIT_RUN_FAILED


def error_message(error: AstReproError) -> str:
    """The error's message on one line.

    An error raised in a DataLoader worker reaches the main process with the worker's whole
    traceback as its message; only the original message (its last line) is kept.
    """
    text = str(error)
    if _WORKER_TRACEBACK in text:
        last = text.strip().splitlines()[-1]
        name, _, message = last.partition(": ")
        text = message if name.rpartition(".")[2] == type(error).__name__ else last
    return " ".join(text.split()) or type(error).__name__


def error_line(command: str, error: AstReproError) -> str:
    """The one line printed on stderr for `error` raised by sub-command `command`.

    Args:
        command: the sub-command's name, e.g. "train".
        error: the error raised.

    Returns:
        "ast-repro COMMAND: error: MESSAGE", with the message folded onto one line.
    """
    return f"ast-repro {command}: error: {error_message(error)}"
