"""`kiln monitor MODEL`: the job on local files, its config built from the compiled specs."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from compiler.cli.monitor import COMMANDS
from runtime.examples.monitor_examples import car_price_frames
from tests.tools import REPO_ROOT

ROOT = REPO_ROOT


@pytest.fixture(scope="module")
def kiln() -> click.Group:
    @click.group()
    def group() -> None:
        pass

    for command in COMMANDS:
        group.add_command(command)
    return group


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    reference, analysis = car_price_frames()
    tmp = tmp_path_factory.mktemp("car-price")
    reference.to_parquet(tmp / "reference.parquet")
    analysis.iloc[:24000].to_csv(tmp / "analysis.csv", index=False)
    return str(tmp / "reference.parquet"), str(tmp / "analysis.csv")


def test_print_config(kiln: click.Group, data: tuple[str, str]) -> None:
    args = ["monitor", "car-price", "--specs", str(ROOT / "specs"), "--print-config"]
    result = CliRunner().invoke(kiln, [*args, "--reference", data[0], "--analysis", data[1]])
    assert result.exit_code == 0, result.output
    config = json.loads(result.output)
    assert (config["model"], config["environment"], config["task"]) == (
        "car-price",
        "local",
        "regression",
    )
    assert config["performance"]["estimator"] == "dle"


def test_monitor_runs_the_job_on_local_files(
    kiln: click.Group, data: tuple[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ["monitor", "car-price", "--specs", str(ROOT / "specs"), "--out", str(out)]
    # staging keeps the spec's 7-day lookback (the local overlay reads the whole period)
    args += ["--env", "staging"]
    result = CliRunner().invoke(
        kiln, [*args, "--reference", data[0], "--analysis", data[1], "--no-deliver"]
    )
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["model"] == "car-price" and results["status"] in ("ok", "alerts")
    # the lookback applies to the analysis data given on the command line
    assert results["data"]["analysis"]["rows_read"] == 24000
    assert results["data"]["analysis"]["rows"] < 24000
    assert (out / "report.html").is_file()
    assert f"report: {(out / 'report.html').as_posix()}" in result.output


def test_unknown_model_is_a_usage_error(kiln: click.Group, data: tuple[str, str]) -> None:
    args = ["monitor", "nope", "--specs", str(ROOT / "specs")]
    result = CliRunner().invoke(kiln, [*args, "--reference", data[0], "--analysis", data[1]])
    assert result.exit_code == 2
    assert "no model 'nope' in environment 'local'; known: car-loan-default (local)" in (
        result.output
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example platform with car-price's data in its local data store."""
    import shutil

    root = tmp_path_factory.mktemp("platform")
    shutil.copytree(ROOT / "specs", root / "specs")
    reference, analysis = car_price_frames()
    store = root / ".kiln" / "data" / "car-price"
    store.mkdir(parents=True)
    reference.to_parquet(store / "reference.parquet")
    analysis.iloc[:24000].to_parquet(store / "analysis.parquet")
    return root


def test_monitor_without_flags_reads_the_specs_data_and_alerts_locally(
    kiln: click.Group, project: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ["monitor", "car-price", "--specs", str(project / "specs"), "--out", str(out)]
    result = CliRunner().invoke(kiln, args)  # the working folder is not the project's
    assert result.exit_code == 0, result.output
    assert f"rows from {project.as_posix()}/.kiln/data/car-price/reference.parquet" in result.output
    results = json.loads((out / "results.json").read_text())
    events = (out / "alerts.jsonl").read_text().splitlines()
    assert events and len(events) == len(results["alerts"])
    assert results["deliveries"][0]["kind"] == "local sink"
    assert {json.loads(e)["name"] for e in events} <= {"price-drift", "mae-rise"}
    assert f"local sink: {len(events)} event(s)" in result.output
    assert result.output.count("alert price-drift (warning):") >= 1


def test_monitor_deliver_sends_to_the_routes_even_locally(
    kiln: click.Group, project: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ["monitor", "car-price", "--specs", str(project / "specs"), "--out", str(out)]
    result = CliRunner().invoke(kiln, [*args, "--deliver"])
    # The Slack route's secret is not on this machine: delivery fails, and says so.
    assert result.exit_code == 1
    assert "slack-ml (slack)" in result.output and "local sink" not in result.output
    assert not (out / "alerts.jsonl").exists()
