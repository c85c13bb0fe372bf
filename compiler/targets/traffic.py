"""Services and, with `traffic: istio`, the VirtualService and DestinationRules.

Argo Rollouts points the stable and canary (or preview) Services at the right
ReplicaSets and rewrites the VirtualService's weights, mirror and header routes
during a rollout; Kiln renders their starting state.
"""

from __future__ import annotations

from compiler.ir import ModelIR
from compiler.targets import k8s, strategies
from compiler.targets.k8s import GRPC_PORT, HTTP_PORT, METRICS_PORT, Object


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
    """One weighted route whose destinations name no port.

    Istio sends a request to a destination without a port on the port it arrived on,
    when the Service has several (pilot's GetDestinationCluster uses the listener
    port), so HTTP stays on 8000 and gRPC on 8001. Argo Rollouts builds its mirror and
    header routes from this route's destination port and places them above all others
    (rollout/trafficrouting/istio/istio.go, createMirrorRoute, createHeaderRoute): a
    port here would send every mirrored or header-routed gRPC call to the HTTP port.
    """
    canary = strategies.canary_service(model) or model.name
    route = {
        "name": strategies.PRIMARY_ROUTE,
        "route": [
            {"destination": {"host": model.name}, "weight": 100},
            {"destination": {"host": canary}, "weight": 0},
        ],
    }
    return k8s.resource(
        "networking.istio.io/v1",
        "VirtualService",
        k8s.metadata(model, model.name, "serving"),
        spec={"hosts": [model.name], "http": [route]},
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
