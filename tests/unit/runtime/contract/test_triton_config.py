"""config.pbtxt read back: one parse for every serving tool, with Triton's own protobuf,
and what a compiled config says of its format (the repository's generated configs)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from runtime.contract.served import ArtifactSource, ServedStep
from runtime.contract.triton_config import ConfigError, read_config, served_format
from tests.tools import REPO_ROOT

GENERATED = REPO_ROOT / "generated"
PIPELINE_STEPS = GENERATED / "local" / "car-price-pipeline" / "triton" / "steps"


def _parses_protobuf_text(path: Path) -> bool:
    """Whether a module imports protobuf's text_format (the only way to parse pbtxt)."""
    for node in ast.walk(ast.parse(path.read_bytes())):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "google.protobuf"
            and any(alias.name == "text_format" for alias in node.names)
        ):
            return True
        if isinstance(node, ast.Import) and any(
            alias.name == "google.protobuf.text_format" for alias in node.names
        ):
            return True
    return False


def test_one_module_of_the_runtime_parses_config_text() -> None:
    parsing = [
        path.relative_to(REPO_ROOT).as_posix()
        for path in sorted((REPO_ROOT / "runtime").rglob("*.py"))
        if _parses_protobuf_text(path)
    ]
    assert parsing == ["runtime/contract/triton_config.py"]


def test_a_config_triton_would_refuse_is_refused_with_the_parsers_words() -> None:
    with pytest.raises(ConfigError, match='has no field named "max_batch"'):
        read_config('name: "m"\nmax_batch: 4\n')


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            GENERATED / "local" / "car-price-gbm" / "triton" / "config.pbtxt",
            ("lightgbm", "model.txt"),
        ),
        (GENERATED / "local" / "car-price" / "triton" / "config.pbtxt", ("onnx", "model.onnx")),
        (
            GENERATED / "production" / "car-price" / "triton" / "config.pbtxt",
            ("onnx", "model.onnx"),
        ),
    ],
)
def test_the_format_and_file_of_a_compiled_config(config: Path, expected: tuple[str, str]) -> None:
    assert served_format(read_config(config.read_text(encoding="utf-8"))) == expected


def test_an_ensemble_steps_format_is_its_compiled_configs() -> None:
    def step(name: str) -> ServedStep:
        text = (PIPELINE_STEPS / f"car-price-pipeline.{name}" / "config.pbtxt").read_text()
        return ServedStep(f"car-price-pipeline.{name}", text, ArtifactSource(1, "unused"))

    prep, regressor = step("prep"), step("regressor")
    assert (prep.format, prep.onnx) == ("python", False)
    assert (regressor.format, regressor.onnx) == ("onnx", True)
