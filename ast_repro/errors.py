"""The package's error types and the one exit-code policy of the `ast-repro` command.

Every error a user can act on derives from `AstReproError`: its message is one line that
names the file or key, the problem and what to do. The command line prints that line on
stderr and exits with the error's `exit_code`: 2 for bad input (a file, a key, a value or
the machine is not what the command needs), 3 for a run that started and failed (a training
run that diverged, a download that broke off). Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 3


class AstReproError(Exception):
    """Bad input: the message says which file or key, what is wrong and what to do."""

    exit_code: int = EXIT_BAD_INPUT


class RunFailed(AstReproError):
    """A run that started on good input and could not finish (divergence, lost connection)."""

    exit_code: int = EXIT_RUN_FAILED


def error_line(command: str, error: AstReproError) -> str:
    """The one line printed on stderr for `error` raised by sub-command `command`.

    Args:
        command: the sub-command's name, e.g. "train".
        error: the error raised.

    Returns:
        "ast-repro COMMAND: error: MESSAGE", with the message folded onto one line.
    """
    message = " ".join(str(error).split()) or type(error).__name__
    return f"ast-repro {command}: error: {message}"
