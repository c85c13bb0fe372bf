"""Tests for runtime/contract/model_store.py: the records publish writes, read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.contract.model_store import StoreError, artifact_uri, read_versions, record_uri
from runtime.steps import publish
from tests.tools import REPO_ROOT

LOAN = REPO_ROOT / "specs/artifacts/models/car-loan-default/1/model.onnx"


def published(tmp_path: Path, version: int, evaluation: dict | None) -> Path:
    """The real publish step's record for `version` in the store tmp_path/store."""
    work = tmp_path / f"work-{version}"
    work.mkdir()
    (work / "metrics.json").write_text(json.dumps({"roc_auc": 0.9704}))
    argv = [
        *("--model", str(LOAN), "--store", str(tmp_path / "store"), "--name", "m"),
        *("--version", str(version), "--metrics", str(work / "metrics.json")),
        *("--data-sha256", "d" * 64, "--seed", "0", "--out", str(work / "out")),
        *("--as-of", "2026-12-01T00:00:00+00:00"),
    ]
    if evaluation is not None:
        (work / "evaluation.json").write_text(json.dumps(evaluation))
        argv += ["--evaluation", str(work / "evaluation.json")]
    assert publish.main(argv) == 0
    return tmp_path / "store"


def test_records_read_back_oldest_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KILN_SIGNING_KEY", raising=False)
    published(tmp_path, 10, {"passed": False, "gates": []})
    store = published(tmp_path, 9, {"passed": True, "gates": []})
    published(tmp_path, 2, None)
    # An artifact whose record never came (a failed upload) is no version; nor is a stray file.
    (store / "m/11").mkdir()
    (store / "m/11/model.onnx").write_bytes(b"partial")
    (store / "m/notes.txt").write_text("x")
    found = read_versions(store, "m")
    assert [v.version for v in found] == [2, 9, 10]
    assert [v.gates_passed for v in found] == [None, True, False]
    nine = found[1]
    assert nine.uri == artifact_uri("m", 9)
    assert nine.sha256 == publish.sha256_bytes(LOAN.read_bytes())
    assert nine.metrics == {"roc_auc": 0.9704}
    assert nine.as_of == "2026-12-01T00:00:00+00:00" and nine.data_sha256 == "d" * 64
    assert not nine.signed
    assert read_versions(store, "absent") == []


def test_a_record_kiln_did_not_write_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "m/1").mkdir(parents=True)
    (tmp_path / record_uri("m", 1)).write_text(json.dumps({"version": 1}))
    with pytest.raises(StoreError, match="is not a metadata record Kiln wrote"):
        read_versions(tmp_path, "m")
    (tmp_path / record_uri("m", 1)).write_text("{not json")
    with pytest.raises(StoreError, match="cannot read"):
        read_versions(tmp_path, "m")
