"""Alert delivery: payloads, secrets, retries with backoff, and failures that fail the job.

Receivers are real HTTP servers on 127.0.0.1 (http.server in a thread) that answer with a
scripted sequence of status codes.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from runtime.contract.monitor_config import SecretRef, Secrets, config_text
from runtime.contract.secret_http import secret_safe
from runtime.examples.monitor_examples import car_loan_config, car_loan_frames
from runtime.monitor import alerts
from runtime.monitor.job import Progress, main, run_job
from runtime.monitor.rules import AlertEvent


class Receiver:
    """An HTTP endpoint answering POSTs with scripted statuses (the last one repeats)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.requests: list[dict[str, Any]] = []  # every request
        self.accepted: list[Any] = []  # bodies answered with 2xx
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = (
                    receiver.statuses.pop(0)
                    if len(receiver.statuses) > 1
                    else (receiver.statuses[0])
                )
                receiver.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": json.loads(body)}
                )
                if 200 <= status < 300:
                    receiver.accepted.append(json.loads(body))
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"{}" if status < 300 else b"try later")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def _event(**overrides: Any) -> AlertEvent:
    fields: dict[str, Any] = {
        "name": "feature-drift",
        "severity": "warning",
        "route": "hook",
        "model": "car-loan-default",
        "environment": "local",
        "version": 1,
        "signal": "drift",
        "feature": "car_value",
        "metric": None,
        "method": "jensen_shannon",
        "chunk_key": "[0:999]",
        "chunk_index": 0,
        "chunk_start": "2019-01-01T00:00:00Z",
        "chunk_end": "2019-01-31T23:00:00Z",
        "value": 0.4,
        "threshold_lower": None,
        "threshold_upper": 0.035,
        "threshold_source": "nannyml",
        "dedup_key": "ab" * 32,
        "summary": "car-loan-default (local, v1): drift of feature car_value is 0.4",
    }
    fields.update(overrides)
    return AlertEvent(**fields)


def _config(route: dict[str, Any], **delivery: Any) -> Any:
    rule = {"name": "feature-drift", "signal": "drift", "severity": "warning", "route": "hook"}
    timing = {"attempts": 4, "backoff_seconds": 0.5, "timeout_seconds": 5, **delivery}
    return car_loan_config(alerts=[rule], routes=[{"name": "hook", **route}], delivery=timing)


def test_a_receiver_that_fails_twice_then_succeeds_gets_the_alert_once() -> None:
    waits: list[float] = []
    with Receiver([503, 500, 200]) as receiver:
        config = _config({"webhook": {"url": receiver.url + "/alerts"}})
        records = alerts.deliver(config, [_event()], sleep=waits.append)
    assert len(receiver.requests) == 3
    assert len(receiver.accepted) == 1
    assert [e["dedup_key"] for e in receiver.accepted[0]["events"]] == ["ab" * 32]
    assert waits == [0.5, 1.0]  # exponential backoff
    (record,) = records
    assert (record.ok, record.attempts, record.status, record.error) == (True, 3, 200, None)


def test_a_receiver_that_never_succeeds_is_recorded_as_failed() -> None:
    waits: list[float] = []
    with Receiver([502]) as receiver:
        config = _config({"webhook": {"url": receiver.url}}, max_backoff_seconds=0.75)
        (record,) = alerts.deliver(config, [_event()], sleep=waits.append)
    assert len(receiver.requests) == 4
    assert waits == [0.5, 0.75, 0.75]  # capped
    assert not record.ok
    assert record.error == "gave up after 4 attempt(s): HTTP 502 Bad Gateway: try later"


def test_client_errors_are_not_retried() -> None:
    with Receiver([400]) as receiver:
        (record,) = alerts.deliver(
            _config({"webhook": {"url": receiver.url}}), [_event()], sleep=lambda s: None
        )
    assert (record.ok, record.attempts, record.status) == (False, 1, 400)
    assert len(receiver.requests) == 1


def test_connection_refused_is_retried_then_fails() -> None:
    with Receiver([200]) as receiver:
        url = receiver.url  # a port that was free a moment ago
    (record,) = alerts.deliver(
        _config({"webhook": {"url": url}}, attempts=2), [_event()], sleep=lambda s: None
    )
    assert (record.ok, record.attempts) == (False, 2)
    assert "Connection refused" in (record.error or "")


def test_alertmanager_payload() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    with Receiver([200]) as receiver:
        config = _config({"alertmanager": {"url": receiver.url + "/"}})
        (record,) = alerts.deliver(config, [_event(), _event(chunk_index=1)], now=now)
    assert record.ok and record.target == receiver.url + "/api/v2/alerts"
    request = receiver.requests[0]
    assert request["path"] == "/api/v2/alerts"
    first = request["body"][0]
    assert first["labels"] == {
        "alertname": "feature-drift",
        "severity": "warning",
        "model": "car-loan-default",
        "environment": "local",
        "signal": "drift",
        "feature": "car_value",
        "chunk": "2019-01-01T00:00:00Z/2019-01-31T23:00:00Z",
        "dedup_key": "ab" * 32,
        "source": "kiln-monitor",
    }
    assert first["annotations"]["threshold_upper"] == "0.035"
    assert first["annotations"]["version"] == "1"
    assert (first["startsAt"], first["endsAt"]) == (
        "2024-05-01T12:00:00.000Z",
        "2024-05-01T14:00:00.000Z",  # resolve_after 2h: renewed by every run that still fires
    )


def test_slack_webhook_from_an_environment_variable() -> None:
    with Receiver([200]) as receiver:
        route = {
            "slack": {"webhook_secret": {"name": "slack-webhook", "key": "url"}, "channel": "#ml"}
        }
        config = _config(route)
        env = {"KILN_SECRET_SLACK_WEBHOOK_URL": receiver.url + "/services/T/B/X\n"}
        (record,) = alerts.deliver(config, [_event()], environ=env)
    assert record.ok
    assert record.target == "slack webhook from secret slack-webhook/url"  # not the URL
    body = receiver.accepted[0]
    assert body["channel"] == "#ml"
    assert "*car-loan-default* (local, v1): 1 monitoring alert(s)" in body["text"]
    assert "[warning] feature-drift" in body["text"]


def test_alerts_of_a_model_not_served_yet_say_so() -> None:
    """Monitoring runs before the first version serves: no version in labels or text."""
    with Receiver([200]) as receiver:
        manager = _config({"alertmanager": {"url": receiver.url}})
        (record,) = alerts.deliver(
            manager.model_copy(update={"version": None}), [_event(version=None)]
        )
    assert record.ok
    assert receiver.requests[0]["body"][0]["annotations"]["version"] == "none"
    slack = alerts.slack_payload(car_loan_config(version=None), [_event()], None, None)
    assert "*car-loan-default* (local, not served yet): 1 monitoring alert(s)" in slack["text"]


def test_webhook_headers_from_a_mounted_secret(tmp_path: Path) -> None:
    (tmp_path / "hook-token").mkdir()
    (tmp_path / "hook-token" / "token").write_text("Bearer s3cret\n")
    with Receiver([200]) as receiver:
        route = {
            "webhook": {
                "url": receiver.url,
                "headers": {"Authorization": {"name": "hook-token", "key": "token"}},
            }
        }
        config = _config(route, attempts=1)
        config = config.model_copy(update={"secrets": Secrets(directory=str(tmp_path))})
        (record,) = alerts.deliver(config, [_event()], environ={})
    assert record.ok
    assert receiver.requests[0]["headers"]["Authorization"] == "Bearer s3cret"
    assert "s3cret" not in json.dumps(record.as_dict())


def test_a_missing_secret_fails_the_route_and_says_how_to_provide_it(tmp_path: Path) -> None:
    route = {"slack": {"webhook_secret": {"name": "slack-webhook", "key": "url"}}}
    config = _config(route).model_copy(update={"secrets": Secrets(directory=str(tmp_path))})
    (record,) = alerts.deliver(config, [_event()], environ={})
    assert not record.ok and record.attempts == 0
    assert record.error == (
        "secret slack-webhook/url is not available: set KILN_SECRET_SLACK_WEBHOOK_URL or mount "
        f"the Secret 'slack-webhook' at {tmp_path / 'slack-webhook'}"
    )


def test_secret_environment_names() -> None:
    ref = SecretRef(name="slack-webhook", key="hook.url")
    assert alerts.secret_env_name(ref, "KILN_SECRET_") == "KILN_SECRET_SLACK_WEBHOOK_HOOK_URL"
    assert alerts.resolve_secret(ref, Secrets(), {"KILN_SECRET_SLACK_WEBHOOK_HOOK_URL": "x"}) == "x"


def test_routes_without_events_are_not_called() -> None:
    config = _config({"webhook": {"url": "http://127.0.0.1:9/"}})
    assert alerts.deliver(config, []) == []


# --- the job: a failed delivery fails the run ------------------------------------------------


@pytest.fixture(scope="module")
def drifted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """3,000 reference rows and 3,000 drifted analysis rows of NannyML's car-loan data."""
    reference, analysis = car_loan_frames()
    tmp = tmp_path_factory.mktemp("drifted")
    reference.head(3000).to_parquet(tmp / "reference.parquet")
    analysis.iloc[30000:33000].to_parquet(tmp / "analysis.parquet")
    return {"reference": str(tmp / "reference.parquet"), "analysis": str(tmp / "analysis.parquet")}


def _job_config(drifted: dict[str, str], url: str) -> Any:
    return car_loan_config(
        reference={"uri": drifted["reference"], "format": "parquet"},
        analysis={"uri": drifted["analysis"], "format": "parquet"},
        chunking={"size": 500},
        drift={"univariate": {"continuous": ["jensen_shannon"], "categorical": ["chi2"]}},
        performance=None,
        data_quality=None,
        alerts=[
            {"name": "feature-drift", "signal": "drift", "severity": "warning", "route": "hook"}
        ],
        routes=[{"name": "hook", "webhook": {"url": url}}],
        delivery={"attempts": 3, "backoff_seconds": 0.01},
    )


def test_the_job_delivers_once_through_transient_failures(
    drifted: dict[str, str], tmp_path: Path
) -> None:
    with Receiver([503, 503, 200]) as receiver:
        run = run_job(_job_config(drifted, receiver.url), tmp_path, progress=Progress(None))
    assert run.events and run.status == "alerts" and run.exit_code == 0
    assert len(receiver.accepted) == 1
    assert len(receiver.accepted[0]["events"]) == len(run.events)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["deliveries"][0]["ok"] is True
    assert results["deliveries"][0]["attempts"] == 3


def test_a_delivery_that_never_succeeds_fails_the_job(
    drifted: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Receiver([500]) as receiver:
        config_file = tmp_path / "monitor.json"
        config_file.write_text(config_text(_job_config(drifted, receiver.url)))
        code = main(["--config", str(config_file), "--out", str(tmp_path / "out")])
    assert code == 1
    assert len(receiver.requests) == 3 and not receiver.accepted
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["status"] == "delivery_failed" and results["exit_code"] == 1
    (delivery,) = results["deliveries"]
    assert delivery["ok"] is False
    assert (
        delivery["error"] == "gave up after 3 attempt(s): HTTP 500 Internal Server Error: try later"
    )
    assert delivery["dedup_keys"] == [a["dedup_key"] for a in results["alerts"]]
    metrics = (tmp_path / "out" / "metrics.prom").read_text()
    assert (
        'kiln_monitor_alert_delivery_success{environment="local",model="car-loan-default",'
        'route="hook",target="webhook"} 0.0' in metrics
    )
    assert 'kiln_monitor_last_run_success{environment="local",model="car-loan-default"} 0.0' in (
        metrics
    )
    report = (tmp_path / "out" / "report.html").read_text()
    assert "delivery to hook (webhook) failed:</strong> gave up after 3 attempt(s)" in report
    assert "[kiln monitor] delivery" in capsys.readouterr().err


def test_the_alert_table_of_a_run_matches_what_was_sent(
    drifted: dict[str, str], tmp_path: Path
) -> None:
    with Receiver([200]) as receiver:
        run = run_job(_job_config(drifted, receiver.url), tmp_path, progress=Progress(None))
    sent = receiver.accepted[0]["events"]
    assert [e["dedup_key"] for e in sent] == [e.dedup_key for e in run.events]
    drift = run.tables()["drift"]
    flagged = drift[(drift["period"] == "analysis") & drift["alert"].astype(bool)]
    assert {(r.subject, r.chunk_key) for r in flagged.itertuples()} == {
        (e["feature"], e["chunk_key"]) for e in sent
    }
    assert pd.Series([e["severity"] for e in sent]).eq("warning").all()


class Redirector:
    """An HTTP endpoint that answers every POST with a redirect to `location`."""

    def __init__(self, status: int, location: str) -> None:
        self.requests = 0
        redirector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                redirector.requests += 1
                self.send_response(status)
                self.send_header("Location", location)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Redirector:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_a_failed_attempt_and_is_not_followed(status: int) -> None:
    with Receiver([200]) as elsewhere, Redirector(status, elsewhere.url + "/steal") as hook:
        route = {
            "webhook": {"url": hook.url, "headers": {"Authorization": {"name": "t", "key": "k"}}}
        }
        env = {"KILN_SECRET_T_K": "Bearer s3cret"}
        (record,) = alerts.deliver(_config(route), [_event()], environ=env, sleep=lambda s: None)
    assert elsewhere.requests == []  # the Authorization header never reached it
    assert hook.requests == 1  # not retried: the receiver will redirect again
    assert (record.ok, record.status) == (False, status)
    assert record.error is not None and "follows no redirect" in record.error


def test_a_route_with_secrets_needs_https_outside_this_machine() -> None:
    route = {
        "webhook": {
            "url": "http://hooks.example.invalid/x",
            "headers": {"X-Token": {"name": "t", "key": "k"}},
        }
    }
    (record,) = alerts.deliver(_config(route), [_event()], environ={"KILN_SECRET_T_K": "s3cret"})
    assert (record.ok, record.attempts) == (False, 0)
    assert record.error is not None and "not https" in record.error
    env = {"KILN_SECRET_SLACK_WEBHOOK_URL": "http://hooks.example.invalid/services/T/B/X"}
    slack = {"slack": {"webhook_secret": {"name": "slack-webhook", "key": "url"}}}
    (record,) = alerts.deliver(_config(slack), [_event()], environ=env)
    assert not record.ok and "not https" in (record.error or "")
    assert "hooks.example" not in (record.error or "")  # the secret URL is not echoed
    assert secret_safe("https://hooks.example.invalid/x")
    assert secret_safe("http://localhost:9093/") and not secret_safe("ftp://x/")
