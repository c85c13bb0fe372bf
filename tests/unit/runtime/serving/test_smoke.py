"""Smoke-test logic without a server: signature and output comparison, sample data, and
the whole run against an in-process stand-in for Triton built on onnxruntime."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from compiler.api import build
from compiler.cli import cli
from compiler.ir import ModelIR
from compiler.served import artifact_sources
from compiler.targets.serving import signature as ir_signature
from runtime.contract.signature import PROTOCOL_DATATYPES, Signature, Tensor
from runtime.serving.sample_data import SampleDataError, for_onnxruntime, load_sample, to_inputs
from runtime.serving.smoke import (
    SmokeFailure,
    _call,
    compare_metadata,
    compare_outputs,
    reference_session,
    run,
    run_reference,
    smoke,
    triton_shape,
)
from runtime.serving.smoke import main as smoke_main
from tests.tools import REPO_ROOT

ROOT = REPO_ROOT


@pytest.fixture(scope="module")
def models() -> dict[str, ModelIR]:
    result = build(ROOT / "specs")
    assert result.ok, result.diagnostics
    return {m.name: m for m in result.resolution.models if m.environment.name == "local"}


@pytest.fixture(scope="module")
def loan(models: dict[str, ModelIR]) -> ModelIR:
    return models["car-loan-default"]


def served_metadata(signature: Signature, grpc: bool = False) -> dict[str, Any]:
    """Metadata as Triton reports it for a correct config (gRPC JSON gives dims as strings)."""

    def entry(tensor: Tensor) -> dict[str, Any]:
        shape = triton_shape(tensor, signature.batched)
        return {
            "name": tensor.name,
            "datatype": PROTOCOL_DATATYPES[tensor.dtype],
            "shape": [str(d) for d in shape] if grpc else shape,
        }

    return {
        "name": signature.model,
        "inputs": [entry(t) for t in signature.inputs],
        "outputs": [entry(t) for t in signature.outputs],
    }


def test_triton_reports_the_batch_dimension_as_minus_one() -> None:
    assert triton_shape(Tensor("x", "fp32", (-1, 1)), batched=True) == [-1, 1]
    assert triton_shape(Tensor("p", "fp32", (-1, 2)), batched=True) == [-1, 2]
    # A batch-only tensor has dims [1] (and an empty reshape) in config.pbtxt.
    assert triton_shape(Tensor("label", "int64", (-1,)), batched=True) == [-1, 1]
    assert triton_shape(Tensor("x", "fp32", (4, 3)), batched=False) == [4, 3]


def test_the_signature_comes_from_the_model_ir(loan: ModelIR) -> None:
    signature = ir_signature(loan)
    assert signature.max_batch_size == 64 and signature.batched
    assert [t.name for t in signature.outputs] == ["label", "probabilities"]


@pytest.mark.parametrize("grpc", [False, True])
def test_matching_metadata_has_no_problems(loan: ModelIR, grpc: bool) -> None:
    signature = ir_signature(loan)
    assert compare_metadata(signature, served_metadata(signature, grpc)) == []


def test_metadata_problems_name_the_tensor(loan: ModelIR) -> None:
    signature = ir_signature(loan)
    metadata = served_metadata(signature)
    metadata["inputs"][0]["name"] = "car_worth"
    metadata["outputs"][1]["datatype"] = "FP64"
    metadata["inputs"][2]["shape"] = [-1, 2]
    problems = compare_metadata(signature, metadata)
    assert problems == [
        "input `car_value` of the spec is not served (the server has: car_worth, "
        "debt_to_income_ratio, driver_tenure, loan_length, repaid_loan_on_prev_car, "
        "salary_range, size_of_downpayment)",
        "input `debt_to_income_ratio`: the server has shape [-1, 2], the spec declares "
        "[-1, 1] (expected [-1, 1] from Triton)",
        "input `car_worth` is served but not in the spec",
        "output `probabilities`: the server has datatype FP64, the spec declares fp32 (FP32)",
    ]


def test_outputs_must_equal_onnxruntime_exactly() -> None:
    outputs = (Tensor("label", "int64", (-1,)), Tensor("p", "fp32", (-1, 2)))
    reference = {
        "label": np.array([0, 1, 1], np.int64),
        "p": np.array([[0.5, 0.5], [0.25, np.nan], [0.0, 1.0]], np.float32),
    }
    served: dict[str, np.ndarray | None] = {
        "label": reference["label"].reshape(3, 1),  # Triton exposes dims [1]
        "p": reference["p"].copy(),
    }
    assert compare_outputs(outputs, served, reference) == []
    changed = served["p"].copy()  # type: ignore[union-attr]
    changed[2, 1] = np.nextafter(np.float32(1.0), np.float32(2.0))
    assert compare_outputs(outputs, {**served, "p": changed}, reference) == [
        "output `p` differs from onnxruntime in 1 of 6 values (first at row 2: served "
        "1.0000001, onnxruntime 1.0, max abs difference 1.19e-07)"
    ]
    assert compare_outputs(outputs, {**served, "label": None}, reference) == [
        "output `label`: missing from the response"
    ]
    as_int32 = served["label"].astype(np.int32)  # type: ignore[union-attr]
    assert compare_outputs(outputs, {**served, "label": as_int32}, reference) == [
        "output `label`: the server returned int32, the spec declares int64"
    ]
    assert compare_outputs(outputs, {**served, "p": changed[:2]}, reference) == [
        "output `p`: the server returned shape [2, 2], expected [3, 2] (onnxruntime: [3, 2])"
    ]


def test_sample_rows_are_cast_to_the_signature(loan: ModelIR) -> None:
    source, frame = load_sample([t.name for t in loan.inputs])
    assert source == "nannyml.load_synthetic_car_loan_dataset() reference"
    arrays = to_inputs(frame, loan.inputs, rows=10)
    assert arrays["car_value"].dtype == np.float32 and arrays["car_value"].shape == (10, 1)
    # bool in NannyML's data, int64 0/1 in the signature
    assert frame["repaid_loan_on_prev_car"].dtype == bool
    assert arrays["repaid_loan_on_prev_car"].dtype == np.int64
    assert set(np.unique(arrays["repaid_loan_on_prev_car"])) <= {0, 1}
    assert arrays["salary_range"].dtype == object
    assert isinstance(arrays["salary_range"][0, 0], bytes)
    assert isinstance(for_onnxruntime(arrays)["salary_range"][0, 0], str)


def test_the_price_model_finds_its_data_set(models: dict[str, ModelIR]) -> None:
    price = models["car-price"]
    source, _ = load_sample([t.name for t in price.inputs])
    assert source == "nannyml.load_synthetic_car_price_dataset() reference"


def test_sample_data_can_come_from_a_file(loan: ModelIR, tmp_path: Path) -> None:
    _, frame = load_sample([t.name for t in loan.inputs])
    csv = tmp_path / "rows.csv"
    frame.head(20).to_csv(csv, index=False)
    source, loaded = load_sample([t.name for t in loan.inputs], str(csv))
    assert source == str(csv) and len(loaded) == 20
    arrays = to_inputs(loaded, loan.inputs)
    assert arrays["repaid_loan_on_prev_car"].dtype == np.int64
    parquet = tmp_path / "rows.parquet"
    frame.head(7).to_parquet(parquet)
    assert len(load_sample([t.name for t in loan.inputs], str(parquet))[1]) == 7


def test_sample_data_problems_name_the_column(loan: ModelIR, tmp_path: Path) -> None:
    frame = pd.DataFrame({"car_value": ["cheap", "dear"]})
    with pytest.raises(SampleDataError, match=r"no column for input.*salary_range"):
        to_inputs(frame, loan.inputs)
    with pytest.raises(SampleDataError, match=r"column `car_value` .* cannot be cast to fp32"):
        to_inputs(frame, loan.inputs[:1])
    (tmp_path / "rows.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(SampleDataError, match="lacks the column"):
        load_sample(["car_value"], str(tmp_path / "rows.csv"))
    with pytest.raises(SampleDataError, match=r"expected a \.parquet or \.csv"):
        load_sample(["car_value"], str(tmp_path / "rows.txt"))


class InProcessTriton:
    """A stand-in for Triton: metadata from the signature, inference by onnxruntime."""

    url = "in-process"
    protocol = "fake"

    def __init__(self, model: ModelIR, served: Signature | None = None) -> None:
        self.signature = served or ir_signature(model)
        path = ROOT / model.served[0].uri
        self.session = reference_session(path)
        self.corrupt: str | None = None
        self.down = False

    def _up(self) -> None:
        if self.down:
            raise ConnectionRefusedError(111, "Connection refused")

    def live(self) -> bool:
        self._up()
        return True

    def ready(self) -> bool:
        return True

    def model_ready(self, model: str, version: str) -> bool:
        return model == self.signature.model

    def metadata(self, model: str, version: str) -> dict[str, Any]:
        return served_metadata(self.signature)

    def infer(
        self, model: str, version: str, arrays: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> dict[str, np.ndarray | None]:
        self._up()
        result: dict[str, np.ndarray | None] = {}
        for name, value in run_reference(self.session, arrays, outputs).items():
            if value.ndim == 1:
                value = value.reshape(-1, 1)
            if name == self.corrupt:
                value = value.copy()
                value.flat[-1] += 1
            result[name] = value
        return result

    def close(self) -> None:
        pass


def loan_arrays(loan: ModelIR, rows: int = 100) -> dict[str, np.ndarray]:
    return to_inputs(load_sample([t.name for t in loan.inputs])[1], loan.inputs, rows)


def test_a_correct_server_passes(loan: ModelIR) -> None:
    server = InProcessTriton(loan)
    references = {1: reference_session(ROOT / loan.served[0].uri)}
    report = smoke(server, ir_signature(loan), references, loan_arrays(loan), 20)
    assert report.ok, report.render()
    assert [c.name for c in report.checks] == [
        "readiness",
        "signature v1",
        "inference v1",
        "latency",
    ]
    assert report.latency_ms["requests"] == 20
    inference = next(c for c in report.checks if c.name == "inference v1")
    assert inference.detail.endswith("equal the in-process reference (onnxruntime), exactly"), (
        inference.detail
    )


class SlowTriton(InProcessTriton):
    """Answers correctly, but every `slow_every`-th inference takes `delay_s` longer."""

    def __init__(self, model: ModelIR, delay_s: float, slow_every: int) -> None:
        super().__init__(model)
        self.delay_s, self.slow_every, self.calls = delay_s, slow_every, 0

    def infer(
        self, model: str, version: str, arrays: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> dict[str, np.ndarray | None]:
        self.calls += 1
        if self.calls % self.slow_every == 0:
            time.sleep(self.delay_s)
        return super().infer(model, version, arrays, outputs)


def test_latency_above_the_ceiling_fails(loan: ModelIR) -> None:
    # 1 request in 10 takes 50 ms more: the p99 of 40 requests is slow, the p50 is not.
    server = SlowTriton(loan, delay_s=0.05, slow_every=10)
    references = {1: reference_session(ROOT / loan.served[0].uri)}
    signature, arrays = ir_signature(loan), loan_arrays(loan)
    report = smoke(server, signature, references, arrays, 40, max_latency_p99_ms=30)
    assert not report.ok
    failed = [c for c in report.checks if not c.ok]
    assert [c.name for c in failed] == ["latency"]
    assert "above the ceiling of 30 ms" in failed[0].detail
    assert report.latency_ms["p99"] > 30 > report.latency_ms["p50"]


def test_latency_within_the_ceiling_passes_and_says_so(loan: ModelIR) -> None:
    references = {1: reference_session(ROOT / loan.served[0].uri)}
    signature, arrays = ir_signature(loan), loan_arrays(loan)
    report = smoke(
        InProcessTriton(loan), signature, references, arrays, 20, max_latency_p99_ms=5000
    )
    assert report.ok, report.render()
    assert report.checks[-1].detail.endswith("within the ceiling of 5000 ms")


def test_a_ceiling_without_latency_requests_fails(loan: ModelIR) -> None:
    # A ceiling nothing was measured against must not read as met.
    references = {1: reference_session(ROOT / loan.served[0].uri)}
    signature, arrays = ir_signature(loan), loan_arrays(loan)
    report = smoke(InProcessTriton(loan), signature, references, arrays, 0, max_latency_p99_ms=10)
    assert not report.ok
    assert report.checks[-1].detail == "a latency ceiling is set, but no latency requests were sent"


@pytest.mark.parametrize("value", ["0", "-1", "nan", "fast"])
def test_the_job_refuses_a_ceiling_that_is_not_positive(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        smoke_main(["--url", "x:1", "--signature", "s.json", "--max-latency-p99-ms", value])
    assert exited.value.code == 2
    assert "--max-latency-p99-ms" in capsys.readouterr().err


def test_a_wrong_result_fails_naming_the_output(loan: ModelIR) -> None:
    server = InProcessTriton(loan)
    server.corrupt = "probabilities"
    references = {1: reference_session(ROOT / loan.served[0].uri)}
    report = smoke(server, ir_signature(loan), references, loan_arrays(loan), 0)
    assert not report.ok
    failed = [c.detail for c in report.checks if not c.ok]
    assert len(failed) == 1 and failed[0].startswith(
        "output `probabilities` differs from onnxruntime in 2 of 200 values (first at row 63: "
        "served 1.98"
    )


def test_a_renamed_served_tensor_fails_naming_it(loan: ModelIR) -> None:
    renamed = dataclasses.replace(
        ir_signature(loan),
        outputs=(Tensor("labels", "int64", (-1,)), loan.outputs[1]),
    )
    server = InProcessTriton(loan, served=renamed)
    references = {1: reference_session(ROOT / loan.served[0].uri)}
    report = smoke(server, ir_signature(loan), references, loan_arrays(loan, 10), 0)
    failed = [c.detail for c in report.checks if not c.ok]
    assert "output `label` of the spec is not served (the server has: labels, probabilities)" in (
        failed
    )
    assert "output `labels` is served but not in the spec" in failed


def test_an_unreachable_server_is_reported(loan: ModelIR) -> None:
    server = InProcessTriton(loan)
    server.down = True
    references = {1: reference_session(ROOT / loan.served[0].uri)}
    report = smoke(server, ir_signature(loan), references, loan_arrays(loan, 10), 0)
    assert [(c.name, c.ok) for c in report.checks] == [("readiness", False)]
    assert report.checks[0].detail == (
        "server liveness (fake in-process): [Errno 111] Connection refused"
    )


def test_nothing_listening_is_reported_quickly(loan: ModelIR) -> None:
    import socket
    import time

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    lines: list[str] = []
    started = time.monotonic()
    code = run(
        ir_signature(loan),
        artifact_sources(loan, ROOT),
        f"127.0.0.1:{port}",
        rows=4,
        timeout=2,
        out=lines.append,
    )
    assert code == 1
    assert time.monotonic() - started < 30
    assert any(
        line.startswith("FAIL readiness: server liveness (http 127.0.0.1:") for line in lines
    )


def test_setup_problems_are_reported(tmp_path: Path) -> None:
    def smoke_cli(*args: str) -> list[str]:
        command = ["smoke", *args, "--url", "127.0.0.1:1", "--specs", str(ROOT / "specs")]
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 1, result.output
        return result.output.splitlines()

    assert smoke_cli("nope")[0].startswith("FAIL setup: no model 'nope'")
    assert smoke_cli("car-loan-default", "--env", "qa")[-1].startswith(
        "FAIL setup: model 'car-loan-default' has no environment 'qa'"
    )

    def failing() -> None:
        raise TimeoutError("timed out")

    server = InProcessTriton.__new__(InProcessTriton)  # only url and protocol are used
    with pytest.raises(SmokeFailure, match=r"^a call \(fake in-process\): timed out$"):
        _call("a call", server, failing)
