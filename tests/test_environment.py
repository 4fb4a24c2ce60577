"""environment.yml pins exactly what pyproject.toml allows, and the tools are wired up."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def pins() -> dict[str, str]:
    text = (ROOT / "environment.yml").read_text()
    found = re.findall(r"^ +- ([A-Za-z0-9_.-]+)==([^\s#]+)", text, flags=re.M)
    return {name.lower(): version for name, version in found}


def requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in ("dev", "lab"):
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return reqs


def test_every_requirement_is_pinned_within_its_range() -> None:
    pinned = pins()
    for req in requirements():
        name = req.name.lower()
        assert name in pinned, f"{name} is required by pyproject.toml but not pinned"
        assert req.specifier.contains(pinned[name]), f"{name}=={pinned[name]} not in {req}"


def test_every_pin_is_a_requirement() -> None:
    names = {req.name.lower() for req in requirements()}
    assert set(pins()) <= names, set(pins()) - names


def test_installed_versions_are_the_pins() -> None:
    from importlib import metadata

    for name in ("torch", "torchaudio", "timm", "papermill", "nbval"):
        installed = metadata.version(name).split("+")[0]
        assert installed == pins()[name], f"{name} {installed} installed, {pins()[name]} pinned"


def test_console_script_lists_its_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ast_repro.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    from ast_repro.cli import COMMANDS

    for name in COMMANDS:
        assert name in out.stdout


def test_makefile_help_is_the_default_and_lists_every_target() -> None:
    out = subprocess.run(["make", "-s", "-C", str(ROOT)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    targets = re.findall(r"^([a-z-]+):.*## ", (ROOT / "Makefile").read_text(), flags=re.M)
    assert {"setup", "test", "demo", "lab", "check", "notebooks"} <= set(targets)
    for target in targets:
        assert re.search(rf"^{target}\s", out.stdout, flags=re.M), target
