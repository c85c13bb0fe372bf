"""Model repository assembly (runtime/serving/assemble.py) and the python-backend adapter.

Uses the real example ONNX models; fsspec's memory:// filesystem stands in for
an object store.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import onnxruntime as ort
import pytest
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2 as mc

from runtime.serving.assemble import ArtifactSource, AssembleError, assemble, main
from tests.tools import REPO_ROOT

ROOT = REPO_ROOT
MODELS = ROOT / "specs" / "artifacts" / "models"
LOAN = MODELS / "car-loan-default" / "1" / "model.onnx"
PRICE = MODELS / "car-price" / "1" / "model.onnx"
ADAPTER = ROOT / "runtime" / "local" / "triton_backend" / "model.py"
LOAN_SHA = "905bf2965a39c334beb2be804dd0a7dd58c6accbf6f1086e8ac7dffa43d450ca"

CONFIG = """\
name: "car-loan-default"
version_policy { specific { versions: 1 } }
max_batch_size: 64
input { name: "car_value" data_type: TYPE_FP32 dims: 1 }
input { name: "salary_range" data_type: TYPE_STRING dims: 1 }
input { name: "debt_to_income_ratio" data_type: TYPE_FP32 dims: 1 }
input { name: "loan_length" data_type: TYPE_FP32 dims: 1 }
input { name: "repaid_loan_on_prev_car" data_type: TYPE_INT64 dims: 1 }
input { name: "size_of_downpayment" data_type: TYPE_STRING dims: 1 }
input { name: "driver_tenure" data_type: TYPE_FP32 dims: 1 }
output { name: "label" data_type: TYPE_INT64 dims: 1 reshape { } }
output { name: "probabilities" data_type: TYPE_FP32 dims: 2 }
instance_group { kind: KIND_CPU count: 1 }
dynamic_batching { }
backend: "python"
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tampered(source: Path, target: Path) -> Path:
    data = bytearray(source.read_bytes())
    data[len(data) // 2] ^= 0x01  # flip one bit in the middle of the graph
    target.write_bytes(bytes(data))
    return target


def leftovers(repository: Path) -> list[str]:
    return sorted(p.name for p in repository.iterdir() if p.name.startswith("."))


def test_the_example_digest_is_the_declared_one() -> None:
    assert sha256(LOAN) == LOAN_SHA


def test_assembles_verified_versions_with_config_and_extra_files(tmp_path: Path) -> None:
    repository = tmp_path / "models"
    folder = assemble(
        "car-loan-default",
        [ArtifactSource(1, str(LOAN), LOAN_SHA)],
        CONFIG,
        repository,
        extra_files=[ADAPTER],
    )
    assert folder == repository / "car-loan-default"
    assert (folder / "config.pbtxt").read_text(encoding="utf-8") == CONFIG
    assert (folder / "1" / "model.onnx").read_bytes() == LOAN.read_bytes()
    assert (folder / "1" / "model.py").read_bytes() == ADAPTER.read_bytes()
    assert sorted(p.name for p in repository.iterdir()) == ["car-loan-default"]


def test_several_versions_each_get_a_folder(tmp_path: Path) -> None:
    config = CONFIG.replace("versions: 1", "versions: [1, 2]")
    folder = assemble(
        "car-loan-default",
        [ArtifactSource(2, str(PRICE), sha256(PRICE)), ArtifactSource(1, f"file://{LOAN}")],
        config,
        tmp_path,
    )
    assert (folder / "1" / "model.onnx").read_bytes() == LOAN.read_bytes()
    assert (folder / "2" / "model.onnx").read_bytes() == PRICE.read_bytes()


def test_a_tampered_artifact_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    repository = tmp_path / "models"
    good = assemble(
        "car-loan-default", [ArtifactSource(1, str(LOAN), LOAN_SHA)], CONFIG, repository
    )
    before = (good / "1" / "model.onnx").read_bytes()
    bad = tampered(LOAN, tmp_path / "bad.onnx")
    with pytest.raises(AssembleError) as caught:
        assemble("car-loan-default", [ArtifactSource(1, str(bad), LOAN_SHA)], CONFIG, repository)
    message = str(caught.value)
    assert str(bad) in message
    assert f"expected {LOAN_SHA}" in message
    assert f"got {sha256(bad)}" in message
    assert "was not changed" in message
    # The previous repository is intact and no staging folder is left behind.
    assert (good / "1" / "model.onnx").read_bytes() == before
    assert leftovers(repository) == []


def test_a_tampered_artifact_leaves_no_repository_at_all(tmp_path: Path) -> None:
    bad = tampered(LOAN, tmp_path / "bad.onnx")
    repository = tmp_path / "models"
    with pytest.raises(AssembleError, match="sha256 mismatch"):
        assemble("car-loan-default", [ArtifactSource(1, str(bad), LOAN_SHA)], CONFIG, repository)
    assert list(repository.iterdir()) == []


def test_a_missing_artifact_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.onnx"
    with pytest.raises(AssembleError, match=f"artifact not found: {missing}"):
        assemble("car-loan-default", [ArtifactSource(1, str(missing))], CONFIG, tmp_path / "m")
    assert list((tmp_path / "m").iterdir()) == []


@pytest.fixture
def memory_store() -> Iterator[fsspec.AbstractFileSystem]:
    fs = fsspec.filesystem("memory")
    fs.mkdir("/bucket/car-loan-default/1")
    fs.pipe("/bucket/car-loan-default/1/model.onnx", LOAN.read_bytes())
    yield fs
    fs.rm("/bucket", recursive=True)


def test_object_store_uris_go_through_fsspec(
    tmp_path: Path, memory_store: fsspec.AbstractFileSystem
) -> None:
    uri = "memory://bucket/car-loan-default/1/model.onnx"
    folder = assemble("car-loan-default", [ArtifactSource(1, uri, LOAN_SHA)], CONFIG, tmp_path)
    assert (folder / "1" / "model.onnx").read_bytes() == LOAN.read_bytes()


def test_object_store_tampering_is_refused(
    tmp_path: Path, memory_store: fsspec.AbstractFileSystem
) -> None:
    uri = "memory://bucket/car-loan-default/1/model.onnx"
    data = bytearray(LOAN.read_bytes())
    data[100] ^= 0xFF
    memory_store.pipe("/bucket/car-loan-default/1/model.onnx", bytes(data))
    with pytest.raises(AssembleError, match=f"sha256 mismatch for {uri}: expected {LOAN_SHA}"):
        assemble("car-loan-default", [ArtifactSource(1, uri, LOAN_SHA)], CONFIG, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_protocol_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AssembleError, match="cannot read artifact nosuchfs://"):
        assemble(
            "car-loan-default", [ArtifactSource(1, "nosuchfs://x/model.onnx")], CONFIG, tmp_path
        )


def test_the_config_must_fit_the_repository(tmp_path: Path) -> None:
    source = [ArtifactSource(1, str(LOAN), LOAN_SHA)]
    with pytest.raises(AssembleError, match=r"names model 'car-loan-default'.*folder is 'other'"):
        assemble("other", source, CONFIG, tmp_path)
    with pytest.raises(AssembleError, match=r"serves version\(s\) \[2\]"):
        assemble("car-loan-default", source, CONFIG.replace("versions: 1", "versions: 2"), tmp_path)
    with pytest.raises(AssembleError, match="not a valid Triton model configuration"):
        assemble("car-loan-default", source, CONFIG + "no_such_field: 1\n", tmp_path)
    with pytest.raises(AssembleError, match="has no sha256 and --require-sha256"):
        assemble(
            "car-loan-default",
            [ArtifactSource(1, str(LOAN))],
            CONFIG,
            tmp_path,
            require_sha256=True,
        )
    assert list(tmp_path.iterdir()) == []


def test_reassembling_replaces_the_model_folder(tmp_path: Path) -> None:
    first = assemble("car-loan-default", [ArtifactSource(1, str(LOAN))], CONFIG, tmp_path)
    (first / "1" / "stale.txt").write_text("old", encoding="utf-8")
    second = assemble("car-loan-default", [ArtifactSource(1, str(LOAN))], CONFIG, tmp_path)
    assert not (second / "1" / "stale.txt").exists()
    assert leftovers(tmp_path) == []


def test_main_exit_codes_and_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.pbtxt"
    config.write_text(CONFIG, encoding="utf-8")
    repository = tmp_path / "models"
    base = ["--model", "car-loan-default", "--config", str(config), "--repository", str(repository)]
    ok = [*base, "--artifact", f"1={LOAN}", "--sha256", f"1={LOAN_SHA}", "--file", str(ADAPTER)]
    assert main(ok) == 0
    assert "version 1" in capsys.readouterr().out
    assert (repository / "car-loan-default" / "1" / "model.py").is_file()

    bad = tampered(LOAN, tmp_path / "bad.onnx")
    assert main([*base, "--artifact", f"1={bad}", "--sha256", f"1={LOAN_SHA}"]) == 1
    error = capsys.readouterr().err
    assert f"sha256 mismatch for {bad}" in error and sha256(bad) in error and LOAN_SHA in error

    assert main([*base, "--artifact", "one=x"]) == 1
    assert "expected VERSION=VALUE" in capsys.readouterr().err
    assert main([*base, "--artifact", f"1={LOAN}", "--sha256", "2=abc"]) == 1
    assert "without an --artifact" in capsys.readouterr().err


def test_runs_as_a_module(tmp_path: Path) -> None:
    import subprocess

    config = tmp_path / "config.pbtxt"
    config.write_text(CONFIG, encoding="utf-8")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "runtime.serving.assemble",
            "--model=car-loan-default",
            f"--config={config}",
            f"--repository={tmp_path / 'models'}",
            f"--artifact=1={LOAN}",
            f"--sha256=1={'0' * 64}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert f"expected {'0' * 64}, got {LOAN_SHA}" in done.stderr


# --- the python-backend adapter, with a stand-in for Triton's pb_utils ----------------------


class FakeTensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self.name = name
        self.array = array

    def as_numpy(self) -> np.ndarray:
        return self.array


class FakeRequest:
    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.tensors = {n: FakeTensor(n, a) for n, a in arrays.items()}


class FakeResponse:
    def __init__(self, output_tensors: list[FakeTensor] | None = None, error: Any = None) -> None:
        self.outputs = {t.name: t.array for t in output_tensors or []}
        self.error = error


class FakeError:
    def __init__(self, message: str) -> None:
        self.message = message


class FakeModelException(Exception):
    """pb_utils.TritonModelException: raised from execute, it fails every request given."""


@pytest.fixture
def adapter_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    fake = types.ModuleType("triton_python_backend_utils")
    fake.Tensor = FakeTensor  # type: ignore[attr-defined]
    fake.InferenceResponse = FakeResponse  # type: ignore[attr-defined]
    fake.TritonError = FakeError  # type: ignore[attr-defined]
    fake.TritonModelException = FakeModelException  # type: ignore[attr-defined]
    fake.get_input_tensor_by_name = lambda r, n: r.tensors.get(n)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fake)
    spec = importlib.util.spec_from_file_location("kiln_adapter_under_test", ADAPTER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def config_json(text: str = CONFIG) -> str:
    config = text_format.Parse(text, mc.ModelConfig())
    return json.dumps(json_format.MessageToDict(config, preserving_proto_field_name=True))


def instance(
    module: types.ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str = CONFIG
) -> Any:
    (tmp_path / "1").mkdir(exist_ok=True)
    shutil.copyfile(LOAN, tmp_path / "1" / "model.onnx")
    monkeypatch.setattr(np, "__version__", "1.26.4")  # the backend venv's numpy
    model = module.TritonPythonModel()
    args = {"model_config": config_json(text), "model_repository": str(tmp_path)}
    model.initialize({**args, "model_version": "1"})
    return model


def rows(start: int, count: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(start)
    salaries = [b"0 - 20K \xe2\x82\xac", b"20K - 40K \xe2\x82\xac", b"60K+ \xe2\x82\xac"]
    column = lambda values: np.array(values).reshape(count, 1)  # noqa: E731
    return {
        "car_value": column(rng.uniform(5e3, 5e4, count).astype(np.float32)),
        "salary_range": np.array([salaries[i % 3] for i in range(count)], object).reshape(count, 1),
        "debt_to_income_ratio": column(rng.uniform(0, 1, count).astype(np.float32)),
        "loan_length": column(rng.integers(1, 10, count).astype(np.float32)),
        "repaid_loan_on_prev_car": column(rng.integers(0, 2, count).astype(np.int64)),
        "size_of_downpayment": np.array([b"10%"] * count, object).reshape(count, 1),
        "driver_tenure": column(rng.uniform(0, 10, count).astype(np.float32)),
    }


def onnxruntime_outputs(arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
    # One intra-op thread, like the adapter: with more, onnxruntime's float results depend
    # on the batch size in the last bit (measured), and a batch of requests would differ.
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(LOAN), options, providers=["CPUExecutionProvider"])
    feed = {
        n: np.array([v.decode() for v in a.ravel()], object).reshape(a.shape)
        if a.dtype == object
        else a
        for n, a in arrays.items()
    }
    return [np.asarray(v) for v in session.run(["label", "probabilities"], feed)]


def test_adapter_runs_one_onnxruntime_call_per_batch_of_requests(
    adapter_module: types.ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = instance(adapter_module, tmp_path, monkeypatch)
    calls: list[int] = []
    real_run = model.session.run

    class Spy:
        def run(self, names: list[str], feed: dict[str, np.ndarray]) -> Any:
            calls.append(len(feed["car_value"]))
            return real_run(names, feed)

    model.session = Spy()
    parts = [rows(1, 3), rows(2, 1), rows(3, 5)]
    responses = model.execute([FakeRequest(p) for p in parts])
    assert calls == [9]
    for part, response in zip(parts, responses, strict=True):
        label, probabilities = onnxruntime_outputs(part)
        assert response.error is None
        assert response.outputs["label"].dtype == np.int64
        assert np.array_equal(response.outputs["label"], label)  # [n]: reshape { } in config
        assert response.outputs["probabilities"].dtype == np.float32
        assert np.array_equal(response.outputs["probabilities"], probabilities)


def test_adapter_isolates_a_bad_request_in_a_batch(
    adapter_module: types.ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = instance(adapter_module, tmp_path, monkeypatch)
    broken = rows(5, 2)
    del broken["driver_tenure"]
    responses = model.execute([FakeRequest(rows(4, 2)), FakeRequest(broken)])
    assert responses[0].error is None and len(responses[0].outputs["label"]) == 2
    assert "input `driver_tenure` is missing" in responses[1].error.message


def test_adapter_raises_for_a_bad_request_alone(
    adapter_module: types.ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Raising is what makes Triton count the request in nv_inference_request_failure;
    # an error response would be counted as a success, and the analysis would not see it.
    model = instance(adapter_module, tmp_path, monkeypatch)
    broken = rows(5, 2)
    broken["salary_range"] = np.array([[b"\xff"], [b"\xfe"]], object)
    with pytest.raises(FakeModelException, match="UnicodeDecodeError"):
        model.execute([FakeRequest(broken)])


def test_adapter_refuses_numpy_2(
    adapter_module: types.ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "1").mkdir()
    shutil.copyfile(LOAN, tmp_path / "1" / "model.onnx")
    monkeypatch.setattr(np, "__version__", "2.1.0")
    args = {"model_config": config_json(), "model_repository": str(tmp_path), "model_version": "1"}
    with pytest.raises(RuntimeError, match="needs numpy < 2"):
        adapter_module.TritonPythonModel().initialize(args)


def test_adapter_refuses_outputs_that_do_not_fit_the_config(
    adapter_module: types.ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong_type = CONFIG.replace(
        'name: "probabilities" data_type: TYPE_FP32', 'name: "probabilities" data_type: TYPE_INT32'
    )
    model = instance(adapter_module, tmp_path, monkeypatch, wrong_type)
    with pytest.raises(FakeModelException) as raised:
        model.execute([FakeRequest(rows(6, 2))])
    assert "output `probabilities` is float32 but config.pbtxt declares TYPE_INT32" in str(
        raised.value
    )
    wrong_dims = CONFIG.replace(
        'name: "probabilities" data_type: TYPE_FP32 dims: 2',
        ('name: "probabilities" data_type: TYPE_FP32 dims: 3'),
    )
    model = instance(adapter_module, tmp_path, monkeypatch, wrong_dims)
    with pytest.raises(FakeModelException) as raised:
        model.execute([FakeRequest(rows(6, 2))])
    assert "output `probabilities` has shape [2, 2] but config.pbtxt declares [2, 3]" in str(
        raised.value
    )
    unknown = CONFIG.replace('name: "label"', 'name: "labels"')
    with pytest.raises(RuntimeError, match=r"declares outputs \['labels'\]"):
        instance(adapter_module, tmp_path, monkeypatch, unknown)
