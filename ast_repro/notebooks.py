"""Running and keeping the numbered notebooks (`ast-repro notebooks ...`, `make notebooks`).

Notebooks are stored clean: no execution counts, no outputs, except in cells tagged
`nbval-check-output`, whose stored outputs nbval compares with a fresh run. Those cells
print rounded, seeded numbers only. `store` refreshes them from a papermill run in the
smoke profile; `check` fails when a notebook is not clean.
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import nbformat

from ast_repro.cli import int_at_least
from ast_repro.errors import AstReproError, RunFailed
from ast_repro.results import COMMAND_ENV, repo_root, results_dir

KERNEL_NAME = "ast-repro"
CHECK_TAG = "nbval-check-output"
PARAMETERS_TAG = "parameters"
# Keys of cell metadata that carry meaning here; everything else is editor state.
KEPT_CELL_METADATA = ("tags",)
KEPT_NOTEBOOK_METADATA = ("kernelspec", "language_info")


class NotebookError(AstReproError, ValueError):
    """A notebook is missing or not in the stored form; the message names it."""


class NotebookFailed(RunFailed):
    """A cell raised while the notebook ran; the message names the cell and the error."""


def notebooks_dir() -> Path:
    root = repo_root()
    if root is None:
        raise NotebookError("the notebooks live in the ast-repro checkout; none was found")
    return root / "notebooks"


def list_notebooks() -> list[Path]:
    """The numbered notebooks, in order."""
    return sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))


def resolve(name: str) -> Path:
    """A notebook by file name, stem or number prefix ("01", "01_norm_stats")."""
    for path in list_notebooks():
        if name in (path.name, path.stem) or path.stem.split("_", 1)[0] == name:
            return path
    known = ", ".join(p.stem for p in list_notebooks())
    raise NotebookError(f"no notebook {name!r} in {notebooks_dir()} (have: {known})")


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of `nb` with outputs kept only in check cells, and no editor or run state."""
    nb = copy.deepcopy(nb)
    nb.metadata = nbformat.from_dict(
        {k: v for k, v in nb.metadata.items() if k in KEPT_NOTEBOOK_METADATA}
    )
    nb.metadata.kernelspec = {
        "name": KERNEL_NAME,
        "display_name": "Python (ast-repro)",
        "language": "python",
    }
    kept_cells = []
    code_cells = 0
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags or "papermill-error-cell-tag" in tags:
            continue
        cell.metadata = nbformat.from_dict(
            {k: v for k, v in cell.metadata.items() if k in KEPT_CELL_METADATA}
        )
        cell.pop("id", None)
        if cell.cell_type == "code":
            code_cells += 1
            # nbval refuses stored outputs without an execution count; number code cells
            # in order so the stored notebook does not change from run to run.
            cell.execution_count = code_cells if CHECK_TAG in tags else None
            if CHECK_TAG in tags:
                for output in cell.outputs:
                    output.pop("execution_count", None)
                    output["metadata"] = {}
            else:
                cell.outputs = []
        kept_cells.append(cell)
    nb.cells = kept_cells
    nb.nbformat, nb.nbformat_minor = 4, 4
    return nb


def is_clean(path: Path) -> bool:
    nb = nbformat.read(path, as_version=4)
    return nbformat.writes(clean(nb)) == nbformat.writes(nb)


def parameters_of(path: Path) -> dict[str, Any]:
    """The stored values of a notebook's `parameters` cell (flat literals only)."""
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if PARAMETERS_TAG in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise NotebookError(f"{path}: needs exactly one cell tagged {PARAMETERS_TAG!r}")
    values: dict[str, Any] = {}
    for node in ast.parse(cells[0].source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            raise NotebookError(f"{path}: the parameters cell may hold only `name = literal` lines")
        target = node.targets[0]
        if not isinstance(target, ast.Name):
            raise NotebookError(f"{path}: the parameters cell may hold only `name = literal` lines")
        try:
            values[target.id] = ast.literal_eval(node.value)
        except ValueError:
            raise NotebookError(f"{path}: parameter {target.id!r} is not a flat literal") from None
    return values


def execute(
    path: Path,
    *,
    parameters: dict[str, Any] | None = None,
    output_dir: Path | None = None,
    timeout_s: int | None = None,
    kernel_name: str = KERNEL_NAME,
    command: str | None = None,
) -> Path:
    """Run one notebook with papermill in its own folder; returns the executed copy's path.

    Args:
        command: the command line that runs this notebook, recorded as the `command` of every
            metrics.json the notebook writes (`ast_repro.results.command_line`); default
            `ast-repro notebooks run <stem>` with the parameters.

    Raises:
        NotebookFailed: a cell raised; the message names the cell, the error and the
            executed copy, which holds the traceback.
    """
    import papermill

    parameters = dict(parameters or {})
    profile = parameters.get("profile", parameters_of(path).get("profile", "smoke"))
    output_dir = output_dir or results_dir() / "notebooks" / str(profile)
    output_dir.mkdir(parents=True, exist_ok=True)
    output = output_dir / path.name
    if command is None:
        command = notebook_command("run", path, parameters)
    # The kernel inherits this process's environment.
    previous = os.environ.get(COMMAND_ENV)
    os.environ[COMMAND_ENV] = command
    try:
        papermill.execute_notebook(
            str(path),
            str(output),
            parameters=parameters,
            kernel_name=kernel_name,
            cwd=str(path.parent),
            progress_bar=False,
            log_output=False,
            execution_timeout=timeout_s,
        )
    except papermill.PapermillExecutionError as exc:
        raise NotebookFailed(
            f"{path.name}: cell {exc.exec_count} raised {exc.ename}: {exc.evalue} "
            f"(the traceback is in {output})"
        ) from None
    finally:
        if previous is None:
            del os.environ[COMMAND_ENV]
        else:
            os.environ[COMMAND_ENV] = previous
    return output


def notebook_command(action: str, path: Path, parameters: dict[str, Any] | None = None) -> str:
    """The `ast-repro notebooks` command line that runs one notebook with `parameters`."""
    words = ["ast-repro", "notebooks", action, path.stem]
    for name, value in (parameters or {}).items():
        words += ["-p", name, shlex.quote(str(value))]
    return " ".join(words)


def store(path: Path, executed: Path) -> None:
    """Copy the outputs of check cells from an executed notebook into the clean source."""
    source = nbformat.read(path, as_version=4)
    ran = [
        cell
        for cell in nbformat.read(executed, as_version=4).cells
        if "injected-parameters" not in cell.metadata.get("tags", [])
    ]
    if len(ran) != len(source.cells):
        raise NotebookError(f"{executed} does not match {path} cell for cell")
    for cell, done in zip(source.cells, ran, strict=True):
        if cell.cell_type == "code" and CHECK_TAG in cell.metadata.get("tags", []):
            cell.outputs = done.outputs
    nbformat.write(clean(source), path)


def _typed(value: str) -> Any:
    """papermill's -p typing: True/False/None, int, float, else the string itself.

    A comma list such as "0,1,2" (seeds, variants) stays a string, as the notebooks'
    parameters cells expect, not the tuple Python would read.
    """
    try:
        typed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value
    return typed if typed is None or isinstance(typed, (bool, int, float)) else value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("run", "store", "clean", "check", "list"))
    parser.add_argument("names", nargs="*", help="notebooks (default: all, in order)")
    parser.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE")
    )
    parser.add_argument("--timeout", type=int_at_least(1), default=3600, help="seconds per cell")


def run(args: argparse.Namespace) -> int:
    paths = [resolve(n) for n in args.names] if args.names else list_notebooks()
    if args.action == "list":
        for path in paths:
            print(path.stem)
        return 0
    if args.action in ("clean", "check"):
        dirty = [p for p in paths if not is_clean(p)]
        if args.action == "clean":
            for path in dirty:
                nbformat.write(clean(nbformat.read(path, as_version=4)), path)
                print(f"cleaned {path.name}")
            return 0
        for path in dirty:
            print(f"{path}: not clean (run `ast-repro notebooks clean`)", file=sys.stderr)
        return 1 if dirty else 0
    parameters = {name: _typed(value) for name, value in args.parameter}
    if args.action == "store" and parameters:
        raise NotebookError("store keeps the outputs of the stored (smoke) parameters; pass none")
    for path in paths:
        start = time.perf_counter()
        executed = execute(
            path,
            parameters=parameters,
            timeout_s=args.timeout,
            command=notebook_command(args.action, path, parameters),
        )
        print(f"{path.stem}: {time.perf_counter() - start:.0f} s -> {executed}", flush=True)
        if args.action == "store":
            store(path, executed)
    return 0
