"""What `kiln serve` and `kiln smoke` say about a model they cannot hand to Triton."""

from __future__ import annotations

from pathlib import Path

import pytest

from compiler.served import NotServable, model_ir
from tests.tools import REPO_ROOT

FORMATS = REPO_ROOT / "tests" / "golden" / "formats" / "specs"


def test_a_gpu_only_model_is_said_to_be_gpu_only_not_untrained() -> None:
    with pytest.raises(NotServable) as refused:
        model_ir(FORMATS, "default-trt", "local")
    message = str(refused.value)
    assert "versions are tensorrt, which the local Triton does not serve" in message
    assert "TensorRT runs on NVIDIA GPUs only" in message
    assert "kiln run" not in message


def test_a_model_without_versions_is_told_to_train_one(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    (specs / "artifacts").mkdir(parents=True)
    for name in ("project.yaml", "borrower.yaml"):
        (specs / name).write_bytes((FORMATS / name).read_bytes())
    trt = (FORMATS / "default-trt.yaml").read_text()
    head, _, rest = trt.partition("  versions:\n")
    (specs / "default-trt.yaml").write_text(head + rest.split("\n", 1)[1])
    with pytest.raises(NotServable, match="train one with `kiln run default-trt --local`"):
        model_ir(specs, "default-trt", "local")
