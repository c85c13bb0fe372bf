"""Delivery of alert events to their routes: Alertmanager (API v2), Slack-compatible
incoming webhooks, and generic JSON webhooks.

One request per route per run carries all of that route's events (Alertmanager takes a
list; Slack gets one message; webhooks get one JSON document). A request is retried on
connection errors, timeouts, HTTP 429 and 5xx, with exponential backoff
(`backoff_seconds * 2**n`, capped at `max_backoff_seconds`), up to `attempts` tries. Other
4xx answers are final: the payload would be refused again. A route that still fails is
recorded as failed and makes the job exit 1.

Secret values (a Slack webhook URL, webhook header values) are read at delivery time
(see `runtime.contract.monitor_config.Secrets`) and never written to outputs or logs.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from runtime.contract.durations import duration_seconds
from runtime.contract.monitor_config import (
    Delivery,
    MonitorConfig,
    Route,
    SecretRef,
    Secrets,
    version_label,
)
from runtime.contract.secret_http import http_url, no_redirects, secret_safe
from runtime.monitor.rules import AlertEvent

USER_AGENT = "kiln-monitor/1"
SEVERITY_MARK = {"critical": ":red_circle:", "warning": ":warning:", "info": ":information_source:"}
SLACK_EVENTS = 20  # events listed in one Slack message; the rest are counted


class SecretMissing(Exception):
    pass


class DeliveryError(Exception):
    def __init__(self, message: str, status: int | None = None, retry: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.retry = retry


@dataclass
class DeliveryRecord:
    """What happened to one route's events; `target` never holds a secret."""

    route: str
    kind: str
    target: str
    events: int
    ok: bool
    attempts: int = 0
    status: int | None = None
    error: str | None = None
    dedup_keys: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def secret_env_name(ref: SecretRef, prefix: str) -> str:
    def part(text: str) -> str:
        return re.sub(r"[^A-Z0-9]", "_", text.upper())

    return f"{prefix}{part(ref.name)}_{part(ref.key)}"


def resolve_secret(
    ref: SecretRef, secrets: Secrets, environ: Mapping[str, str] | None = None
) -> str:
    """The value of a secret reference: environment variable first, then a mounted file."""
    env = os.environ if environ is None else environ
    variable = secret_env_name(ref, secrets.env_prefix)
    if env.get(variable):
        return env[variable].strip()
    path = Path(secrets.directory) / ref.name / ref.key
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    raise SecretMissing(
        f"secret {ref.name}/{ref.key} is not available: set {variable} or mount the Secret "
        f"{ref.name!r} at {Path(secrets.directory) / ref.name}"
    )


# --- payloads ------------------------------------------------------------------------------


def alertmanager_payload(
    events: list[AlertEvent], now: datetime, delivery: Delivery, report_url: str | None
) -> list[dict[str, Any]]:
    """Alertmanager API v2 `postableAlerts`: labels identify an alert (they are the dedup
    identity), annotations describe it, endsAt lets it resolve unless a later run renews it."""
    ends = now + timedelta(seconds=duration_seconds(delivery.resolve_after))
    alerts = []
    for e in events:
        labels = {
            "alertname": e.name,
            "severity": e.severity,
            "model": e.model,
            "environment": e.environment,
            "signal": e.signal,
            "chunk": e.chunk,
            "dedup_key": e.dedup_key,
            "source": "kiln-monitor",
        }
        if e.feature:
            labels["feature"] = e.feature
        if e.metric:
            labels["metric"] = e.metric
        annotations = {
            "summary": e.summary,
            "value": f"{e.value:.6g}",
            "version": version_label(e.version),
            "chunk_key": e.chunk_key,
            "threshold_source": e.threshold_source,
        }
        if e.method:
            annotations["method"] = e.method
        if e.threshold_lower is not None:
            annotations["threshold_lower"] = f"{e.threshold_lower:.6g}"
        if e.threshold_upper is not None:
            annotations["threshold_upper"] = f"{e.threshold_upper:.6g}"
        alert: dict[str, Any] = {
            "labels": labels,
            "annotations": annotations,
            "startsAt": _rfc3339(now),
            "endsAt": _rfc3339(ends),
        }
        if report_url:
            alert["generatorURL"] = report_url
        alerts.append(alert)
    return alerts


def slack_payload(
    config: MonitorConfig, events: list[AlertEvent], channel: str | None, report_url: str | None
) -> dict[str, Any]:
    worst = _worst(events)
    lines = [
        f"{SEVERITY_MARK[worst]} *{config.model}* ({config.environment}, {config.served_as}): "
        f"{len(events)} monitoring alert(s)"
    ]
    for e in events[:SLACK_EVENTS]:
        lines.append(f"• [{e.severity}] {e.name}: {e.summary.split(': ', 1)[-1]}")
    if len(events) > SLACK_EVENTS:
        lines.append(f"… and {len(events) - SLACK_EVENTS} more")
    if report_url:
        lines.append(f"<{report_url}|Open the monitoring report>")
    payload: dict[str, Any] = {"text": "\n".join(lines)}
    if channel:
        payload["channel"] = channel
    return payload


def webhook_payload(config: MonitorConfig, events: list[AlertEvent]) -> dict[str, Any]:
    return {
        "schema": "kiln.monitor.alerts/v1",
        "model": config.model,
        "environment": config.environment,
        "version": config.version,
        "report_url": config.report_url,
        "events": [e.as_dict() for e in events],
    }


def _worst(events: list[AlertEvent]) -> str:
    order = ["info", "warning", "critical"]
    return max((e.severity for e in events), key=order.index)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- HTTP ----------------------------------------------------------------------------------


def post_json(url: str, body: Any, headers: Mapping[str, str], timeout: float) -> int:
    """POST a JSON body; the HTTP status on 2xx, DeliveryError otherwise (a redirect
    included: it is not followed, since it would carry the route's headers onward)."""
    if not http_url(url):
        raise DeliveryError("the URL is not http(s): Kiln posts alerts over HTTP only", retry=False)
    data = json.dumps(body, sort_keys=True).encode("utf-8")
    request = urllib.request.Request(url, data=data, method="POST")  # noqa: S310 http(s)
    request.add_header("Content-Type", "application/json")
    request.add_header("User-Agent", USER_AGENT)
    for name, value in headers.items():
        request.add_header(name, value)
    try:
        with no_redirects.open(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            raise DeliveryError(
                f"HTTP {exc.code}: the receiver redirects, and Kiln follows no redirect (the "
                "route's headers would go with it); point the route at the final URL",
                exc.code,
                retry=False,
            ) from None
        detail = exc.read(300).decode("utf-8", "replace").strip()
        retry = exc.code == 429 or exc.code >= 500
        raise DeliveryError(
            f"HTTP {exc.code} {exc.reason}" + (f": {detail}" if detail else ""), exc.code, retry
        ) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"{type(exc).__name__}: {reason}") from None


def send_with_retries(
    send: Callable[[], int],
    delivery: Delivery,
    record: DeliveryRecord,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    for attempt in range(1, delivery.attempts + 1):
        record.attempts = attempt
        try:
            record.status = send()
            record.ok, record.error = True, None
            return
        except DeliveryError as exc:
            record.status, record.error = exc.status, str(exc)
            if not exc.retry or attempt == delivery.attempts:
                break
            sleep(min(delivery.backoff_seconds * 2 ** (attempt - 1), delivery.max_backoff_seconds))
    record.ok = False
    if record.attempts > 1 or record.error is None:
        record.error = f"gave up after {record.attempts} attempt(s): {record.error}"


def deliver(
    config: MonitorConfig,
    events: list[AlertEvent],
    now: datetime | None = None,
    environ: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[DeliveryRecord]:
    """Send each route its events; one record per route that had events."""
    now = now or datetime.now(UTC)
    records = []
    for route in sorted(config.routes, key=lambda r: r.name):
        mine = [e for e in events if e.route == route.name]
        if not mine:
            continue
        records.append(_deliver_route(config, route, mine, now, environ, sleep))
    return records


def _deliver_route(
    config: MonitorConfig,
    route: Route,
    events: list[AlertEvent],
    now: datetime,
    environ: Mapping[str, str] | None,
    sleep: Callable[[float], None],
) -> DeliveryRecord:
    delivery = config.delivery
    keys = [e.dedup_key for e in events]
    record = DeliveryRecord(route.name, route.kind, "", len(events), False, dedup_keys=keys)
    try:
        if route.alertmanager:
            url = route.alertmanager.url.rstrip("/") + "/api/v2/alerts"
            record.target = url
            body: Any = alertmanager_payload(events, now, delivery, config.report_url)
            headers: dict[str, str] = {}
        elif route.slack:
            ref = route.slack.webhook_secret
            record.target = f"slack webhook from secret {ref.name}/{ref.key}"
            url = resolve_secret(ref, config.secrets, environ)
            body = slack_payload(config, events, route.slack.channel, config.report_url)
            headers = {}
        else:
            assert route.webhook is not None
            webhook = route.webhook
            if webhook.url_secret is not None:
                ref = webhook.url_secret
                record.target = f"webhook from secret {ref.name}/{ref.key}"
                url = resolve_secret(ref, config.secrets, environ)
            else:
                assert webhook.url is not None  # one of the two: the config's rule
                url = record.target = webhook.url
            headers = {
                name: resolve_secret(ref, config.secrets, environ)
                for name, ref in sorted(route.webhook.headers.items())
            }
            body = webhook_payload(config, events)
    except SecretMissing as exc:
        record.error = str(exc)
        return record
    if (route.slack or headers) and not secret_safe(url):
        record.error = (
            "this route carries a secret and its URL is not https: Kiln sends secrets over "
            "https only (or to this machine); change the URL to https"
        )
        return record
    timeout = delivery.timeout_seconds
    send_with_retries(lambda: post_json(url, body, headers, timeout), delivery, record, sleep)
    return record
