"""TorchScript models on the local Triton: the local config runs them through the adapter
while the cluster's stays libtorch; the adapter's session and `kiln smoke`'s reference
bind tensors as libtorch does, with real torch on the example model (car-price-torch);
without torch, `kiln serve` and `kiln smoke` say what to install."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from google.protobuf import json_format

from compiler.served import model_ir
from compiler.targets import serving, triton
from runtime.contract.formats import local_run
from runtime.contract.torch_predict import (
    TorchModelError,
    TorchPredictor,
    input_order,
    output_positions,
)
from runtime.examples.train_torch_example import FEATURES
from runtime.local.serve import ADAPTER_FILES, TORCH_FILES, adapter_files
from runtime.serving.references import TORCH_TOLERANCE, reference_for
from runtime.serving.smoke import served_format
from tests.tools import REPO_ROOT

SPECS = REPO_ROOT / "specs"
GENERATED = REPO_ROOT / "generated"
EXAMPLE = SPECS / "artifacts" / "models" / "car-price-torch" / "1" / "model.pt"
OUTPUT = "price__0"
# torch 2.10+ deprecates TorchScript (torch.jit.*), which is what libtorch serves.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.:FutureWarning")


def _config_text(environment: str) -> str:
    return (GENERATED / environment / "car-price-torch" / "triton" / "config.pbtxt").read_text(
        encoding="utf-8"
    )


def _rows(count: int = 50) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    scale = {"car_age": 15, "km_driven": 200_000, "price_new": 40_000, "accident_count": 3}
    return {
        name: (rng.uniform(0, 1, size=(count, 1)) * scale.get(name, 3) + 2).astype(np.float32)
        for name in FEATURES
    }


def _direct(rows: dict[str, np.ndarray]) -> np.ndarray:
    """The module called by hand, positionally, in forward()'s order."""
    module = torch.jit.load(str(EXAMPLE))
    with torch.inference_mode():
        answer = module(*[torch.from_numpy(rows[name]) for name in FEATURES])
    result: np.ndarray = answer.numpy()
    return result


def test_the_local_config_runs_torchscript_through_the_adapter_and_libtorch_in_a_cluster() -> None:
    local, cluster = triton.parse(_config_text("local")), triton.parse(_config_text("staging"))
    assert (cluster.platform, cluster.default_model_filename) == ("pytorch_libtorch", "model.pt")
    assert (local.backend, local.platform, local.default_model_filename) == ("python", "", "")
    parameters = {k: v.string_value for k, v in local.parameters.items()}
    assert local_run(parameters, local.default_model_filename) == ("torchscript", "model.pt")
    assert adapter_files(_config_text("local")) == [*ADAPTER_FILES, *TORCH_FILES]
    # The cluster's smoke Job reads the format from the config, held to a tolerance there.
    path = GENERATED / "production" / "car-price-torch" / "triton" / "config.pbtxt"
    assert (served_format(path).format, served_format(path).exact) == ("torchscript", False)


def test_inputs_bind_to_forward_by_name_whatever_the_configs_order() -> None:
    rows = _rows()
    shuffled = list(reversed(FEATURES))
    predictor = TorchPredictor(str(EXAMPLE), shuffled, [OUTPUT])
    assert predictor.order == list(FEATURES)
    answer = predictor.predict(rows)[OUTPUT]
    assert answer.dtype == np.float32 and answer.shape == (50, 1)
    assert np.array_equal(answer, _direct(rows))
    # A plausible price: the model learned something (MAE about 956 on the reference).
    assert 1_000 < float(np.median(answer)) < 100_000


def test_indexed_names_bind_by_position_and_others_are_refused() -> None:
    assert input_order(["a", "b"], ["INPUT__1", "INPUT__0"]) == ["INPUT__0", "INPUT__1"]
    assert output_positions(["OUT__1", "OUT__0"]) == {"OUT__1": 1, "OUT__0": 0}
    with pytest.raises(TorchModelError, match="not an argument of forward"):
        input_order(["a", "b"], ["a", "c"])
    with pytest.raises(TorchModelError, match=r"input indexes \[0, 2\]"):
        input_order(["a", "b"], ["x__0", "x__2"])
    with pytest.raises(TorchModelError, match="no `__<index>`"):
        output_positions(["price"])
    predictor = TorchPredictor(str(EXAMPLE), list(FEATURES), ["price__1"])
    with pytest.raises(TorchModelError, match="value 1 of forward"):
        predictor.predict(_rows())


def test_a_file_torch_cannot_load_is_a_model_error(tmp_path: Path) -> None:
    broken = tmp_path / "model.pt"
    broken.write_bytes(EXAMPLE.read_bytes()[:2000])
    with pytest.raises(TorchModelError, match=r"torch\.jit\.load cannot load"):
        TorchPredictor(str(broken), list(FEATURES), [OUTPUT])


def _torch_session() -> type:
    sys.path.insert(0, str(Path(TORCH_FILES[1]).parent))  # as the adapter does in its folder
    sys.path.insert(0, str(TORCH_FILES[0].parent))
    try:
        from torch_session import TorchSession  # type: ignore[import-not-found]
    finally:
        del sys.path[:2]
    session_class: type = TorchSession
    return session_class


def test_the_adapters_session_reads_the_config_as_triton_hands_it_over() -> None:
    # Triton gives the python backend the config as protobuf JSON (int64 dims as strings).
    text = json_format.MessageToJson(
        triton.parse(_config_text("local")), preserving_proto_field_name=True
    )
    config = json.loads(text)
    assert config["input"][0]["dims"] == ["1"]
    session = _torch_session()(str(EXAMPLE), config, 1)
    nodes = session.get_inputs()
    assert [n.name for n in nodes] == list(FEATURES)
    assert {(n.type, tuple(n.shape)) for n in nodes} == {("tensor(fp32)", (None, 1))}
    assert [n.name for n in session.get_outputs()] == [OUTPUT]
    rows = _rows()
    (answer,) = session.run([OUTPUT], rows)
    assert np.array_equal(answer, _direct(rows))


def test_smoke_compares_with_torch_exactly_locally_and_within_a_tolerance_in_a_cluster() -> None:
    ir, _ = model_ir(SPECS, "car-price-torch", "local")
    signature = serving.signature(ir)
    local = reference_for("torchscript", EXAMPLE, {}, True, signature)
    cluster = reference_for("torchscript", EXAMPLE, {}, False, signature)
    assert (local.library, local.tolerance, cluster.tolerance) == ("torch", None, TORCH_TOLERANCE)
    rows = _rows()
    assert np.array_equal(local.run(rows, [OUTPUT])[OUTPUT], _direct(rows))
    with pytest.raises(ValueError, match="needs the signature"):
        reference_for("torchscript", EXAMPLE, {}, True)


@pytest.mark.slow
def test_training_the_example_again_gives_the_committed_bytes() -> None:
    """Reproducible: a fresh process, under another string-hash seed, writes the very
    archive committed (and whose sha256 the spec pins)."""
    command = [sys.executable, "-W", "ignore", "-c", _TRAIN]
    done = subprocess.run(
        command,
        capture_output=True,
        check=True,
        timeout=300,
        env={**os.environ, "PYTHONHASHSEED": "1"},
    )
    assert done.stdout == EXAMPLE.read_bytes()


_TRAIN = (
    "import sys; from runtime.examples.train_torch_example import train; "
    "sys.stdout.buffer.write(train()[0])"
)


# Without torch: the extra is named, exit 2, no traceback. torch is made unimportable the
# way Python documents (None in sys.modules) in a child running Kiln's real entry point.
_NO_TORCH = (
    "import sys; sys.modules['torch'] = None; from compiler.cli import main; "
    "sys.argv = ['kiln', *sys.argv[1:]]; main()"
)


@pytest.mark.parametrize(
    "command",
    [
        ["serve", "car-price-torch", "--http-port", "0", "--grpc-port", "0", "--no-metrics"],
        ["smoke", "car-price-torch", "--url", "127.0.0.1:9", "--requests", "0"],
    ],
)
def test_without_torch_serve_and_smoke_say_what_to_install(command: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _NO_TORCH, *command],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "pip install 'kiln[torch]'" in output
    assert "Traceback" not in output
