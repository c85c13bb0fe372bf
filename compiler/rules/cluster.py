"""What the Project says its cluster runs, checked against what Kiln's output needs.

`MINIMUM_VERSIONS` is the one list of the oldest release of each component that
understands everything Kiln renders; the README's table is checked against it.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import urlsplit

from compiler.rules.findings import Finding
from compiler.spec.project import ProjectSpec


class Minimum(NamedTuple):
    name: str  # as people write it
    version: tuple[int, int]
    needed_for: str


MINIMUM_VERSIONS: dict[str, Minimum] = {
    "kubernetes": Minimum(
        "Kubernetes",
        (1, 29),
        "sidecar containers on by default, which Istio's native sidecars use, and "
        "PodDisruptionBudget unhealthyPodEvictionPolicy",
    ),
    "argo_cd": Minimum(
        "Argo CD",
        (2, 8),
        "ApplicationSet goTemplateOptions, the sync option RespectIgnoreDifferences "
        "and jqPathExpressions in ignoreDifferences",
    ),
    "argo_rollouts": Minimum(
        "Argo Rollouts",
        (1, 5),
        "managedRoutes with setHeaderRoute and setMirrorRoute on Istio, for ab and shadow",
    ),
    "argo_workflows": Minimum(
        "Argo Workflows",
        (3, 6),
        "the CronWorkflow field `schedules`, a list; older controllers read only `schedule`",
    ),
    "istio": Minimum("Istio", (1, 22), "the networking.istio.io/v1 API"),
    "keda": Minimum(
        "KEDA",
        (2, 13),
        "support for Kubernetes 1.29, from this release on in KEDA's compatibility table",
    ),
    "prometheus_operator": Minimum(
        "Prometheus Operator",
        (0, 50),
        "the monitoring.coreos.com/v1 ServiceMonitor and PrometheusRule as rendered; "
        "older releases were not considered",
    ),
}

# The Service the Prometheus Operator puts in front of every Alertmanager it runs.
OPERATOR_ALERTMANAGER_SERVICE = "alertmanager-operated"


def _parse(version: str) -> tuple[int, int]:
    major, _, minor = version.partition(".")
    return int(major), int(minor)


def _shown(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def _too_old(key: str, declared: str, at: tuple[str, ...]) -> Finding | None:
    minimum = MINIMUM_VERSIONS[key]
    if _parse(declared) >= minimum.version:
        return None
    return Finding(
        at,
        "KILN1605",
        f"{minimum.name} {declared} is older than {_shown(minimum.version)}, the oldest "
        f"release Kiln's output works with; it needs {minimum.needed_for}",
        f"upgrade {minimum.name}, or correct the version declared here",
    )


def check_versions(spec: ProjectSpec) -> list[Finding]:
    declared: dict[str, tuple[str, tuple[str, ...]]] = {
        "kubernetes": (spec.kubernetes_version, ("spec", "kubernetes_version"))
    }
    for key, value in spec.cluster.versions.model_dump().items():
        if value is not None:
            declared[key] = (value, ("spec", "cluster", "versions", key))
    return [f for key, (v, at) in declared.items() if (f := _too_old(key, v, at)) is not None]


def check_prometheus_selector(spec: ProjectSpec) -> list[Finding]:
    """Every cluster environment's objects carry the labels Prometheus selects by."""
    selector = spec.cluster.prometheus_selector
    if selector is None:
        return []
    found: list[Finding] = []
    for i, environment in enumerate(spec.environments):
        if environment.kind == "local":
            continue
        missing = {k: v for k, v in selector.items() if environment.monitoring_labels.get(k) != v}
        if missing:
            wanted = ", ".join(f"{k}: {v}" for k, v in sorted(missing.items()))
            found.append(
                Finding(
                    ("spec", "environments", i, "monitoring_labels"),
                    "KILN1606",
                    f"environment {environment.name}: Prometheus selects by "
                    f"{{{wanted}}} (cluster.prometheus_selector), which its "
                    "monitoring_labels do not carry: its ServiceMonitors and rules "
                    "would never be loaded",
                    f"add {{{wanted}}} to monitoring_labels",
                    key=True,
                )
            )
    return found


def check_alertmanager_address(spec: ProjectSpec) -> list[Finding]:
    """With the Prometheus Operator declared, an Alertmanager URL whose Service is
    called `alertmanager` reaches nothing the operator creates."""
    if spec.cluster.versions.prometheus_operator is None:
        return []
    found: list[Finding] = []
    for i, route in enumerate(spec.alert_routes):
        if route.alertmanager is None:
            continue
        host = urlsplit(route.alertmanager.url).hostname or ""
        if host.split(".")[0] == "alertmanager":
            found.append(
                Finding(
                    ("spec", "alert_routes", i, "alertmanager", "url"),
                    "KILN1607",
                    f"route {route.name}: the Prometheus Operator names no Service "
                    f"`alertmanager`; it reaches its Alertmanagers through "
                    f"`{OPERATOR_ALERTMANAGER_SERVICE}`",
                    f"use http://{OPERATOR_ALERTMANAGER_SERVICE}.<namespace>.svc:9093",
                    warning=True,
                )
            )
    return found


def check_cluster(spec: ProjectSpec) -> list[Finding]:
    return [
        *check_versions(spec),
        *check_prometheus_selector(spec),
        *check_alertmanager_address(spec),
    ]
