"""`kiln predict` on the example platform, and the monitor watching what it wrote.

The repository's own specs and real ONNX model; NannyML's car-loan data. The monitor
runs on `kiln predict`'s output as it runs on captured traffic: the same columns.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from click.testing import CliRunner

from compiler.cli import cli

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
REPO = Path(__file__).resolve().parents[4]
SPECS = REPO / "specs"
MODEL = SPECS / "artifacts" / "models" / "car-loan-default" / "1" / "model.onnx"
ANALYSIS_ROWS = 20_000


@pytest.fixture(scope="module")
def car_loan() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(reference, analysis) periods, the analysis without the predictions NannyML ships."""
    import nannyml

    reference, analysis, _ = nannyml.load_synthetic_car_loan_dataset()
    return reference, analysis.drop(columns=["y_pred", "y_pred_proba"]).head(ANALYSIS_ROWS)


def predict(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["predict", "car-loan-default", "--specs", str(SPECS), *args])
    return result.exit_code, result.output


def test_predict_gives_what_onnxruntime_gives_in_process(
    tmp_path: Path, car_loan: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    _, analysis = car_loan
    source, output = tmp_path / "analysis.parquet", tmp_path / "scored.parquet"
    analysis.to_parquet(source, index=False)
    code, printed = predict("--input", str(source), "--output", str(output), "--chunk-rows", "6000")
    assert code == 0, printed
    assert f"{ANALYSIS_ROWS:,} rows scored" in printed  # the progress line
    assert "digest checked" in printed  # the spec pins the artifact's sha256
    session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    feeds = {
        i.name: (
            analysis[i.name].astype(str).to_numpy(dtype=object)
            if i.type == "tensor(string)"
            else analysis[i.name].to_numpy().astype(np.float32 if "float" in i.type else np.int64)
        ).reshape(-1, 1)
        for i in session.get_inputs()
    }
    labels, probabilities = session.run(["label", "probabilities"], feeds)
    scored = pd.read_parquet(output)
    assert np.array_equal(scored["y_pred"].to_numpy(), labels)
    assert np.array_equal(scored["y_pred_proba"].to_numpy(), probabilities[:, 1].astype(float))


def test_a_regression_model_writes_its_value_as_the_prediction(tmp_path: Path) -> None:
    import nannyml

    analysis = nannyml.load_synthetic_car_price_dataset()[1].head(5_000)
    analysis = analysis.drop(columns=["y_pred"], errors="ignore")
    source, output = tmp_path / "listings.csv", tmp_path / "priced.parquet"
    analysis.to_csv(source, index=False)  # CSV in: each chunk's types come from the text
    result = CliRunner().invoke(
        cli,
        [
            *("predict", "car-price", "--specs", str(SPECS), "--chunk-rows", "1500"),
            *("--input", str(source), "--output", str(output)),
        ],
    )
    assert result.exit_code == 0, result.output
    model = SPECS / "artifacts" / "models" / "car-price" / "1" / "model.onnx"
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    written = pd.read_csv(source)
    feeds = {
        i.name: (
            written[i.name].astype(str).to_numpy(dtype=object)
            if i.type == "tensor(string)"
            else written[i.name].to_numpy().astype(np.float32)
        ).reshape(-1, 1)
        for i in session.get_inputs()
    }
    expected = session.run(None, feeds)[0].reshape(-1).astype(float)
    scored = pd.read_parquet(output)
    assert np.array_equal(scored["y_pred"].to_numpy(), expected)
    assert "score" not in scored.columns and len(scored) == 5_000


def test_predict_refuses_an_undeclared_version(tmp_path: Path) -> None:
    code, printed = predict("--input", "x.parquet", "--output", "y.parquet", "--version", "7")
    assert code == 2
    assert "no version 7; declared versions: 1" in printed


def test_the_monitor_watches_batch_predictions(
    tmp_path: Path, car_loan: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    reference, analysis = car_loan
    source, predictions = tmp_path / "analysis.parquet", tmp_path / "predictions"
    analysis.to_parquet(source, index=False)
    code, printed = predict("--input", str(source), "--output", str(predictions))
    assert code == 0, printed
    reference_file = tmp_path / "reference.parquet"
    reference.to_parquet(reference_file, index=False)
    out = tmp_path / "monitor"
    # A copy of the platform: the local data store (and any labels a person or another
    # test wrote there) is the project's, and this test must not depend on it.
    specs = tmp_path / "platform" / "specs"
    shutil.copytree(SPECS, specs)
    result = CliRunner().invoke(
        cli,
        [
            *("monitor", "car-loan-default", "--specs", str(specs)),
            *("--reference", str(reference_file), "--analysis", str(predictions)),
            *("--out", str(out), "--no-deliver"),
        ],
    )
    results = json.loads((out / "results.json").read_text())
    assert result.exit_code == 0, results["error"]
    assert results["status"] in ("ok", "alerts")  # every calculator ran on the batch rows
    assert results["data"]["analysis"]["rows"] == ANALYSIS_ROWS
    assert results["data"]["analysis"]["files"] == 1  # the committed part, not the marker


def test_an_output_that_overlaps_the_input_is_refused_and_the_input_kept(
    tmp_path: Path, car_loan: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    _, analysis = car_loan
    source = tmp_path / "analysis.parquet"
    analysis.head(100).to_parquet(source, index=False)
    before = source.read_bytes()
    code, printed = predict("--input", str(source), "--output", str(source))
    assert code == 2 and "overlaps --input" in printed
    folder = tmp_path / "in"
    folder.mkdir()
    analysis.head(100).to_parquet(folder / "part-0.parquet", index=False)
    code, printed = predict("--input", str(folder), "--output", str(folder / "scored"))
    assert code == 2 and "overlaps --input" in printed
    assert source.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["part-0.parquet"]


def test_an_ensemble_or_a_tree_model_is_refused_by_name() -> None:
    runner = CliRunner()
    ensemble = runner.invoke(
        cli,
        ["predict", "car-price-pipeline", "--specs", str(SPECS), "--input", "a", "--output", "b"],
    )
    assert ensemble.exit_code == 2 and "is an ensemble" in ensemble.output
    tree = runner.invoke(
        cli, ["predict", "car-price-gbm", "--specs", str(SPECS), "--input", "a", "--output", "b"]
    )
    assert tree.exit_code == 2 and "a lightgbm model" in tree.output


@pytest.fixture
def no_aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine with no AWS credentials anywhere botocore looks (and no metadata service)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


ARTIFACT = "s3://acme-models/car-loan-default/1/model.onnx"  # staging's store


@pytest.mark.usefixtures("no_aws")
def test_a_cloud_store_without_credentials_names_the_store_and_what_to_set(
    tmp_path: Path, car_loan: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    source, output = tmp_path / "analysis.parquet", tmp_path / "out" / "scored.parquet"
    car_loan[1].head(10).to_parquet(source, index=False)
    output.parent.mkdir()
    code, printed = predict("--env", "staging", "--input", str(source), "--output", str(output))
    assert code == 2
    assert printed == (
        f"batch: error: cannot reach the model artifact {ARTIFACT}: no AWS credentials were "
        "found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE naming a "
        "profile of ~/.aws/credentials, or run where an IAM role provides them\n"
    )
    assert list(output.parent.iterdir()) == []


@pytest.mark.usefixtures("no_aws")
def test_half_a_key_pair_is_named_by_its_missing_variable_and_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_id = "AKIAQ3EGRKJS7UEXAMPL"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    source = tmp_path / "rows.parquet"
    code, printed = predict("--env", "staging", "--input", str(source), "--output", "x.parquet")
    assert code == 2
    assert f"cannot reach the model artifact {ARTIFACT}: its AWS credentials are incomplete" in (
        printed
    )
    assert "missing: AWS_SECRET_ACCESS_KEY" in printed
    assert key_id not in printed and key_id[:8] not in printed
