"""Reading weight files: one `torch.load` for the package, one rule for the `module.` prefix."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import ast_repro
from ast_repro import checkpoint as ckpt
from ast_repro.datafiles import LabelMap, write_label_csv
from ast_repro.ensemble import EnsembleError
from ast_repro.ensemble import load_state_dict as ensemble_state_dict
from ast_repro.model import create_model
from ast_repro.pretrained import ORIGINAL_CHECKPOINTS, ModelFileMissing, WeightsError
from ast_repro.released import load_labelled_model, released_labels
from ast_repro.weights import (
    strip_original_prefixes,
    strip_wrapper_prefix,
    to_original_state_dict,
)

PACKAGE = Path(ast_repro.__file__).parent


def _sources() -> dict[str, ast.Module]:
    return {
        str(path.relative_to(PACKAGE)): ast.parse(path.read_text(), filename=str(path))
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _torch_load_calls(tree: ast.Module) -> int:
    """Calls of `torch.load`, `torch.serialization.load` or a `load` imported from torch."""
    imported = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("torch")
        for alias in node.names
        if alias.name == "load"
    }
    count = 0
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "load":
            owner = ast.unparse(func.value)
            count += owner in ("torch", "torch.serialization")
        elif isinstance(func, ast.Name):
            count += func.id in imported
    return count


def test_checkpoint_is_the_only_module_that_calls_torch_load() -> None:
    calls = {name: n for name, tree in _sources().items() if (n := _torch_load_calls(tree))}
    assert calls == {"checkpoint.py": 1}
    # the walk does see a call written the other ways
    probe = ast.parse("from torch import load as read\nimport torch\nread(p)\ntorch.load(p)")
    assert _torch_load_calls(probe) == 2


def test_weights_has_no_file_io() -> None:
    tree = _sources()["weights.py"]
    imported = {
        name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
        )
    }
    pure = {"__future__", "collections", "typing", "math", "torch"}
    assert {name for name in imported if name.split(".")[0] not in pure} == {
        "ast_repro.model",
        "ast_repro.model_config",
        "ast_repro.pretrained",  # the error types only
    }
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    attributes = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert not names & {"open", "Path"} and not attributes & {"load", "save", "read_bytes"}


def test_the_module_prefix_is_spelled_in_one_place() -> None:
    spelled = {
        name
        for name, tree in _sources().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value == "module."
    }
    assert spelled == {"weights.py"}


def test_one_prefix_rule_for_every_reader(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("test", max_length=128, num_labels=5)
    bare = model.state_dict()
    wrapped = torch.nn.DataParallel(model).state_dict()  # keys "module.*", as DDP writes them
    assert set(wrapped) == {"module." + key for key in bare}
    assert strip_wrapper_prefix(wrapped).keys() == bare.keys()
    # only a leading prefix goes; a name that merely contains it stays
    assert strip_wrapper_prefix({"a.module.b": bare["cls_token"]}).keys() == {"a.module.b"}
    torch.save(wrapped, tmp_path / "wrapped.pth")
    torch.save({"model": wrapped, "epoch": 3}, tmp_path / "in_model.pth")
    torch.save({"state_dict": bare}, tmp_path / "in_state_dict.pth")
    for read in (
        ckpt.read_state_dict(tmp_path / "wrapped.pth"),
        ckpt.read_state_dict(tmp_path / "in_model.pth"),
        ckpt.read_state_dict(tmp_path / "in_state_dict.pth"),
        ckpt.read_state_dict(wrapped),
        ensemble_state_dict(tmp_path / "wrapped.pth"),
        ensemble_state_dict({"model": wrapped}),
    ):
        assert read.keys() == bare.keys()
        assert all(torch.equal(read[key], bare[key]) for key in bare)
    # the original format is the same rule followed by the backbone's `v.`
    original = to_original_state_dict(model)
    assert strip_original_prefixes(original).keys() == bare.keys()
    torch.save(original, tmp_path / "audioset_10_10_0.5.pth")
    reloaded = ckpt.load_original_checkpoint(tmp_path / "audioset_10_10_0.5.pth", max_length=128)
    assert all(torch.equal(reloaded.state_dict()[key], bare[key]) for key in bare)


class _NotData:
    """An object whose unpickling would run code: weights_only refuses it."""

    def __reduce__(self):
        return (print, ("unpickled",))


def test_read_file_is_safe_and_its_errors_name_the_file(tmp_path: Path, capsys) -> None:
    with pytest.raises(ModelFileMissing, match=r"absent\.pth: weight file not found"):
        ckpt.read_file(tmp_path / "absent.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match=r"junk\.pth: not a readable PyTorch checkpoint \(torch"):
        ckpt.read_file(tmp_path / "junk.pth", what="checkpoint")  # text: named as such
    torch.save({"model": _NotData()}, tmp_path / "code.pth")
    with pytest.raises(WeightsError, match="not a readable"):
        ckpt.read_file(tmp_path / "code.pth")
    assert "unpickled" not in capsys.readouterr().out
    torch.save({"model": {"w": "text"}}, tmp_path / "text.pth")
    with pytest.raises(WeightsError, match=r"text\.pth: expected a state dict of tensors"):
        ckpt.read_state_dict(tmp_path / "text.pth")
    # each caller keeps its own error type with the same message
    with pytest.raises(ckpt.CheckpointError, match="not a readable PyTorch checkpoint"):
        ckpt.load(tmp_path / "junk.pth")
    with pytest.raises(EnsembleError, match="junk.pth: not a readable"):
        ensemble_state_dict(tmp_path / "junk.pth")


def test_read_audioset_weights_tells_a_run_from_an_original_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("test", max_length=128, num_labels=5)
    torch.save(to_original_state_dict(model), tmp_path / "original.pth")
    original = ckpt.read_audioset_weights(tmp_path / "original.pth")
    assert original.grid == (12, 101) and original.run_config is None
    assert {"v.cls_token", "v.blocks.1.mlp.fc2.weight", "mlp_head.1.weight"} <= set(
        original.state_dict
    )
    assert not any(key.startswith("module.") for key in original.state_dict)
    payload = {
        "format": ckpt.CHECKPOINT_FORMAT,
        "model": model.state_dict(),
        "model_config": model.config.to_dict(),
        "config": {"dataset": "audioset"},
    }
    torch.save(payload, tmp_path / "run.pt")
    run = ckpt.read_audioset_weights(tmp_path / "run.pt")
    assert run.grid == model.config.grid == (12, 12)
    assert run.run_config == {"dataset": "audioset"}
    assert run.state_dict.keys() == model.state_dict().keys()


def test_released_checkpoints_carry_their_label_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    speech = released_labels("speechcommands_10_10_0.9812.pth")
    # the original csv's order, the released model's output order (not sorted)
    assert speech.names[:5] == ("backward", "follow", "five", "bed", "zero")
    assert speech.mids[:2] == ("/m/spcmd00", "/m/spcmd01") and speech.num_classes == 35
    # AudioSet's names are its official csv, from the prepared data or given
    monkeypatch.setenv("AST_REPRO_DATA", str(tmp_path / "data"))
    with pytest.raises(ckpt.CheckpointError, match="class_labels_indices.csv, not found at"):
        released_labels("audioset_10_10_0.4593.pth")
    csv = tmp_path / "class_labels_indices.csv"
    write_label_csv(csv, LabelMap(("/m/09x0r", "/m/05zppz"), ("Speech", "Male speech")))
    assert released_labels("audioset_10_10_0.4593.pth", csv).names == ("Speech", "Male speech")
    # a released file is named by the URL to get it when it is absent
    with pytest.raises(ckpt.CheckpointError, match=r"download https://www\.dropbox\.com/"):
        load_labelled_model(tmp_path / "speechcommands_10_10_0.9812.pth")
    assert ORIGINAL_CHECKPOINTS["speechcommands_10_10_0.9812.pth"].recipe == "speechcommands"
    assert ORIGINAL_CHECKPOINTS["audioset_bal_10_10_0.3499.pth"].recipe == "audioset_balanced"
