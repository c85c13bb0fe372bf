"""`kiln new NAME --data FILE ...`: two spec files from a data file, or none."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from compiler.cli import cli
from compiler.spec.documents import FeatureSetDoc
from tests.tools import REPO_ROOT

ROWS = 90
HOSTILE = ["plain", "x\n---\nkind: ClusterRole", "a: {b: c}"]


def _data(path: Path, **extra: list[Any]) -> Path:
    columns = {
        "customer_id": [f"c{i}" for i in range(ROWS)],
        "seen_at": [dt.datetime(2024, 3, 1) + dt.timedelta(minutes=i) for i in range(ROWS)],
        "income": [1000 + 17.5 * i for i in range(ROWS)],
        "segment": [HOSTILE[i % 3] for i in range(ROWS)],
        "churned": [i % 4 == 0 for i in range(ROWS)],
        **extra,
    }
    pa_csv.write_csv(pa.table(columns), path)
    return path


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    shutil.copytree(REPO_ROOT / "specs", tmp_path / "specs")
    return tmp_path / "specs"


def _new(specs: Path, data: Path, *args: str) -> Any:
    return CliRunner().invoke(
        cli,
        ["new", "churn", "--data", str(data), "--target", "churned", "--specs", str(specs), *args],
    )


def test_new_writes_a_featureset_and_a_model_from_the_data(specs: Path, tmp_path: Path) -> None:
    result = _new(specs, _data(tmp_path / "rows.csv"), "--task", "binary_classification")
    assert result.exit_code == 0, result.output
    assert "2 features (1 continuous, 1 categorical), entity customer_id" in result.output
    featureset = YAML(typ="safe").load(specs / "featuresets" / "churn.yaml")
    FeatureSetDoc.model_validate(featureset)  # the spec language accepts it as written
    features = {f["name"]: f for f in featureset["spec"]["features"]}
    assert features["income"]["range"] == {"min": 1000, "max": 2560}
    assert features["segment"]["values"] == sorted(HOSTILE)  # data stays data
    assert featureset["spec"]["source"] == {"uri": "churn/rows.csv", "format": "csv"}
    model = YAML(typ="safe").load(specs / "models" / "churn.yaml")
    inputs = model["spec"]["signature"]["inputs"]
    assert [(i["name"], i["dtype"]) for i in inputs] == [("income", "fp32"), ("segment", "string")]
    assert model["spec"]["monitoring"]["columns"]["score"] == "y_pred_proba"


def test_new_comments_say_where_values_came_from(specs: Path, tmp_path: Path) -> None:
    _new(specs, _data(tmp_path / "rows.csv"), "--task", "binary_classification")
    text = (specs / "models" / "churn.yaml").read_text(encoding="utf-8")
    assert text.startswith("# Binary classification model scaffolded by `kiln new` from rows.csv")
    assert "# No version yet: `kiln run` trains one" in text


def test_the_new_model_validates_and_compiles_before_its_first_version(
    specs: Path, tmp_path: Path
) -> None:
    """No version yet: training and monitoring compile, nothing is served.
    A category holding template syntax is left unlisted, so the scaffold still validates."""
    segments = [["retail", "fleet", "{{workflow.parameters.x}}"][i % 3] for i in range(ROWS)]
    result = _new(
        specs, _data(tmp_path / "rows.csv", segment=segments), "--task", "binary_classification"
    )
    assert "segment: values not listed: some hold text a spec refuses" in result.output
    validated = CliRunner().invoke(cli, ["validate", "--specs", str(specs)])
    assert validated.exit_code == 0, validated.output
    out = tmp_path / "generated"
    compiled = CliRunner().invoke(cli, ["compile", "--specs", str(specs), "--out", str(out)])
    assert compiled.exit_code == 0, compiled.output
    assert (out / "local" / "churn" / "monitor.json").is_file()
    assert (out / "staging" / "churn" / "cronworkflow-churn-monitor.yaml").is_file()
    assert (out / "production" / "churn" / "configmap-churn-monitor-config.yaml").is_file()
    assert not list(out.glob("*/churn/triton")) and not list(out.glob("*/churn/rollout-*"))


def test_new_never_overwrites_a_spec(specs: Path, tmp_path: Path) -> None:
    existing = specs / "models" / "churn.yaml"
    existing.write_text("# mine\n", encoding="utf-8")
    result = _new(specs, _data(tmp_path / "rows.csv"), "--task", "binary_classification")
    assert result.exit_code == 1
    assert "already exist" in result.output and "never overwrites" in result.output
    assert existing.read_text(encoding="utf-8") == "# mine\n"
    assert not (specs / "featuresets" / "churn.yaml").exists()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--task", "regression"], "regression needs a numeric target"),
        (["--task", "binary_classification", "--exclude", "nope"], "--exclude 'nope'"),
        (["--task", "binary_classification", "--id", "income"], None),
    ],
)
def test_bad_input_writes_nothing(
    specs: Path, tmp_path: Path, args: list[str], said: str | None
) -> None:
    result = _new(specs, _data(tmp_path / "rows.csv"), *args)
    if said is None:  # a valid choice, to show the cases above fail for their reason
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 1 and said in result.output
    assert not list(specs.glob("*/churn.yaml"))
    assert not list(specs.glob("*/.churn*"))  # no staged file left behind


def test_a_bad_name_is_a_usage_error(specs: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "new",
            "Churn_Model",
            "--data",
            str(_data(tmp_path / "rows.csv")),
            "--target",
            "x",
            "--task",
            "regression",
            "--specs",
            str(specs),
        ],
    )
    assert result.exit_code == 2 and "is not a model name" in result.output


def test_the_new_model_trains_with_the_builtin_trainer_on_nannymls_multiclass_data(
    specs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`kiln new` writes a `training.trainer` block; `kiln run --local` right after it
    trains a model on NannyML's multiclass credit-card data, passes its gate and publishes."""
    nml = pytest.importorskip("nannyml")
    frame = nml.load_synthetic_multiclass_classification_dataset()[0].head(3000)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    data = tmp_path / "cards.parquet"
    frame.drop(columns=[c for c in frame.columns if c.startswith("y_pred")]).to_parquet(data)
    root = specs.parent
    (root / ".kiln/data/cards").mkdir(parents=True)
    shutil.copy(data, root / ".kiln/data/cards/cards.parquet")
    monkeypatch.chdir(root)
    task = "multiclass_classification"
    created = CliRunner().invoke(
        cli, ["new", "cards", "--data", str(data), "--target", "y_true", "--task", task]
    )
    assert created.exit_code == 0, created.output
    model = YAML(typ="safe").load(specs / "models" / "cards.yaml")
    trainer = model["spec"]["training"]["trainer"]
    assert (trainer["library"], trainer["estimator"]) == ("sklearn", "hist_gradient_boosting")
    assert model["spec"]["training"]["gates"] == [{"metric": "roc_auc", "min": 0.6}]
    ran = CliRunner().invoke(cli, ["run", "cards", "--local"])
    assert ran.exit_code == 0, ran.output
    runs = root / ".kiln/runs/cards/run-1"
    assert "1 of 1 gate(s) passed" in (runs / "evaluate.log").read_text()
    assert "published cards version 1" in ran.output
    # `kiln run --local` publishes where the local environment serves from.
    assert (root / "specs/artifacts/models/cards/1/model.onnx").is_file()
