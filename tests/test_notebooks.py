"""The notebooks are stored clean, parameterized the same way, and hold no code of their own."""

from __future__ import annotations

import ast

import nbformat
import pytest

from ast_repro.notebooks import CHECK_TAG, clean, is_clean, list_notebooks, parameters_of

NOTEBOOKS = list_notebooks()
# The numbered notebooks of the design, in order (README's table).
DESIGN_NOTEBOOKS = [
    "00_data_download",
    "01_norm_stats",
    "02_imagenet_init",
    "03_patch_overlap",
    "04_augmentation",
    "05_ensembling",
    "99_report",
]


def test_the_numbered_notebooks_are_those_of_the_design() -> None:
    assert [p.stem for p in NOTEBOOKS] == DESIGN_NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean(path) -> None:
    assert is_clean(path), f"{path.name}: run `make format` (ast-repro notebooks clean)"
    nbformat.validate(nbformat.read(path, as_version=4))  # the schema Jupyter checks


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_are_flat_and_smoke(path) -> None:
    params = parameters_of(path)
    assert params["profile"] == "smoke"
    assert all(isinstance(v, (str, int, float, bool)) for v in params.values()), params


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_check_cells_hold_outputs_and_code_cells_define_nothing(path) -> None:
    nb = nbformat.read(path, as_version=4)
    checked = [c for c in nb.cells if CHECK_TAG in c.metadata.get("tags", [])]
    assert checked, f"{path.name}: no cell for nbval to compare"
    for cell in checked:
        assert cell.outputs, (
            f"{path.name}: a check cell has no stored output (make store-notebooks)"
        )
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            assert not isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Lambda)), (
                f"{path.name}: helpers belong in the library, not in a notebook"
            )


def test_clean_strips_run_state_but_keeps_check_outputs() -> None:
    nb = nbformat.v4.new_notebook()
    plain = nbformat.v4.new_code_cell("print(1)", execution_count=7)
    plain.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    checked = nbformat.v4.new_code_cell("print(2)", execution_count=9)
    checked.metadata["tags"] = [CHECK_TAG]
    checked.metadata["collapsed"] = True
    checked.outputs = [nbformat.v4.new_output("stream", text="2\n")]
    injected = nbformat.v4.new_code_cell("x = 1")
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells = [plain, injected, checked]
    nb.metadata["papermill"] = {"duration": 3.0}
    out = clean(nb)
    assert [c.source for c in out.cells] == ["print(1)", "print(2)"]
    assert out.cells[0].outputs == [] and out.cells[0].execution_count is None
    assert out.cells[1].outputs[0]["text"] == "2\n" and out.cells[1].execution_count == 2
    assert out.cells[1].metadata == {"tags": [CHECK_TAG]}
    assert "papermill" not in out.metadata and out.metadata.kernelspec.name == "ast-repro"
    assert nbformat.writes(clean(out)) == nbformat.writes(out)  # idempotent


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_cell_after_the_parameters_checks_them(path) -> None:
    cells = nbformat.read(path, as_version=4).cells
    i = next(k for k, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    assert f'check_namespace(globals(), "{path.stem}")' in cells[i + 1].source


def test_check_namespace_refuses_unknown_names_and_wrong_types() -> None:
    from ast_repro.notebooks import NotebookError, check_namespace, declared_parameters, resolve

    declared = declared_parameters(resolve("01_norm_stats"))
    kernel = {"In": [], "Out": {}, "_i1": "", "get_ipython": print, "pytest": pytest}
    check_namespace({**kernel, **declared}, "01_norm_stats")  # as stored
    check_namespace({**declared, "limit": 8}, "01_norm_stats")
    with pytest.raises(NotebookError, match="'target_lenght' is not one of 01_norm_stats's; "
                                            "did you mean target_length"):  # fmt: skip
        check_namespace({**declared, "target_lenght": 128}, "01_norm_stats")
    with pytest.raises(
        NotebookError, match="limit='eight': 01_norm_stats's parameter limit is an int"
    ):
        check_namespace({**declared, "limit": "eight"}, "01_norm_stats")
    with pytest.raises(NotebookError, match="is a bool"):
        check_namespace({**declared, "synthetic": 1}, "01_norm_stats")


def test_papermill_with_a_misspelled_parameter_stops_at_the_check(tmp_path) -> None:
    import papermill

    from ast_repro.notebooks import KERNEL_NAME, resolve

    with pytest.raises(papermill.PapermillExecutionError, match="did you mean target_length"):
        papermill.execute_notebook(
            str(resolve("01_norm_stats")),
            str(tmp_path / "out.ipynb"),
            parameters={"target_lenght": 128},
            kernel_name=KERNEL_NAME,
            progress_bar=False,
        )
