"""The monitor job end to end on a few thousand rows: outputs, failures, exit codes."""

from __future__ import annotations

import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from runtime.contract.monitor_config import MonitorConfig, config_text
from runtime.examples.monitor_examples import car_loan_config, car_loan_frames, with_updates
from runtime.monitor.job import Progress, main, run_job
from runtime.monitor.output import RESULTS_SCHEMA, Run
from runtime.monitor.tidy import TIDY_COLUMNS

HOOK = [{"name": "hook", "webhook": {"url": "http://127.0.0.1:9/never"}}]
RULES = [
    {"name": "feature-drift", "signal": "drift", "severity": "warning", "route": "hook"},
    {
        "name": "auc-drop",
        "signal": "estimated_performance",
        "metric": "roc_auc",
        "below": 0.8,
        "severity": "critical",
        "route": "hook",
    },
]
SAMPLE = re.compile(
    r'^kiln_monitor_[a-z_]+\{([a-z_]+="(?:[^"\\\n]|\\.)*",)*[a-z_]+="(?:[^"\\\n]|\\.)*"\} '
    r"(-?[0-9.e+-]+|NaN|[+-]Inf)$"
)


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    reference, analysis = car_loan_frames()
    # 3,000 reference rows; 3,000 analysis rows of which the second half drifts
    return reference.head(3000), pd.concat([analysis.iloc[:1500], analysis.iloc[30000:31500]])


def _config(tmp: Path, reference: pd.DataFrame, analysis: pd.DataFrame, **updates: Any) -> Any:
    reference.to_parquet(tmp / "reference.parquet")
    analysis.to_parquet(tmp / "analysis.parquet")
    base = {
        "reference": {"uri": str(tmp / "reference.parquet"), "format": "parquet"},
        "analysis": {"uri": str(tmp / "analysis.parquet"), "format": "parquet"},
        "chunking": {"size": 500},
        "alerts": RULES,
        "routes": HOOK,
    }
    return car_loan_config(**{**base, **updates})


def _run(config: MonitorConfig, out: Path) -> Run:
    return run_job(config, out, progress=Progress(None), deliver=False)


@pytest.fixture(scope="module")
def finished(
    frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Run, Path]:
    tmp = tmp_path_factory.mktemp("job")
    return _run(_config(tmp, *frames), tmp / "out"), tmp / "out"


def test_results_json_is_sorted_and_complete(finished: tuple[Run, Path]) -> None:
    run, out = finished
    text = (out / "results.json").read_text()
    results = json.loads(text)
    assert text == json.dumps(results, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert results["schema"] == RESULTS_SCHEMA
    assert set(results) == {
        "alerts",
        "calculators",
        "chunks",
        "data",
        "deliveries",
        "environment",
        "error",
        "exit_code",
        "model",
        "run",
        "schema",
        "signals",
        "status",
        "task",
        "version",
    }
    assert (results["status"], results["exit_code"], results["error"]) == ("alerts", 0, None)
    assert [c["name"] for c in results["calculators"]] == [o.name for o in run.outcomes]
    assert all(c["status"] == "ok" and c["file"] for c in results["calculators"])
    assert [c["rows"] for c in results["chunks"]] == [500] * 6
    assert results["data"]["analysis"]["rows"] == 3000
    drift = results["signals"]["drift"]
    assert {r["subject"] for r in drift} == {f.name for f in run.config.columns.features}
    assert set(drift[0]) == {
        "subject",
        "method",
        "chunk_index",
        "chunk_key",
        "chunk_start",
        "chunk_end",
        "chunk_rows",
        "value",
        "lower_threshold",
        "upper_threshold",
        "alert",
        "lower_confidence",
        "upper_confidence",
        "note",
    }
    assert len(results["alerts"]) == len(run.events) > 0
    assert results["alerts"][0]["dedup_key"] == run.events[0].dedup_key


def test_one_tidy_parquet_per_calculator(finished: tuple[Run, Path]) -> None:
    run, out = finished
    for outcome in run.outcomes:
        table = pd.read_parquet(out / f"{outcome.name}.parquet")
        assert list(table.columns) == TIDY_COLUMNS
        assert set(table["period"]) == {"reference", "analysis"}
        assert (table["signal"] == outcome.signal).all()


def test_prometheus_metrics(finished: tuple[Run, Path]) -> None:
    _, out = finished
    text = (out / "metrics.prom").read_text()
    families = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            families.add(line.split()[2])
        elif not line.startswith("# HELP "):
            assert SAMPLE.match(line), line
    assert {
        "kiln_monitor_drift_alert",
        "kiln_monitor_drift_value",
        "kiln_monitor_estimated_performance",
        "kiln_monitor_realized_performance",
        "kiln_monitor_last_run_timestamp_seconds",
        "kiln_monitor_alert_events",
    } <= families
    assert re.search(
        r'^kiln_monitor_drift_alert\{environment="local",feature="car_value",'
        r'method="jensen_shannon",model="car-loan-default"\} 1\.0$',
        text,
        re.M,
    )
    assert re.search(
        r'^kiln_monitor_estimated_performance\{environment="local",method="cbpe",metric="roc_auc",'
        r'model="car-loan-default"\} 0\.9\d+$',
        text,
        re.M,
    )


def test_report_is_self_contained_and_leads_with_the_state(finished: tuple[Run, Path]) -> None:
    run, out = finished
    html = (out / "report.html").read_text()
    # nothing is fetched: no script, style or image comes from elsewhere
    assert not re.findall(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=", html)
    assert "Plotly.newPlot" in html and len(html) > 3_000_000  # plotly.js itself is inlined
    # The figures (univariate drift drawn by Kiln, the rest by NannyML); data quality ones
    # only where some value is not zero
    drawn = [o.name for o in run.outcomes if o.figure is not None]
    assert drawn == [
        "univariate_drift",
        "multivariate_drift",
        "estimated_performance",
        "realized_performance",
    ]
    assert html.count('<div class="figure">') == len(drawn)
    banner = html.index('class="banner alerts"')
    assert (
        banner
        < html.index("State of the model")
        < html.index("<h2>Alerts")
        < html.index("<h2>Figures")
    )
    assert "feature-drift" in html[: html.index("<h2>Figures")]


def test_progress_shows_one_line_per_calculator(
    frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, *frames, drift=None, data_quality=None, alerts=[], routes=[])
    run_job(config, tmp_path / "out", deliver=False)
    lines = capsys.readouterr().err.splitlines()
    steps = [line.split()[2] for line in lines]
    assert steps == [
        "reference",
        "analysis",
        "chunks",
        "estimated_performance",
        "realized_performance",
        "alerts",
        "delivery",
        "outputs",
        "done",
    ]
    assert re.search(r"estimated_performance\s+ok\s+\d+\.\d\d s  cbpe: roc_auc, f1", lines[3])


def test_the_cli_entry_point(finished: tuple[Run, Path], tmp_path: Path) -> None:
    run, _ = finished
    config_file = tmp_path / "monitor.json"
    config = with_updates(run.config, alerts=[], routes=[], drift=None, data_quality=None)
    config_file.write_text(config_text(config))
    assert main(["--config", str(config_file), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    assert json.loads((tmp_path / "o" / "results.json").read_text())["status"] == "ok"
    (tmp_path / "bad.json").write_text('{"model": "x"}')
    assert main(["--config", str(tmp_path / "bad.json"), "--out", str(tmp_path / "o")]) == 2


# --- failures ---------------------------------------------------------------------------------


def test_a_feature_without_values_in_a_chunk_fails_the_calculator(
    frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    reference, analysis = frames
    broken = analysis.copy()
    broken.iloc[:500, broken.columns.get_loc("car_value")] = np.nan
    run = _run(_config(tmp_path, reference, broken, data_quality=None), tmp_path / "out")
    assert (run.status, run.exit_code) == ("failed", 1)
    (failed,) = run.failed_calculators
    assert failed.name == "univariate_drift"
    assert failed.message is not None and failed.message.startswith(
        "jensen_shannon of feature 'car_value' is undefined in chunk [0:499] (500 rows): "
        "the feature has no values there"
    )
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["status"] == "failed"
    assert "drift" not in results["signals"]  # nothing half-computed is reported
    # the other calculators still ran and their alerts still count
    assert {o.name: o.status for o in run.outcomes}["estimated_performance"] == "ok"


def test_a_reference_of_one_chunk_is_refused(
    frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    config = _config(tmp_path, *frames, chunking={"size": 5000})
    run = _run(config, tmp_path / "out")
    assert run.exit_code == 1 and run.error is not None
    assert run.error["stage"] == "chunking"
    assert "makes 1 chunk with chunking by size 5000" in run.error["message"]
    assert "NannyML would set a threshold of 0 and alert on every chunk" in run.error["message"]
    metrics = (tmp_path / "out" / "metrics.prom").read_text()
    assert 'kiln_monitor_last_run_success{environment="local",model="car-loan-default"} 0.0' in (
        metrics
    )


def test_more_chunks_than_rows(frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path) -> None:
    reference, analysis = frames
    config = _config(tmp_path, reference, analysis.head(5), chunking={"count": 10})
    run = _run(config, tmp_path / "out")
    assert run.error is not None and run.error["stage"] == "chunking"
    assert "cannot be chunked by count 10" in run.error["message"]


def test_a_data_error_reaches_the_report_escaped(
    frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    reference, analysis = frames
    # A header nearly equal to a declared column is the one part of a file the job
    # shows (as a suggestion); it reaches the report as text.
    hostile = analysis.drop(columns="car_value").assign(**{"car_value</a>": 1})
    run = _run(_config(tmp_path, reference, hostile), tmp_path / "out")
    assert (
        run.error is not None
        and "lacks the declared column(s) 'car_value'" in (run.error["message"])
    )
    html = (tmp_path / "out" / "report.html").read_text()
    assert "car_value&lt;/a&gt;" in html
    assert "car_value</a>" not in html


# --- other paths --------------------------------------------------------------------------


@pytest.mark.slow
def test_domain_classifier_keeps_the_full_data_chunks_within_a_row_budget(
    frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    # Two chunks per period keep it short: the classifier trains 5 folds per chunk. On a
    # busy machine LightGBM's OpenMP threads wait on each other in such tiny fits: one
    # thread here (threadpoolctl), as a CPU-limited pod gets from the job's own cap.
    drift = {"multivariate": {"method": "domain_classifier", "max_rows": 1200}}
    config = _config(
        tmp_path,
        *frames,
        chunking={"size": 1500},
        drift=drift,
        performance=None,
        data_quality=None,
        alerts=[],
        routes=[],
    )
    with threadpool_limits(1, user_api="openmp"):
        run = _run(config, tmp_path / "out")
    assert run.status == "ok", run.failed_calculators and run.failed_calculators[0].message
    table = run.tables()["multivariate_drift"]
    analysis = table[table["period"] == "analysis"]
    assert list(analysis["chunk_key"]) == [c.key for c in run.chunks]
    assert list(analysis["chunk_rows"]) == [1500] * 2  # the full chunks, not the sample
    assert analysis["note"].iloc[0] == "sampled 1200 reference and 1200 analysis rows"
    assert analysis["value"].between(0, 1).all()


def test_period_chunks_and_csv(frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path) -> None:
    reference, analysis = frames
    reference.to_csv(tmp_path / "reference.csv", index=False)
    analysis.to_csv(tmp_path / "analysis.csv", index=False)
    config = car_loan_config(
        reference={"uri": str(tmp_path / "reference.csv"), "format": "csv"},
        analysis={"uri": str(tmp_path / "analysis.csv"), "format": "csv"},
        chunking={"period": "W"},
        drift={
            "univariate": {
                "continuous": ["kolmogorov_smirnov"],
                "categorical": ["l_infinity"],
                "threshold": {"std": 2},
            }
        },
        performance=None,
    )
    run = _run(config, tmp_path / "out")
    assert run.status == "ok", run.error or run.failed_calculators[0].message
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d/\d{4}-\d\d-\d\d", c.key) for c in run.chunks)
    drift = run.tables()["drift"]
    assert set(drift["method"]) == {"kolmogorov_smirnov", "l_infinity"}


def test_multiclass_cbpe_with_a_score_column_per_class(tmp_path: Path) -> None:
    os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"
    import nannyml as nml

    reference, analysis, targets = nml.load_synthetic_multiclass_classification_dataset()
    classes = ["highstreet_card", "prepaid_card", "upmarket_card"]
    config = MonitorConfig.model_validate(
        {
            "model": "card-tier",
            "environment": "local",
            "version": 3,
            "task": "multiclass_classification",
            "columns": {
                "timestamp": "timestamp",
                "prediction": "y_pred",
                "target": "y_true",
                "score": {c: f"y_pred_proba_{c}" for c in classes},
                "features": [
                    {"name": "acq_channel", "dtype": "string", "kind": "categorical"},
                    {"name": "app_behavioral_score", "dtype": "float64", "kind": "continuous"},
                    {"name": "is_customer", "dtype": "bool", "kind": "categorical"},
                ],
            },
            "reference": {"uri": str(tmp_path / "r.parquet"), "format": "parquet"},
            "analysis": {"uri": str(tmp_path / "a.parquet"), "format": "parquet"},
            "chunking": {"size": 1000},
            "performance": {"estimator": "cbpe", "metrics": ["roc_auc", "f1"]},
        }
    )
    reference.head(6000).to_parquet(tmp_path / "r.parquet")
    analysis.head(3000).to_parquet(tmp_path / "a.parquet")
    run = _run(config, tmp_path / "out")
    assert run.status == "ok", run.error or run.failed_calculators[0].message
    estimated = run.tables()["estimated_performance"]
    assert estimated[estimated["period"] == "analysis"]["value"].between(0, 1).all()
    assert [o.status for o in run.outcomes] == ["ok", "skipped"]  # no analysis targets
    assert run.outcomes[1].message == "the analysis data has no values of target 'y_true' yet"
    del targets


def test_metrics_are_pushed_to_a_pushgateway(
    frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    received: list[tuple[str, str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        config = _config(tmp_path, *frames, drift=None, data_quality=None, alerts=[], routes=[])
        run_job(config, tmp_path / "out", progress=Progress(None), pushgateway=url)
    finally:
        server.shutdown()
        server.server_close()
    ((path, content_type, body),) = received
    assert path == "/metrics/job/kiln_monitor/model/car-loan-default/environment/local"
    assert content_type.startswith("text/plain")
    assert body.decode() == (tmp_path / "out" / "metrics.prom").read_text()


def test_data_quality_problems_fire_their_rules(
    frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    reference, analysis = frames
    broken = analysis.copy().reset_index(drop=True)
    broken.loc[2600:2699, "car_value"] = np.nan  # missing in the last chunk
    broken.loc[2500:2509, "debt_to_income_ratio"] = 1.5  # outside the declared [0, 1]
    broken.loc[2500:2504, "salary_range"] = "90K+ €"  # never seen, never declared
    rules = [
        {"name": name, "signal": name.replace("-", "_"), "severity": "info", "route": "hook"}
        for name in ("missing-values", "unseen-values", "range")
    ]
    run = _run(_config(tmp_path, reference, broken, alerts=rules), tmp_path / "out")
    assert run.status == "alerts", run.error or run.failed_calculators
    fired = {(e.name, e.feature, e.chunk_key, round(e.value, 4)) for e in run.events}
    assert fired == {
        ("missing-values", "car_value", "[2500:2999]", 0.2),
        ("unseen-values", "salary_range", "[2500:2999]", 0.01),
        ("range", "debt_to_income_ratio", "[2500:2999]", 0.02),
        ("range", "salary_range", "[2500:2999]", 0.01),
    }
    drawn = {o.name for o in run.outcomes if o.figure is not None}
    assert {"missing_values", "unseen_values", "range"} <= drawn
