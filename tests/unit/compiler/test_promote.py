"""`kiln promote`: a version from the local model store into the spec, compiled, planned.

Each test works on a copy of the example platform whose local store (the local
environment's `storage.models`) gets versions from the real publish step, with the
gates' outcome it records from evaluate's evaluation.json.
"""

from __future__ import annotations

import difflib
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from compiler.api import compile_tree
from compiler.cli import cli
from runtime.steps import publish
from tests.tools import REPO_ROOT

MODEL = "specs/models/car-loan-default.yaml"
STORE = "specs/artifacts/models"  # the local environment's storage.models
LOAN = REPO_ROOT / STORE / "car-loan-default/1/model.onnx"
PRICE = REPO_ROOT / STORE / "car-price/1/model.onnx"


def publish_version(
    root: Path, store: Path, version: int, model: Path, passed: bool | None
) -> None:
    """Publish `model` as `version` with the real step; passed=None: no gate outcome."""
    work = root / f"publish-{store.name}-{version}"
    work.mkdir()
    (work / "metrics.json").write_text(json.dumps({"roc_auc": 0.97, "f1": 0.94}))
    argv = [
        *("--model", str(model), "--store", str(store), "--name", "car-loan-default"),
        *("--version", str(version), "--metrics", str(work / "metrics.json")),
        *("--data-sha256", "d" * 64, "--seed", "0", "--out", str(work / "out")),
        *("--as-of", "2026-12-01T00:00:00+00:00"),
    ]
    if passed is not None:
        gate = {"metric": "roc_auc", "kind": "min", "bound": 0.85, "passed": passed}
        (work / "evaluation.json").write_text(json.dumps({"passed": passed, "gates": [gate]}))
        argv += ["--evaluation", str(work / "evaluation.json")]
    assert publish.main(argv) == 0


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "platform"
    shutil.copytree(REPO_ROOT / "specs", root / "specs")
    assert compile_tree(root / "specs", root / "generated").ok
    monkeypatch.delenv("KILN_SIGNING_KEY", raising=False)
    store = root / STORE
    publish_version(tmp_path, store, 2, LOAN, passed=True)
    publish_version(tmp_path, store, 3, PRICE, passed=False)
    publish_version(tmp_path, store, 4, PRICE, passed=None)
    return root


def kiln(root: Path, *args: str) -> Result:
    paths = ["--specs", str(root / "specs"), "--out", str(root / "generated")]
    return CliRunner().invoke(cli, ["promote", "car-loan-default", *args, *paths])


def test_promotes_the_newest_version_that_passed_and_compiles(project: Path) -> None:
    before = (project / MODEL).read_text()
    result = kiln(project)
    assert result.exit_code == 0, result.output
    assert "promoted car-loan-default version 2" in result.output
    assert "spec.serving.version = 2" in result.output
    assert "serving version 1 -> 2" in result.output  # the plan
    after = (project / MODEL).read_text()
    diff = list(difflib.unified_diff(before.splitlines(), after.splitlines(), n=0, lineterm=""))
    assert [line[1:] for line in diff if line[:1] == "-" and line[:3] != "---"] == [
        "    version: 1"
    ]
    assert [line[1:] for line in diff if line[:1] == "+" and line[:3] != "+++"] == [
        "    - version: 2",
        "      artifact:",
        "        uri: car-loan-default/2/model.onnx",
        f"        sha256: {publish.sha256_bytes(LOAN.read_bytes())}",
        "      metrics: {f1: 0.94, roc_auc: 0.97}",
        "    version: 2",
    ]
    # The output is fresh: promote compiled what it changed.
    check = CliRunner().invoke(
        cli,
        [
            "compile",
            "--check",
            "--specs",
            str(project / "specs"),
            "--out",
            str(project / "generated"),
        ],
    )
    assert check.exit_code == 0, check.output
    again = kiln(project)
    assert again.exit_code == 0 and "already lists and serves" in again.output
    assert (project / MODEL).read_text() == after


def test_env_sets_the_overlay_only(project: Path) -> None:
    result = kiln(project, "--version", "2", "--env", "staging")
    assert result.exit_code == 0, result.output
    text = (project / MODEL).read_text()
    assert "      serving: {version: 2, replicas: {min: 1, max: 2}}" in text
    assert "  serving:\n    version: 1\n" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--version", "3"), "version 3 failed its gates"),
        (("--version", "4"), "does not say whether its gates passed"),
        (("--version", "9"), "version 9 is not in"),
        (("--env", "nowhere"), "nowhere"),
    ],
)
def test_refusals_leave_the_spec_untouched(
    project: Path, args: tuple[str, ...], message: str
) -> None:
    before = (project / MODEL).read_bytes()
    result = kiln(project, *args)
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert (project / MODEL).read_bytes() == before


def test_a_listed_version_with_another_digest_is_refused(project: Path, tmp_path: Path) -> None:
    other = tmp_path / "other-store"
    publish_version(tmp_path, other, 1, PRICE, passed=True)
    # The local store's record of version 1 now names another file's digest.
    record = Path("car-loan-default", "1", "metadata.json")
    shutil.copyfile(other / record, project / STORE / record)
    before = (project / MODEL).read_bytes()
    result = kiln(project, "--version", "1")
    assert result.exit_code == 1
    assert f"{MODEL}:25:7: spec.versions already lists version 1 with sha256" in result.output
    assert (project / MODEL).read_bytes() == before


def test_nothing_passed_says_how_to_get_a_version(project: Path) -> None:
    store = project / STORE / "car-loan-default"
    shutil.rmtree(store / "2")
    result = kiln(project)
    assert result.exit_code == 1
    assert "no version in" in result.output and "kiln run NAME --local" in result.output


def test_a_store_that_is_no_folder_is_named(project: Path, tmp_path: Path) -> None:
    before = (project / MODEL).read_bytes()
    result = kiln(project, "--store", str(tmp_path / "nowhere"))
    assert result.exit_code == 1
    assert f"--store {tmp_path / 'nowhere'} is not a folder" in result.output
    assert (project / MODEL).read_bytes() == before


def test_a_store_other_than_the_local_one_is_refused_before_the_spec_is_touched(
    project: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other-store"
    publish_version(tmp_path, other, 5, LOAN, passed=True)
    before = (project / MODEL).read_bytes()
    result = kiln(project, "--version", "5", "--store", str(other))
    assert result.exit_code == 1
    assert f"--store {other} is not the local environment's model store ({STORE})" in result.output
    assert f"into {STORE}/car-loan-default/ and run promote without --store" in result.output
    # Refused up front: no build of a promoted spec, so no diagnostics of one.
    assert "does not build" not in result.output and "error[" not in result.output
    assert (project / MODEL).read_bytes() == before
    # The local store itself, named another way, is the local store.
    same = kiln(project, "--version", "2", "--store", str(project / "specs" / ".." / STORE))
    assert same.exit_code == 0, same.output
