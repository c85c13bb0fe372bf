"""What keeps the serving pods available and sized: PDB, ServiceMonitor, HPA or KEDA.

CPU utilisation scales through a plain HorizontalPodAutoscaler; queue time and
GPU utilisation are Prometheus queries, which a KEDA ScaledObject scales on.
Both target the Rollout (or Deployment) through its scale subresource.
"""

from __future__ import annotations

from compiler.ir import ModelIR
from compiler.targets import k8s, promql
from compiler.targets.k8s import Object


def _target(model: ModelIR) -> Object:
    if model.rollout.strategy == "recreate":
        return {"apiVersion": "apps/v1", "kind": "Deployment", "name": model.name}
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": model.name}


def disruption_budget(model: ModelIR) -> Object:
    """At most one pod away at a time, and never the last one.

    `maxUnavailable: 1` over a single pod lets a node drain evict it, which is an
    outage; with `replicas.min` 1 the budget keeps one pod, so a drain waits until a
    second pod runs (or someone scales up). A pod that is not ready may always be
    evicted (`AlwaysAllow`), so a crashing pod never blocks a drain.
    """
    budget: Object = (
        {"maxUnavailable": 1} if model.serving.replicas.min >= 2 else {"minAvailable": 1}
    )
    return k8s.resource(
        "policy/v1",
        "PodDisruptionBudget",
        k8s.metadata(model, model.name, "serving"),
        spec={
            **budget,
            "selector": {"matchLabels": k8s.selector(model)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    )


def service_monitor(model: ModelIR) -> Object:
    meta = k8s.metadata(model, model.name, "serving")
    meta["labels"].update(model.environment.monitoring_labels)
    return k8s.resource(
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
        meta,
        spec={
            "selector": {
                "matchLabels": k8s.selector(model)
                | {"app.kubernetes.io/managed-by": k8s.MANAGED_BY}
            },
            "namespaceSelector": {"matchNames": [model.namespace]},
            "endpoints": [
                {"port": "metrics", "path": "/metrics", "interval": f"{promql.SCRAPE_INTERVAL_S}s"}
            ],
        },
    )


def autoscaler(model: ModelIR) -> Object | None:
    scaling = model.serving.autoscaling
    if scaling is None:
        return None
    replicas = model.serving.replicas
    meta = k8s.metadata(model, model.name, "serving")
    if scaling.metric == "cpu_utilization":
        return k8s.resource(
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            meta,
            spec={
                "scaleTargetRef": _target(model),
                "minReplicas": max(1, replicas.min),
                "maxReplicas": replicas.max,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {
                                "type": "Utilization",
                                "averageUtilization": int(scaling.target),
                            },
                        },
                    }
                ],
            },
        )
    query = (
        promql.queue_time_us(model, model.name)
        if scaling.metric == "queue_time_us"
        else promql.gpu_utilization_percent(model, model.name)
    )
    return k8s.resource(
        "keda.sh/v1alpha1",
        "ScaledObject",
        meta,
        spec={
            "scaleTargetRef": _target(model),
            "minReplicaCount": replicas.min,
            "maxReplicaCount": replicas.max,
            "triggers": [
                {
                    "type": "prometheus",
                    # "Value": the query is a per-model average, not a per-pod total.
                    "metricType": "Value",
                    "metadata": {
                        "serverAddress": model.environment.prometheus_url,
                        "query": query,
                        "threshold": format(scaling.target, "g"),
                    },
                }
            ],
        },
    )
