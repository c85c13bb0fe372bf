"""An environment's `network` block, checked against what it must let through.

The NetworkPolicy Kiln renders per served model (compiler/targets/network.py) admits the
metrics port from `network.monitoring_namespace` alone. A Prometheus addressed in another
namespace then cannot scrape Triton, and the analysis and the autoscaler it feeds see no
traffic: that is worth a warning (the querying Prometheus may be a federation or a Thanos
in front of the one that scrapes, so not an error). A local environment has no
NetworkPolicy, so a `network` block there does nothing, and says so.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from compiler.rules.findings import Finding
from compiler.spec.project import Environment, ProjectSpec


def service_namespace(url: str) -> str | None:
    """The namespace of an in-cluster Service address (`svc.NAMESPACE.svc[.<domain>]`),
    None for any other host."""
    labels = (urlsplit(url).hostname or "").split(".")
    if len(labels) >= 3 and labels[2] == "svc":
        return labels[1]
    return None


def _scraper_outside(environment: Environment, index: int) -> Finding | None:
    network = environment.network
    namespace = service_namespace(environment.prometheus_url)
    if namespace is None or namespace == network.monitoring_namespace:
        return None
    at = ("spec", "environments", index)
    declared = "monitoring_namespace" in network.model_fields_set
    return Finding(
        (*at, "network", "monitoring_namespace") if declared else (*at, "prometheus_url"),
        "KILN1620",
        f"environment {environment.name}: Prometheus is in namespace `{namespace}` "
        f"(prometheus_url), but served models admit metrics scrapes only from "
        f"`{network.monitoring_namespace}` (network.monitoring_namespace)",
        f"set network.monitoring_namespace: {namespace}, if that Prometheus scrapes Triton",
        warning=True,
    )


def check_network(spec: ProjectSpec) -> list[Finding]:
    found: list[Finding] = []
    for index, environment in enumerate(spec.environments):
        if environment.kind == "local":
            if "network" in environment.model_fields_set:
                found.append(
                    Finding(
                        ("spec", "environments", index, "network"),
                        "KILN1621",
                        f"environment {environment.name} is local: `network` applies to "
                        "cluster environments, and `kiln serve` listens on this machine",
                        "remove `network` from the local environment",
                        key=True,
                        warning=True,
                    )
                )
            continue
        finding = _scraper_outside(environment, index)
        if finding is not None:
            found.append(finding)
    return found
