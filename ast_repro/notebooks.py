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
import difflib
import os
import shlex
import sys
import time
from pathlib import Path
from types import ModuleType
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
                    # the fields nbformat's schema allows each output type, run state emptied
                    if output.output_type == "execute_result":
                        output["execution_count"] = cell.execution_count
                    if output.output_type in ("execute_result", "display_data"):
                        output["metadata"] = {}
                    else:
                        output.pop("metadata", None)
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


def declared_parameters(path: Path) -> dict[str, Any]:
    """A notebook's parameters and their stored values, as papermill sees its `parameters`
    cell (`papermill.inspect_notebook`); each value's type is the parameter's type."""
    import papermill

    declared = papermill.inspect_notebook(str(path))
    values = {}
    for name, spec in declared.items():
        try:
            values[name] = ast.literal_eval(spec["default"])
        except (ValueError, SyntaxError):
            raise NotebookError(f"{path}: parameter {name!r} is not a flat literal") from None
    return values


def _as_type(text: str, default: Any) -> Any:
    """`text` as a value of `default`'s type; ValueError when it is not one."""
    if isinstance(default, bool):
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise ValueError
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    if isinstance(default, str):
        return text
    return ast.literal_eval(text)  # a None default: papermill's own typing


_TYPE_NAMES = {bool: "a bool (true/false)", int: "an int", float: "a float", str: "a string"}


def check_parameters(paths: list[Path], given: list[tuple[str, str]]) -> dict[Path, dict[str, Any]]:
    """The typed parameters each notebook gets from `-p NAME VALUE` pairs.

    papermill injects any name, so a misspelled one silently leaves the default in place,
    and passes `-p limit eight` on as a string that fails deep inside the library. Here a
    name must be declared by at least one of the notebooks run (each gets the ones it
    declares), and a value must parse as the type of that notebook's stored value.

    Raises:
        NotebookError: naming the parameter, the notebooks and the expected type.
    """
    declared = {path: declared_parameters(path) for path in paths}
    known = sorted({name for values in declared.values() for name in values})
    typed: dict[Path, dict[str, Any]] = {path: {} for path in paths}
    stems = ", ".join(path.stem for path in paths)
    for name, text in given:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise NotebookError(
                f"-p {name}: no parameter of that name in {stems}{hint} (known: {', '.join(known)})"
            )
        for path, values in declared.items():
            if name not in values:
                continue
            try:
                typed[path][name] = _as_type(text, values[name])
            except (ValueError, SyntaxError):
                kind = _TYPE_NAMES.get(type(values[name]), type(values[name]).__name__)
                raise NotebookError(
                    f"-p {name} {text!r}: {path.stem}'s parameter {name} is {kind} "
                    f"(stored value {values[name]!r})"
                ) from None
    return typed


# Names IPython itself puts in a kernel's namespace (besides `_`-prefixed ones and modules).
_KERNEL_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open", "check_namespace"})


def check_namespace(namespace: dict[str, Any], notebook: str) -> None:
    """Refuse, inside a running notebook, a parameter papermill injected but it does not declare.

    Called in the cell after the `parameters` cell, before anything else is defined, so
    every name in the kernel's namespace is either IPython's or a parameter. papermill
    itself injects any `-p NAME VALUE` without a word: `-p target_lenght 128` would leave the
    default in place, and `-p limit eight` would fail deep inside the library.

    Args:
        namespace: the notebook's `globals()`.
        notebook: its name, e.g. "02_imagenet_init" (its stored parameters cell is the
            reference for names and types).

    Raises:
        NotebookError: naming the unknown parameter (with close matches) or the parameter
            whose value has the wrong type.
    """
    declared = declared_parameters(resolve(notebook))
    for name, value in namespace.items():
        if name.startswith("_") or name in _KERNEL_NAMES or isinstance(value, ModuleType):
            continue
        if name not in declared:
            close = difflib.get_close_matches(name, list(declared), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise NotebookError(
                f"parameter {name!r} is not one of {notebook}'s{hint} "
                f"(known: {', '.join(declared)})"
            )
        default = declared[name]
        if default is None or _fits(value, default):
            continue
        kind = _TYPE_NAMES.get(type(default), type(default).__name__)
        raise NotebookError(
            f"parameter {name}={value!r}: {notebook}'s parameter {name} is {kind} "
            f"(stored value {default!r})"
        )


def _fits(value: Any, default: Any) -> bool:
    """Whether an injected value can stand for a parameter with this stored value."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, (int, float)):
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and (isinstance(default, float) or isinstance(value, int))
        )
    if isinstance(default, str):
        # comma lists such as seeds: papermill passes "-p seeds 1" as the int 1
        return isinstance(value, str | int)
    return isinstance(value, type(default))


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
    if args.action == "store" and args.parameter:
        raise NotebookError("store keeps the outputs of the stored (smoke) parameters; pass none")
    # every name and value is checked before the first notebook starts
    parameters = check_parameters(paths, [tuple(pair) for pair in args.parameter])
    for path in paths:
        start = time.perf_counter()
        executed = execute(
            path,
            parameters=parameters[path],
            timeout_s=args.timeout,
            command=notebook_command(args.action, path, parameters[path]),
        )
        print(f"{path.stem}: {time.perf_counter() - start:.0f} s -> {executed}", flush=True)
        if args.action == "store":
            store(path, executed)
    return 0
