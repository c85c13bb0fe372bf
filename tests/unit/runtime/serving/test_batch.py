"""The batch scorer: serving's artifact checks, chunked scoring, all-or-nothing output.

Runs the job's own entry point (`main`, as the Argo pod does) on NannyML's car-loan
analysis period with the example platform's real ONNX model, and compares with
onnxruntime called in process on the same rows. Failures are real: a wrong digest, a
bundle signed by an untrusted key, a row the signature refuses in a later chunk.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from runtime.contract.batch import SUCCESS, BatchColumns
from runtime.contract.outputs import output_roles
from runtime.contract.signing import Trust
from runtime.serving.batch import main
from tests.keys import key_pair
from tests.unit.runtime.serving.test_assemble import LOAN, LOAN_SHA
from tests.unit.runtime.serving.test_assemble_signatures import signed  # noqa: F401 fixture

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")

INPUTS = {
    "car_value": "fp32",
    "salary_range": "string",
    "debt_to_income_ratio": "fp32",
    "loan_length": "fp32",
    "repaid_loan_on_prev_car": "int64",
    "size_of_downpayment": "string",
    "driver_tenure": "fp32",
}
SIGNATURE = {
    "inputs": [{"name": n, "dtype": d, "shape": [-1, 1]} for n, d in INPUTS.items()],
    "outputs": [
        {"name": "label", "dtype": "int64", "shape": [-1]},
        {"name": "probabilities", "dtype": "fp32", "shape": [-1, 2]},
    ],
    "max_batch_size": 64,
    "model": "car-loan-default",
}
COLUMNS = BatchColumns(tuple(INPUTS), "timestamp", "timestamp", "id", "y_pred", "y_pred_proba")


@pytest.fixture(scope="module")
def analysis() -> pd.DataFrame:
    """NannyML's car-loan analysis period, without the predictions it ships with."""
    import nannyml

    frame = nannyml.load_synthetic_car_loan_dataset()[1]
    return frame.drop(columns=["y_pred", "y_pred_proba"])


def in_process(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(labels, P(repaid)) from onnxruntime called directly on the same rows."""
    session = ort.InferenceSession(str(LOAN), providers=["CPUExecutionProvider"])
    feeds = {}
    for name, dtype in INPUTS.items():
        column = frame[name]
        if dtype == "string":
            values = column.astype(str).to_numpy(dtype=object)
        else:
            values = column.to_numpy().astype(np.float32 if dtype == "fp32" else np.int64)
        feeds[name] = values.reshape(-1, 1)
    labels, probabilities = session.run(["label", "probabilities"], feeds)
    return labels, probabilities[:, 1]


def score(source: Path, output: Path, *flags: str) -> int:
    return main(
        [
            *("--model", str(LOAN), "--signature", json.dumps(SIGNATURE)),
            *("--task", "binary_classification", "--columns", COLUMNS.to_json()),
            *("--input", str(source), "--output", str(output)),
            *flags,
        ],
        progress=lambda _: None,
    )


def test_predictions_equal_onnxruntime_in_process(tmp_path: Path, analysis: pd.DataFrame) -> None:
    source = tmp_path / "analysis.parquet"
    analysis.to_parquet(source, index=False)
    output = tmp_path / "scored.parquet"
    assert score(source, output, "--sha256", LOAN_SHA, "--chunk-rows", "7000") == 0
    scored = pd.read_parquet(output)
    labels, probability = in_process(analysis)
    assert len(scored) == len(analysis) == 50_000
    assert np.array_equal(scored["y_pred"].to_numpy(), labels)
    assert np.array_equal(scored["y_pred_proba"].to_numpy(), probability.astype(np.float64))
    assert scored["id"].tolist() == analysis["id"].tolist()
    assert list(scored.columns) == list(COLUMNS.written)


def test_a_row_the_signature_refuses_leaves_no_output_file(
    tmp_path: Path, analysis: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = analysis.head(25_000).copy()
    # The model takes int64 here: a missing value in the third chunk cannot be fed.
    broken["repaid_loan_on_prev_car"] = broken["repaid_loan_on_prev_car"].astype("Int64")
    broken.loc[21_234, "repaid_loan_on_prev_car"] = pd.NA
    source = tmp_path / "broken.parquet"
    broken.to_parquet(source, index=False)
    output = tmp_path / "out" / "scored.parquet"
    output.parent.mkdir()
    assert score(source, output, "--chunk-rows", "10000") == 1
    assert "repaid_loan_on_prev_car" in capsys.readouterr().err
    assert list(output.parent.iterdir()) == []  # no output, no temporary part left


def test_a_folder_output_gets_a_whole_run_with_its_marker_or_nothing(
    tmp_path: Path, analysis: pd.DataFrame
) -> None:
    rows = analysis.head(12_000)
    good, bad = tmp_path / "good.parquet", tmp_path / "bad.csv"
    rows.to_parquet(good, index=False)
    rows.assign(car_value=["x"] * len(rows)).to_csv(bad, index=False)
    output = tmp_path / "predictions"
    assert score(good, output, "--run", "first", "--chunk-rows", "5000") == 0
    assert score(bad, output, "--run", "second", "--chunk-rows", "5000") == 1
    assert sorted(p.name for p in output.iterdir()) == ["run=first"]
    run = output / "run=first"
    marker = json.loads((run / SUCCESS).read_text())
    assert marker["rows"] == 12_000 and marker["parts"] == ["part-00000.parquet"]
    assert len(pd.read_parquet(run / "part-00000.parquet")) == 12_000


def test_a_wrong_digest_is_refused_before_any_row_is_read(
    tmp_path: Path, analysis: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "rows.parquet"
    analysis.head(10).to_parquet(source, index=False)
    output = tmp_path / "scored.parquet"
    assert score(source, output, "--sha256", "0" * 64) == 1
    assert "sha256 mismatch" in capsys.readouterr().err
    assert not output.exists()


def test_input_without_a_signature_column_is_refused_by_name(
    tmp_path: Path, analysis: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "rows.parquet"
    analysis.head(10).drop(columns=["loan_length"]).to_parquet(source, index=False)
    assert score(source, tmp_path / "scored.parquet") == 1
    assert "lacks the column(s) loan_length" in capsys.readouterr().err


def test_a_signed_model_is_verified_like_serving_verifies_it(
    tmp_path: Path,
    analysis: pd.DataFrame,
    signed: dict[str, Path | str],  # noqa: F811 the fixture
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "rows.parquet"
    analysis.head(100).to_parquet(source, index=False)
    trusted = Path(signed["trust"]).read_text()
    flags = ("--bundle", str(signed["bundle"]), "--trust", trusted)
    assert score(source, tmp_path / "ok.parquet", *flags) == 0
    _, foreign = key_pair(tmp_path / "stranger")  # a real key that signed nothing here
    stranger = Trust(public_keys=(foreign,), require_signatures=True).to_json()
    refused = tmp_path / "refused.parquet"
    assert score(source, refused, "--bundle", str(signed["bundle"]), "--trust", stranger) == 1
    assert "no trusted signer verifies it" in capsys.readouterr().err
    assert not refused.exists()
    unsigned = tmp_path / "unsigned.parquet"
    assert score(source, unsigned, "--trust", trusted) == 1
    assert "requires signatures" in capsys.readouterr().err


def test_multiclass_predictions_are_class_labels_with_a_score_per_class(tmp_path: Path) -> None:
    """A real scikit-learn classifier exported to ONNX: the prediction is the label the
    monitor keys its score columns by, and each class's probability is its column."""
    import skl2onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    labels = rng.permutation(np.repeat(["bus", "car", "tram"], 300))
    centre = {"bus": 0.0, "car": 2.0, "tram": 4.0}
    x = np.array([centre[label] for label in labels]) + rng.normal(0.0, 0.8, len(labels))
    frame = pd.DataFrame(
        {
            "trip": np.arange(len(labels)),
            "x": x.astype(np.float32),
            "at": pd.date_range("2026-01-01", periods=len(labels), freq="min"),
        }
    )
    classifier = LogisticRegression().fit(frame[["x"]], labels)
    proto = skl2onnx.convert_sklearn(
        classifier,
        initial_types=[("x", FloatTensorType([None, 1]))],
        options={id(classifier): {"zipmap": False}},
        target_opset=17,
    )
    model = tmp_path / "model.onnx"
    model.write_bytes(proto.SerializeToString())
    source, output = tmp_path / "trips.parquet", tmp_path / "scored.parquet"
    frame.to_parquet(source, index=False)
    signature = {
        "inputs": [{"name": "x", "dtype": "fp32", "shape": [-1, 1]}],
        "outputs": [
            {"name": "label", "dtype": "string", "shape": [-1]},
            {"name": "probabilities", "dtype": "fp32", "shape": [-1, 3]},
        ],
    }
    scores = (("bus", "p_bus"), ("car", "p_car"), ("tram", "p_tram"))
    columns = BatchColumns(("x",), "at", "seen_at", "trip", "y_pred", scores)
    flags = ["--model", str(model), "--signature", json.dumps(signature)]
    flags += ["--task", "multiclass_classification", "--columns", columns.to_json()]
    flags += ["--input", str(source), "--output", str(output), "--chunk-rows", "250"]
    assert main(flags, progress=lambda _: None) == 0
    scored = pd.read_parquet(output)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    expected_labels, probabilities = session.run(None, {"x": frame[["x"]].to_numpy()})
    assert scored["y_pred"].tolist() == list(expected_labels)
    for index, (_, column) in enumerate(scores):
        assert np.array_equal(scored[column].to_numpy(), probabilities[:, index].astype(float))
    assert scored["seen_at"].equals(frame["at"].astype(scored["seen_at"].dtype))


def test_a_signature_that_does_not_fit_the_task_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, analysis: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "analysis.parquet"
    analysis.head(100).to_parquet(source, index=False)
    output = tmp_path / "out" / "scored.parquet"
    output.parent.mkdir()
    # The car-loan signature has no float output of one value per row: no regression.
    flags = ["--task", "regression"]
    code = main(
        [
            *("--model", str(LOAN), "--signature", json.dumps(SIGNATURE), *flags),
            *("--columns", COLUMNS.to_json(), "--input", str(source), "--output", str(output)),
        ],
        progress=lambda _: None,
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err == (
        "batch: error: the signature does not fit --task regression: regression needs a "
        "float output with one value per row\n"
    )
    assert list(output.parent.iterdir()) == []


def test_the_output_roles_are_worked_out_once_per_run_not_per_chunk(
    tmp_path: Path, analysis: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runtime.serving.batch as batch

    calls = []

    def counted(signature: Any, task: str) -> Any:
        calls.append(task)
        return output_roles(signature, task)

    monkeypatch.setattr(batch, "output_roles", counted)
    source = tmp_path / "analysis.parquet"
    analysis.head(3_000).to_parquet(source, index=False)
    assert score(source, tmp_path / "scored.parquet", "--chunk-rows", "1000") == 0
    assert calls == ["binary_classification"]
