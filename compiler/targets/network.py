"""The NetworkPolicy that admits a served model's clients and its Prometheus, nobody else.

One policy selects every pod of the model (stable, canary and preview pods share the
selector labels) and governs ingress only:

- the inference ports (HTTP 8000, gRPC 8001) from the model's own namespace, where the
  rollout's smoke Job runs, and from the namespaces `network.clients` names;
- the metrics port (8002) from `network.monitoring_namespace` alone.

Kubernetes always admits traffic from the pod's own node (the Network Policies concept
page: the IP-block exception), so the kubelet's probes, Istio's rewritten ones included,
still reach the pod. Egress is left open: the init container fetches artifacts from the
object store and, for keyless signatures, reaches Sigstore, addresses a policy here
cannot know. Namespaces are matched by `kubernetes.io/metadata.name`, the label
Kubernetes puts on every namespace (1.22+), so a name cannot be spoofed by labelling
another namespace.
"""

from __future__ import annotations

from compiler.ir import ModelIR
from compiler.targets import k8s
from compiler.targets.k8s import GRPC_PORT, HTTP_PORT, METRICS_PORT, Object

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def _ports(*numbers: int) -> list[Object]:
    return [{"protocol": "TCP", "port": number} for number in numbers]


def _namespaces(names: list[str]) -> Object:
    return {
        "namespaceSelector": {
            "matchExpressions": [{"key": NAMESPACE_NAME_LABEL, "operator": "In", "values": names}]
        }
    }


def client_namespaces(model: ModelIR) -> list[str]:
    """Namespaces whose pods may call the inference ports, the model's own first."""
    clients = model.environment.network.clients
    return [model.namespace, *(name for name in clients if name != model.namespace)]


def network_policy(model: ModelIR) -> Object:
    network = model.environment.network
    return k8s.resource(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        k8s.metadata(model, model.name, "serving"),
        spec={
            "podSelector": {"matchLabels": k8s.selector(model)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [_namespaces(client_namespaces(model))],
                    "ports": _ports(HTTP_PORT, GRPC_PORT),
                },
                {
                    "from": [_namespaces([network.monitoring_namespace])],
                    "ports": _ports(METRICS_PORT),
                },
            ],
        },
    )
