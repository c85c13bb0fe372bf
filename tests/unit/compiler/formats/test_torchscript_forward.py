"""A TorchScript archive's forward() read without torch, and the declared inputs checked
against it (KILN1720): libtorch binds inputs named after forward()'s arguments by name.
On the example platform's real archive (car-price-torch), compiled from a copy of specs/."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from compiler.api import build
from compiler.formats.torchscript import forward_arguments
from tests.tools import REPO_ROOT

EXAMPLE = REPO_ROOT / "specs" / "artifacts" / "models" / "car-price-torch" / "1" / "model.pt"
GOLDEN = REPO_ROOT / "tests" / "golden" / "formats" / "specs" / "artifacts" / "models"
FORWARD = ["car_age", "km_driven", "price_new", "accident_count", "door_count"]


def test_forward_is_read_from_the_archives_code() -> None:
    assert forward_arguments(EXAMPLE) == FORWARD


def test_an_archive_that_does_not_say_is_not_guessed(tmp_path: Path) -> None:
    # The golden tree's archive has the layout but no pickled root module.
    assert forward_arguments(GOLDEN / "default-torch" / "1" / "model.pt") is None
    # The root module's code file missing.
    stripped = tmp_path / "model.pt"
    with zipfile.ZipFile(EXAMPLE) as source, zipfile.ZipFile(stripped, "w") as target:
        for name in source.namelist():
            if "/code/" not in name:
                target.writestr(name, source.read(name))
    assert forward_arguments(stripped) is None


def _compiled(tmp_path: Path, inputs: list[str]) -> list[tuple[str, int, str]]:
    """KILN1720's (file, line, message) when car-price-torch declares these inputs."""
    specs = tmp_path / "specs"
    shutil.copytree(REPO_ROOT / "specs", specs)
    path = specs / "models" / "car-price-torch.yaml"
    text = path.read_text(encoding="utf-8")
    for old, new in zip(FORWARD, inputs, strict=False):
        text = text.replace(f"{{name: {old}, dtype", f"{{name: {new}, dtype")
    if len(inputs) < len(FORWARD):
        text = text.replace("      - {name: door_count, dtype: fp32, shape: [-1, 1]}\n", "")
    path.write_text(text, encoding="utf-8")
    result = build(specs)
    return [(d.file, d.line, d.message) for d in result.diagnostics if d.code == "KILN1720"]


def test_an_input_that_is_no_argument_of_forward_is_refused_at_its_line(tmp_path: Path) -> None:
    found = _compiled(tmp_path, ["car_age", "km", "price_new", "accident_count", "door_count"])
    assert found == [
        (
            "specs/models/car-price-torch.yaml",
            20,  # the line of `- {name: km, ...}`
            "input `km` is not an argument of the model's forward(car_age, km_driven, "
            "price_new, accident_count, door_count)",
        )
    ]


@pytest.mark.parametrize(
    ("inputs", "refused"),
    [
        ([f"INPUT__{i}" for i in range(5)], False),  # by position, one per argument
        ([f"INPUT__{i}" for i in range(4)], True),
    ],
)
def test_inputs_named_by_position_must_number_the_arguments(
    tmp_path: Path, inputs: list[str], refused: bool
) -> None:
    found = _compiled(tmp_path, inputs)
    assert bool(found) is refused
    if refused:
        assert "takes 5 inputs; 4 are declared" in found[0][2]


def test_compiling_never_imports_torch() -> None:
    code = (
        "import sys; from pathlib import Path; from compiler.api import build; "
        "assert build(Path('specs')).ok; "
        "assert 'torch' not in sys.modules, 'the compiler imported torch'"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
