"""Services and, with `traffic: istio`, the VirtualService and DestinationRules.

Argo Rollouts points the stable and canary (or preview) Services at the right
ReplicaSets and rewrites the VirtualService's weights, mirror and header routes
during a rollout; Kiln renders their starting state.
"""

from __future__ import annotations

from compiler.ir import ModelIR
from compiler.targets import k8s, strategies
from compiler.targets.k8s import GRPC_PORT, HTTP_PORT, METRICS_PORT, Object

ROUTES = (("http", HTTP_PORT), ("grpc", GRPC_PORT))


def _service(model: ModelIR, name: str, role: str) -> Object:
    return k8s.resource(
        "v1",
        "Service",
        k8s.metadata(model, name, "serving", annotations={"kiln.dev/role": role}),
        spec={
            "type": "ClusterIP",
            "selector": k8s.selector(model),
            "ports": [
                {"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"},
                {
                    "name": "grpc",
                    "port": GRPC_PORT,
                    "targetPort": "grpc",
                    "protocol": "TCP",
                    "appProtocol": "grpc",
                },
                {
                    "name": "metrics",
                    "port": METRICS_PORT,
                    "targetPort": "metrics",
                    "protocol": "TCP",
                },
            ],
        },
    )


def services(model: ModelIR) -> list[Object]:
    rendered = [_service(model, model.name, "stable")]
    second = strategies.canary_service(model)
    if second is not None:
        role = "preview" if model.rollout.strategy == "blue_green" else "canary"
        rendered.append(_service(model, second, role))
    return rendered


def uses_istio(model: ModelIR) -> bool:
    return model.rollout.traffic == "istio" and model.rollout.strategy in ("canary", "shadow", "ab")


def virtual_service(model: ModelIR) -> Object:
    canary = strategies.canary_service(model) or model.name
    http = [
        {
            "name": strategies.PRIMARY_ROUTE if name == "http" else strategies.GRPC_ROUTE,
            "match": [{"port": port}],
            "route": [
                {"destination": {"host": model.name, "port": {"number": port}}, "weight": 100},
                {"destination": {"host": canary, "port": {"number": port}}, "weight": 0},
            ],
        }
        for name, port in ROUTES
    ]
    return k8s.resource(
        "networking.istio.io/v1",
        "VirtualService",
        k8s.metadata(model, model.name, "serving"),
        spec={"hosts": [model.name], "http": http},
    )


def destination_rules(model: ModelIR) -> list[Object]:
    """Eject a failing pod from load balancing before it drags the error rate."""
    hosts = [model.name, strategies.canary_service(model) or model.name]
    return [
        k8s.resource(
            "networking.istio.io/v1",
            "DestinationRule",
            k8s.metadata(model, host, "serving"),
            spec={
                "host": host,
                "trafficPolicy": {
                    "outlierDetection": {
                        "consecutive5xxErrors": 5,
                        "interval": "30s",
                        "baseEjectionTime": "60s",
                        "maxEjectionPercent": 50,
                    }
                },
            },
        )
        for host in dict.fromkeys(hosts)
    ]
