"""Monitoring: the scheduled NannyML job, its alert rules, and a Grafana dashboard.

The job (`runtime/monitor/job.py`) evaluates the model-health alerts of the spec itself
and delivers them to their routes: it knows the chunk, the feature and the
de-duplication key. Prometheus gets what only it can see: the serving alerts on
Triton's metrics, alerts when the monitor fails or stops running, and recording
rules that summarise the drift and performance the job pushes.
"""

from __future__ import annotations

from typing import Any

from compiler import names
from compiler.ir import ModelIR
from compiler.ir.serving import DurationIR
from compiler.serialize import to_json
from compiler.spec.cron import longest_gap_seconds
from compiler.targets import k8s, promql, workflows
from compiler.targets.k8s import SECRETS_MOUNT, Object
from runtime.contract.durations import duration_seconds

CONFIG_MOUNT = "/etc/kiln/monitor"
CONFIG_FILE = "monitor.json"


def monitor_config_text(model: ModelIR) -> str:
    from compiler.targets.monitor_config import config_from_ir
    from runtime.contract.monitor_config import config_text

    return config_text(config_from_ir(model))


def config_map(model: ModelIR, text: str) -> Object:
    return k8s.resource(
        "v1",
        "ConfigMap",
        k8s.metadata(model, names.derived(model.name, "-monitor-config"), "monitoring"),
        data={CONFIG_FILE: text},
    )


def _secrets(model: ModelIR) -> list[tuple[str, str]]:
    """(volume name, Secret name) for every Secret a route of the alerts needs."""
    secrets: set[str] = set()
    for route in model.routes:
        if route.slack is not None:
            secrets.add(route.slack.webhook_secret.name)
        if route.webhook is not None:
            secrets |= {ref.name for _, ref in route.webhook.headers}
            if route.webhook.url_secret is not None:
                secrets.add(route.webhook.url_secret.name)
    return [(f"secret-{name}", name) for name in sorted(secrets)]


def cron_workflow(model: ModelIR) -> Object | None:
    monitoring = model.monitoring
    if monitoring is None:
        return None
    secrets = _secrets(model)
    args = ["python", "-m", "runtime.monitor", "--config", f"{CONFIG_MOUNT}/{CONFIG_FILE}"]
    args += ["--out", "/tmp/kiln/out"]
    if model.environment.pushgateway_url:
        args += ["--pushgateway", model.environment.pushgateway_url]
    mounts = [{"name": "monitor-config", "mountPath": CONFIG_MOUNT, "readOnly": True}]
    mounts += [
        {"name": volume, "mountPath": f"{SECRETS_MOUNT}/{secret}", "readOnly": True}
        for volume, secret in secrets
    ]
    volumes: list[Object] = [
        k8s.SCRATCH,
        {
            "name": "monitor-config",
            "configMap": {"name": names.derived(model.name, "-monitor-config")},
        },
    ]
    # Optional: a missing Secret would hold the pod in ContainerCreating until its
    # deadline, with nothing pushed and so no alert. Mounted optionally, the job runs,
    # reports the secret as missing, fails that delivery and KilnMonitorFailed fires.
    volumes += [
        {"name": volume, "secret": {"secretName": secret, "optional": True}}
        for volume, secret in secrets
    ]
    template: Object = {
        "name": "monitor",
        "outputs": {"artifacts": [{"name": "report", "path": "/tmp/kiln/out"}]},
        "container": {
            "image": model.project.images.runtime,
            "command": k8s.literals(args),
            "env": [{"name": "NML_DISABLE_USAGE_LOGGING", "value": "1"}],
            "resources": {
                "requests": {"cpu": "1", "memory": "2Gi"},
                "limits": {"cpu": "2", "memory": "4Gi"},
            },
            "securityContext": k8s.container_security(),
            "volumeMounts": [k8s.SCRATCH_MOUNT, *mounts],
        },
        "activeDeadlineSeconds": "3600",
        # Retry a lost pod, never a monitor that found the data unusable.
        "retryStrategy": {"limit": "2", "retryPolicy": "OnError"},
    }
    workflow_spec: Object = {
        "entrypoint": "monitor",
        "serviceAccountName": names.derived(model.name, "-monitor"),
        "securityContext": k8s.pod_security(),
        **workflows.pod_settings(model),
        "podGC": {"strategy": "OnPodSuccess"},
        "ttlStrategy": {"secondsAfterCompletion": int(duration_seconds("3d"))},
        "volumes": volumes,
        "templates": [template],
    }
    return workflows.schedule(
        model, "-monitor", "monitoring", monitoring.schedule, workflow_spec, 300
    )


def _selector(model: ModelIR) -> str:
    return f'model="{model.name}",environment="{model.environment.name}"'


def _alert(
    name: str,
    expr: str,
    severity: str,
    summary: str,
    model: ModelIR,
    for_: DurationIR | None = None,
    route: str | None = None,
) -> Object:
    labels = {"severity": severity, "kiln_model": model.name}
    labels["kiln_environment"] = model.environment.name
    if route is not None:
        labels["kiln_route"] = route
    rule: Object = {"alert": name, "expr": expr}
    if for_ is not None:
        rule["for"] = f"{int(for_.seconds)}s"
    rule["labels"] = labels
    rule["annotations"] = {"summary": summary}
    return rule


def _serving_rules(model: ModelIR) -> list[Object]:
    rules: list[Object] = []
    for alert in model.alerts:
        when = alert.when
        if when.signal == "latency_p99_ms" and when.above is not None:
            expr = f"{promql.latency_p99_ms(model, model.name)} > {when.above:g}"
            summary = f"p99 latency of {model.name} above {when.above:g} ms"
        elif when.signal == "error_rate" and when.above is not None:
            expr = f"{promql.error_rate(model, model.name, '5m')} > {when.above:g}"
            summary = f"error rate of {model.name} above {when.above:g}"
        else:
            continue
        rules.append(
            _alert(_camel(alert.name), expr, alert.severity, summary, model, when.for_, alert.route)
        )
    return rules


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


def _monitor_rules(model: ModelIR) -> list[Object]:
    monitoring = model.monitoring
    if monitoring is None:
        return []
    selector = _selector(model)
    # Twice the longest gap between runs, so one slow run does not page anyone.
    gap = longest_gap_seconds(monitoring.schedule.cron)
    assert gap is not None, "the spec check rejects schedules that never run"
    stale_after = 2 * gap
    return [
        {
            "record": "kiln:monitor_drifting_features:count",
            "expr": f"count(kiln_monitor_drift_alert{{{selector}}} > 0) or vector(0)",
        },
        {
            "record": "kiln:monitor_estimated_performance:latest",
            "expr": f"max by (metric) (kiln_monitor_estimated_performance{{{selector}}})",
        },
        _alert(
            "KilnMonitorFailed",
            f"kiln_monitor_last_run_success{{{selector}}} == 0",
            "warning",
            f"the monitor of {model.name} in {model.environment.name} failed its last run",
            model,
        ),
        _alert(
            "KilnMonitorStale",
            f"time() - kiln_monitor_last_run_timestamp_seconds{{{selector}}} > {stale_after}",
            "warning",
            f"the monitor of {model.name} has not reported for {stale_after} s",
            model,
        ),
    ]


def prometheus_rule(model: ModelIR) -> Object | None:
    groups: list[Object] = []
    serving = _serving_rules(model)
    if serving:
        groups.append({"name": f"{model.name}.serving", "rules": serving})
    health = _monitor_rules(model)
    if health:
        groups.append({"name": f"{model.name}.model-health", "rules": health})
    if not groups:
        return None
    meta = k8s.metadata(model, model.name, "monitoring")
    meta["labels"].update(model.environment.monitoring_labels)
    return k8s.resource(
        "monitoring.coreos.com/v1",
        "PrometheusRule",
        meta,
        spec={"groups": groups},
    )


def _panel(panel_id: int, title: str, expr: str, legend: str, x: int, y: int, unit: str) -> Object:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": "A", "expr": expr, "legendFormat": legend}],
    }


def dashboard(model: ModelIR) -> dict[str, Any]:
    """Serving health on the left, model health on the right."""
    service = model.name
    selector = _selector(model)
    serving = [
        ("Requests per second", promql.request_rate(model, service), "requests", "reqps"),
        ("Error rate", promql.error_rate(model, service, "5m"), "errors", "percentunit"),
        ("p99 latency", promql.latency_p99_ms(model, service), "p99", "ms"),
        ("Queue time per request", promql.queue_time_us(model, service), "queue", "µs"),
    ]
    health = [
        ("Drift per feature", f"kiln_monitor_drift_value{{{selector}}}", "{{feature}}", "none"),
        (
            "Estimated performance",
            f"kiln_monitor_estimated_performance{{{selector}}}",
            "{{metric}}",
            "none",
        ),
        (
            "Missing values",
            f"kiln_monitor_missing_values{{{selector}}}",
            "{{feature}}",
            "percentunit",
        ),
        (
            "Hours since the last monitor run",
            f"(time() - kiln_monitor_last_run_timestamp_seconds{{{selector}}}) / 3600",
            "hours",
            "h",
        ),
    ]
    panels: list[Object] = []
    for row, (left, right) in enumerate(zip(serving, health, strict=True)):
        panels.append(_panel(2 * row + 1, *left[:3], 0, 8 * row, left[3]))
        panels.append(_panel(2 * row + 2, *right[:3], 12, 8 * row, right[3]))
    return {
        "title": f"{model.name} ({model.environment.name})",
        "uid": f"kiln-{model.environment.name}-{model.name}"[:40],
        "tags": ["kiln", model.name, model.environment.name],
        "timezone": "utc",
        "schemaVersion": 39,
        "editable": False,
        "time": {"from": "now-24h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Prometheus",
                }
            ]
        },
        "panels": panels,
    }


def dashboard_config_map(model: ModelIR) -> Object:
    text = to_json(dashboard(model))
    meta = k8s.metadata(model, names.derived(model.name, "-dashboard"), "monitoring")
    # The Grafana sidecar loads every ConfigMap carrying this label.
    meta["labels"]["grafana_dashboard"] = "1"
    return k8s.resource("v1", "ConfigMap", meta, data={f"{model.name}.json": text})
