"""The compiler pins a SavedModel folder and a python version's execution_env by the
digests the serving pod's assemble step checks (runtime/contract/artifact_digest.py):
a copy of the formats golden tree, changed one file at a time, is built for real."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from compiler.api import build
from compiler.diagnostics import Diagnostic
from tests.tools import REPO_ROOT

SPECS = REPO_ROOT / "tests" / "golden" / "formats" / "specs"
SAVED = Path("artifacts/models/default-tf/1/model.savedmodel")
ENV = Path("artifacts/models/default-python/env/python-env.tar.gz")


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    root = tmp_path / "project" / "specs"
    shutil.copytree(SPECS, root)
    return root


def _problems(specs: Path) -> list[Diagnostic]:
    return [d for d in build(specs).diagnostics if d.is_error]


def test_the_golden_folder_and_archive_match_their_declared_digests(specs: Path) -> None:
    assert _problems(specs) == []


def test_a_file_added_to_the_savedmodel_folder_changes_its_digest(specs: Path) -> None:
    (specs / SAVED / "variables").mkdir(exist_ok=True)
    (specs / SAVED / "variables" / "variables.index").write_bytes(b"index bytes")
    (problem,) = {(d.code, d.file, d.line) for d in _problems(specs)}
    assert problem[0] == "KILN1703" and problem[1].endswith("default-tf.yaml")


def test_a_changed_archive_is_refused_at_compile_time(specs: Path) -> None:
    (specs / ENV).write_bytes(b"not the archive that was pinned")
    problems = _problems(specs)
    assert {d.code for d in problems} == {"KILN1703"}
    assert all("python-env.tar.gz has sha256" in d.message for d in problems)


def test_an_archive_that_leads_out_of_the_project_is_refused(specs: Path) -> None:
    (specs / ENV).unlink()
    (specs / ENV).symlink_to("/etc/hostname")
    assert {d.code for d in _problems(specs)} == {"KILN1711"}
