"""The paper-vs-reproduced report: paper numbers, the run each shows, report.md, the README."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from ast_repro.cli import main
from ast_repro.report import (
    NOT_RUN,
    README_BEGIN,
    README_END,
    markdown_tables,
    paper_cell,
    publish,
    readme_block,
    readme_section,
    update_readme,
    write_report,
)
from ast_repro.reproduced import (
    PaperNumber,
    ReportError,
    build_report,
    data_kind,
    paper_numbers,
    reproductions,
)
from ast_repro.results import paper_reference, paper_value, repo_root, reproduced_row

REFERENCE = paper_reference()
README = repo_root() / "README.md"


def record(run: str, rows: list[dict], *, profile: str = "paper", synthetic: bool = False,
           date: str = "2026-01-01T00:00:00+00:00",
           stage: str = "03_patch_overlap") -> dict:  # fmt: skip
    """A metrics.json as write_metrics stores it, holding `rows` under metrics["reproduced"]."""
    return {"stage": stage, "run": run, "profile": profile, "config": {"synthetic": synthetic},
            "metrics": {"reproduced": rows}, "seed": 0, "git_commit": "0123456789abcdef+dirty",
            "device": "cuda: H100 x1", "command": f"ast-repro notebooks run {stage}",
            "date": date}  # fmt: skip


def row(ref: str, value: float | None, *, metric: str = "mAP",
        dataset: str = "audioset_balanced") -> dict:  # fmt: skip
    return reproduced_row(ref, value, metric=metric, dataset=dataset, variant="v", seeds=[0, 1],
                          reference=REFERENCE)  # fmt: skip


STRIDE10 = "patch_overlap.rows.10.balanced"  # 0.347 in the paper


def test_paper_numbers_are_every_ast_number_of_the_reference() -> None:
    numbers = paper_numbers(REFERENCE)
    # headline 11 (Tables 1, 7 and the text), Table 2: 4, 3: 4, 4: 3, 5: 8, 6: 4 (2 cells empty)
    assert len(numbers) == 34
    assert len({n.ref for n in numbers}) == 34
    assert [n.table for n in numbers] == sorted(
        (n.table for n in numbers), key=("1", "2", "3", "4", "5", "6", "7", "text").index
    )
    for number in numbers:  # every number is the reference's, at its own key
        assert paper_value(REFERENCE, number.ref) == number.value, number.ref
        assert number.metric in ("mAP", "accuracy") and number.dataset in (
            "audioset_balanced", "audioset_full", "esc50", "speechcommands"
        ), number  # fmt: skip
    by_ref = {n.ref: n for n in numbers}
    assert by_ref["headline.speechcommands_accuracy_ast_s"].pm == 0.0005
    assert by_ref["patch_shape.rows.square16.imagenet"].value == 0.336
    assert "patch_shape.rows.square32.imagenet" not in by_ref  # the paper's "-"
    assert by_ref["imagenet_pretraining.rows.none.full"].dataset == "audioset_full"
    others = paper_numbers(REFERENCE, baselines=True)
    assert len(others) == 13 and {n.table for n in others} == {"1", "7"}
    assert not {n.ref for n in others} & set(by_ref)


def test_a_section_without_its_measure_or_columns_is_refused() -> None:
    broken = copy.deepcopy(REFERENCE)
    del broken["positional_embedding"]["measure"]
    with pytest.raises(ReportError, match="positional_embedding has number rows but no measure"):
        paper_numbers(broken)
    broken = copy.deepcopy(REFERENCE)
    del broken["patch_overlap"]["columns"]
    with pytest.raises(ReportError, match="patch_overlap has rows of fields but no columns"):
        paper_numbers(broken)
    broken = copy.deepcopy(REFERENCE)
    del broken["headline"]["esc50_accuracy_ast_s"]["dataset"]
    with pytest.raises(ReportError, match="esc50_accuracy_ast_s has no 'dataset'"):
        paper_numbers(broken)


def test_paper_cells_keep_the_papers_precision() -> None:
    number = PaperNumber("x", "1", "x", 0.459, 0.0, "mAP", "audioset_full")
    assert paper_cell(number) == "0.459 ± 0.000"
    assert paper_cell(PaperNumber("x", "7", "x", 0.9811, 0.0005, "accuracy", "sc")) == (
        "0.9811 ± 0.0005"
    )
    assert paper_cell(PaperNumber("x", "4", "x", 0.32, None, "mAP", "b")) == "0.320"


def test_data_kind_reads_the_config_then_the_run_name() -> None:
    assert data_kind({"config": {"synthetic": True}, "run": "paper-audioset"}) == "twin"
    assert data_kind({"config": {}, "run": "smoke-esc50-twin"}) == "twin"
    assert data_kind({"config": {"synthetic": False}, "run": "paper-audioset"}) == "real"
    assert data_kind({"config": {}, "run": "paper-audioset"}) == "unknown"


def test_each_number_shows_the_comparable_then_paper_then_newest_run() -> None:
    records = [
        record("smoke-audioset-twin", [row(STRIDE10, 0.30)], profile="smoke", synthetic=True,
               date="2026-09-01T00:00:00+00:00"),  # newest, but smoke
        record("paper-audioset-old", [row(STRIDE10, 0.340)], date="2026-01-01T00:00:00+00:00"),
        record("paper-audioset-new", [row(STRIDE10, 0.350)], date="2026-02-01T00:00:00+00:00"),
        # newer and paper, but on the full set: not comparable with the balanced number
        record("paper-full", [row(STRIDE10, 0.45, dataset="audioset_full")],
               date="2026-03-01T00:00:00+00:00"),
        record("paper-none", [row(STRIDE10, None)], date="2026-04-01T00:00:00+00:00"),
    ]  # fmt: skip
    report = build_report(REFERENCE, records)
    shown = {r.number.ref: r for r in report.rows}[STRIDE10]
    assert shown.run.source == "03_patch_overlap/paper-audioset-new"
    assert shown.delta == pytest.approx(0.350 - 0.347) and shown.others == 4
    assert report.counts() == {"numbers": 34, "comparable": 1, "other": 0, "not_run": 33}
    # without the comparable runs: paper profile over smoke, even on other data, no delta
    report = build_report(REFERENCE, [records[0], records[3]])
    shown = {r.number.ref: r for r in report.rows}[STRIDE10]
    assert shown.run.label == "paper, real" and shown.run.dataset == "audioset_full"
    assert shown.delta is None
    # smoke alone: shown with its label, no delta; a paper-only report leaves it out
    shown = build_report(REFERENCE, records[:1]).rows
    smoke = {r.number.ref: r for r in shown}[STRIDE10]
    assert smoke.run.label == "smoke, twin" and smoke.run.value == 0.30 and smoke.delta is None
    paper_only = build_report(REFERENCE, records[:1], profiles=("paper",))
    assert {r.number.ref: r for r in paper_only.rows}[STRIDE10].run is None


def test_a_record_seen_twice_counts_once_and_unknown_refs_are_kept_apart() -> None:
    one = record("paper-audioset", [row(STRIDE10, 0.35)])
    unknown = dict(row(STRIDE10, 0.1), ref="patch_overlap.rows.8.balanced")
    other = record("paper-other", [unknown])
    report = build_report(REFERENCE, [one, copy.deepcopy(one), other])
    assert {r.number.ref: r for r in report.rows}[STRIDE10].others == 0
    assert [run.ref for run in report.unknown] == ["patch_overlap.rows.8.balanced"]
    assert len(reproductions([one, one])) == 1
    with pytest.raises(ReportError, match="lacks 'seeds'"):
        reproductions([record("bad", [{k: v for k, v in row(STRIDE10, 0.3).items()
                                       if k != "seeds"}])])  # fmt: skip
    with pytest.raises(ReportError, match="is not a list"):
        reproductions([{**one, "metrics": {"reproduced": {"ref": STRIDE10}}}])


def test_markdown_tables_show_not_run_deltas_and_each_records_provenance() -> None:
    records = [record("paper-audioset", [row(STRIDE10, 0.357)]),
               record("smoke-speechcommands-twin", [row("positional_embedding.rows.reinit", 0.05,
                      metric="acc", dataset="speechcommands")], profile="smoke", synthetic=True,
                      stage="02_imagenet_init")]  # fmt: skip
    text = markdown_tables(build_report(REFERENCE, records))
    lines = text.splitlines()
    assert lines[0].startswith("34 paper numbers: 1 reproduced at the paper's scale")
    (stride,) = [line for line in lines if "stride 10 (overlap 6), balanced" in line]
    assert "| 0.347 | 0.3570 | +0.0100 | paper, real |" in stride
    (reinit,) = [line for line in lines if "reinitialized" in line]
    assert "| 0.305 | 0.0500 |  | smoke, twin | accuracy, speechcommands, v, seeds 0, 1 |" in reinit
    assert sum(f"| {NOT_RUN} |" in line for line in lines) == 32
    assert ("| `03_patch_overlap/paper-audioset` | `ast-repro notebooks run 03_patch_overlap` | "
            "2026-01-01T00:00:00+00:00 | cuda: H100 x1 | 0123456789ab+dirty |") in text  # fmt: skip


def test_write_report_writes_markdown_and_a_figure_per_table(tmp_path: Path) -> None:
    rows = [row(STRIDE10, 0.357), row("positional_embedding.rows.reinit", 0.3)]
    records = [record("paper-audioset", rows)]
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "table_1.png").write_bytes(b"an older report's figure")
    path = write_report(build_report(REFERENCE, records), reference=REFERENCE, out_dir=tmp_path)
    text = path.read_text()
    assert (
        path == tmp_path / "report.md" and markdown_tables(build_report(REFERENCE, records)) in text
    )
    figures = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert figures == ["paper_vs_reproduced.png", "table_4.png", "table_5.png"]
    assert all((tmp_path / "figures" / name).read_bytes()[:4] == b"\x89PNG" for name in figures)
    assert "![table_5](figures/table_5.png)" in text
    assert "PSLA Ensemble-M, full | 0.474 |" in text  # the other systems, for context
    assert not list(tmp_path.rglob(".*.tmp"))  # atomic writes leave no temporary file


def test_the_readme_table_is_the_report_of_the_published_records() -> None:
    assert readme_section(README) == readme_block(), (
        "README.md's paper-vs-reproduced table is stale: run `make report`"
    )


def test_update_readme_replaces_only_the_section(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{README_BEGIN}\nold\n{README_END}\n\ntail\n")
    block = f"{README_BEGIN}\nnew table\n{README_END}"
    assert update_readme(readme, block) is True
    assert readme.read_text() == f"# title\n\n{block}\n\ntail\n"
    assert update_readme(readme, block) is False
    (tmp_path / "plain.md").write_text("no markers\n")
    with pytest.raises(ReportError, match="no <!-- report:begin -->"):
        update_readme(tmp_path / "plain.md", block)


def test_publish_copies_a_record_that_reproduces_something(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("ast_repro.report.published_dir", lambda: tmp_path / "published")
    run = tmp_path / "results" / "03_patch_overlap" / "paper-audioset"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps(record("paper-audioset", [row(STRIDE10, 0.3)])))
    target = publish(run)
    assert target == tmp_path / "published" / "03_patch_overlap" / "paper-audioset" / "metrics.json"
    assert json.loads(target.read_text())["metrics"]["reproduced"][0]["value"] == 0.3
    (run / "metrics.json").write_text(json.dumps(record("paper-audioset", [])))
    with pytest.raises(ReportError, match="reproduces no paper number"):
        publish(run / "metrics.json")
    with pytest.raises(ReportError, match="no metrics.json"):
        publish(tmp_path / "missing")


def test_the_report_command_writes_the_report_from_a_results_folder(tmp_path, capsys) -> None:
    run = tmp_path / "results" / "02_imagenet_init" / "paper-audioset"
    run.mkdir(parents=True)
    rows = [row("pretrained_weights.rows.vit_base", 0.31)]
    (run / "metrics.json").write_text(json.dumps(record("paper-audioset", rows)))
    assert main(["report", "--results", str(tmp_path / "results"), "--paper-only"]) == 0
    text = (tmp_path / "results" / "report" / "report.md").read_text()
    assert "| 0.320 | 0.3100 | -0.0100 | paper, real |" in text
    assert "Profiles shown: paper." in text
    assert "1 reproduced at the paper's scale" in capsys.readouterr().out
    (tmp_path / "README.md").write_text("no markers")
    assert main(["report", "--results", str(tmp_path / "results"),
                 "--readme", str(tmp_path / "README.md")]) == 2  # fmt: skip
    assert "no <!-- report:begin -->" in capsys.readouterr().err
