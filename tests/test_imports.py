"""The package's import graph: no cycle, and preparation and training apart.

Every module of `ast_repro` is parsed with `ast`; every `import` counts, at module level or
inside a function (a lazy import still ties the two modules together). Relative imports are
resolved against the importing module's package. `from pkg import name` is an edge to
`pkg.name` when that is a module of the package, else to `pkg`. Importing a submodule also
runs its parent packages' `__init__`, but that is not counted as an edge of the importer:
it would make every package that re-exports its submodules a cycle.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

import ast_repro

PACKAGE = "ast_repro"
PREPARATION = "ast_repro.datasets"
# Modules that preparation and training share: file formats, paths, seeds, sampling weights,
# errors. They import only one another, so preparation reaches no training code through them.
SHARED = frozenset(
    {
        "ast_repro",
        "ast_repro.audio",
        # what a clip and a datafile must satisfy, for validate-data and every command alike
        "ast_repro.checks",
        # the command layer: argument types and the error policy every command shares
        "ast_repro.cli",
        "ast_repro.datafiles",
        "ast_repro.errors",
        # the Kaldi frame geometry, which audio checks clip lengths against
        "ast_repro.features",
        "ast_repro.fileio",
        "ast_repro.layout",
        "ast_repro.results",
        # the process's rank and device, which the command layer reports errors from
        "ast_repro.runtime",
        "ast_repro.sampling",
        "ast_repro.seeding",
    }
)
# (importer, imported) pairs across the preparation/training boundary that are allowed, each
# with the reason. None: the command line reaches `ast_repro.datasets.cli` and
# `ast_repro.datasets.validate` by name (`ast_repro.cli.COMMANDS`, `importlib`), and the
# notebooks import `ast_repro.datasets` themselves.
ALLOWED_CROSSINGS: frozenset[tuple[str, str]] = frozenset()


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Module name -> file of every module under the package folder `root`."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join((package, *parts))] = path
    return modules


def imported_modules(
    source: str, module: str, *, is_package: bool, known: frozenset[str] | set[str]
) -> set[str]:
    """Modules of `known` that `source` (the text of `module`) imports anywhere in its body.

    Args:
        source: Python source text.
        module: its dotted name, to resolve relative imports.
        is_package: whether `source` is a package's `__init__` (relative imports then start
            from the package itself, not its parent).
        known: the dotted names of the package's modules; other imports are ignored.
    """
    own_package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = own_package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            candidates = []
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                candidates.append(submodule if submodule in known else base)
        else:
            continue
        for name in candidates:
            # `import a.b.c` runs a.b.c; keep the longest prefix that is a known module
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports, for every module of `ast_repro`."""
    files = module_files(Path(ast_repro.__file__).parent, PACKAGE)
    known = set(files)
    return {
        name: imported_modules(
            path.read_text(encoding="utf-8"),
            name,
            is_package=path.name == "__init__.py",
            known=known,
        )
        for name, path in files.items()
    }


def _in_preparation(module: str) -> bool:
    return module == PREPARATION or module.startswith(PREPARATION + ".")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_walk_sees_the_whole_package(graph: dict[str, set[str]]) -> None:
    assert {"ast_repro.train", "ast_repro.datasets.cli", "ast_repro.datasets.synth.esc50"} <= set(
        graph
    )
    assert SHARED <= set(graph), sorted(SHARED - set(graph))


def test_imports_are_resolved_as_python_does() -> None:
    known = {"p", "p.a", "p.b", "p.sub", "p.sub.c", "p.sub.d"}
    source = (
        "import os\n"
        "from . import a\n"
        "from .sub import c, NAME\n"
        "from p.sub.d import thing\n"
        "def f():\n"
        "    import p.b\n"
    )
    assert imported_modules(source, "p.x", is_package=False, known=known) == {
        "p.a",
        "p.sub",
        "p.sub.c",
        "p.sub.d",
        "p.b",
    }
    package = imported_modules(
        "from .. import b\nfrom . import d\n", "p.sub", is_package=True, known=known
    )
    assert package == {"p.b", "p.sub.d"}
    nested = imported_modules("from ..a import x\n", "p.sub.c", is_package=False, known=known)
    assert nested == {"p.a"}


def test_no_import_cycle(graph: dict[str, set[str]]) -> None:
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
        pytest.fail("import cycle: " + " -> ".join(reversed(cycle)))


def test_preparation_imports_no_training_code(graph: dict[str, set[str]]) -> None:
    offending = sorted(
        (module, imported)
        for module, imports in graph.items()
        if _in_preparation(module)
        for imported in imports
        if not _in_preparation(imported)
        and imported not in SHARED
        and (module, imported) not in ALLOWED_CROSSINGS
    )
    assert not offending, "preparation imports training code (not in SHARED): " + ", ".join(
        f"{module} -> {imported}" for module, imported in offending
    )


def test_training_code_imports_no_preparation(graph: dict[str, set[str]]) -> None:
    offending = sorted(
        (module, imported)
        for module, imports in graph.items()
        if not _in_preparation(module)
        for imported in imports
        if _in_preparation(imported) and (module, imported) not in ALLOWED_CROSSINGS
    )
    assert not offending, "a module outside ast_repro.datasets imports it: " + ", ".join(
        f"{module} -> {imported}" for module, imported in offending
    )


def test_shared_modules_import_only_shared_modules(graph: dict[str, set[str]]) -> None:
    offending = sorted(
        (module, imported)
        for module in SHARED
        for imported in graph.get(module, ())
        if imported not in SHARED
    )
    assert not offending, "a shared module imports beyond SHARED: " + ", ".join(
        f"{module} -> {imported}" for module, imported in offending
    )
