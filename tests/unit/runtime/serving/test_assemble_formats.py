"""The assemble step names a version's file as the compiled config says: formats
other than ONNX carry default_model_filename (runtime/contract/formats.py)."""

from __future__ import annotations

from pathlib import Path

from runtime.serving.assemble import ArtifactSource, assemble
from tests.tools import REPO_ROOT

GOLDEN = REPO_ROOT / "tests" / "golden" / "formats"


def test_the_artifact_goes_under_the_configs_file_name(tmp_path: Path) -> None:
    source = GOLDEN / "specs" / "artifacts" / "models" / "default-xgb" / "1" / "xgboost.json"
    compiled = GOLDEN / "expected" / "gpu" / "default-xgb" / "triton" / "config.pbtxt"
    text = compiled.read_text(encoding="utf-8")
    folder = assemble("default-xgb", [ArtifactSource(1, str(source))], text, tmp_path)
    assert (folder / "1" / "xgboost.json").read_bytes() == source.read_bytes()
    assert sorted(p.name for p in (folder / "1").iterdir()) == ["xgboost.json"]
