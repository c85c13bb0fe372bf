"""Small builders shared by every Kubernetes target: metadata, labels, security."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from compiler.ir import ModelIR

Object = dict[str, Any]

MANAGED_BY = "kiln"
HTTP_PORT, GRPC_PORT, METRICS_PORT = 8000, 8001, 8002
RUN_AS = 1000


def labels(model: ModelIR, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": model.name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": model.project.name,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "kiln.dev/environment": model.environment.name,
    }


def selector(model: ModelIR) -> dict[str, str]:
    return {"app.kubernetes.io/name": model.name, "app.kubernetes.io/component": "serving"}


def metadata(model: ModelIR, name: str, component: str, **extra: Any) -> Object:
    meta: Object = {"name": name, "namespace": model.namespace, "labels": labels(model, component)}
    meta.update(extra)
    return meta


def resource(api_version: str, kind: str, meta: Object, **body: Any) -> Object:
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **body}


def pod_security() -> Object:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security() -> Object:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


# Istio's proxy user: its own traffic is never redirected to the proxy.
ISTIO_PROXY_UID = 1337


def job_pod_labels(model: ModelIR) -> dict[str, str]:
    """Labels of pods that run to completion (the smoke Job, workflow steps).

    An injected classic sidecar never exits, so such a pod never finishes. Istio's
    native sidecars (an init container with restartPolicy Always, Kubernetes 1.29+)
    stop with the pod; without them the Project says so, and injection is turned off.
    """
    if model.project.istio_native_sidecars:
        return {}
    return {"sidecar.istio.io/inject": "false"}


def init_container_user(model: ModelIR) -> Object:
    """Without native sidecars, Istio CNI redirects an init container's traffic to a
    proxy that has not started yet, so it has no network; Istio's documented way out
    is to run that init container as the proxy's user, whose traffic is not redirected."""
    if model.project.istio_native_sidecars:
        return {}
    return {"runAsUser": ISTIO_PROXY_UID}


def literal(text: str) -> str:
    """`text` as a container's command, args and env values must hold it to reach the
    process unchanged: Kubernetes expands `$(VAR)` there, and reads `$$` as one `$`
    (k8s.io/kubernetes third_party/forked/golang/expansion), so every `$` is doubled."""
    return text.replace("$", "$$")


def literals(texts: Iterable[str]) -> list[str]:
    return [literal(text) for text in texts]


# A job container's root filesystem is read-only; what it writes goes to /tmp, an emptyDir
# of the pod's own (its work folder, outputs, and the libraries' caches and temp files).
SCRATCH = {"name": "scratch", "emptyDir": {}}
SCRATCH_MOUNT = {"name": "scratch", "mountPath": "/tmp"}
# Secrets a job reads as files are mounted under it, one folder each.
SECRETS_MOUNT = "/var/run/secrets/kiln"


def service_host(model: ModelIR, service: str) -> str:
    return f"{service}.{model.namespace}.svc.cluster.local"


def gpu_placement(model: ModelIR, gpus: int) -> Object:
    """Node selector and tolerations of the environment, for pods that use GPUs."""
    if gpus < 1:
        return {}
    gpu = model.environment.gpu
    placement: Object = {}
    if gpu.node_selector:
        placement["nodeSelector"] = dict(gpu.node_selector)  # sorted when lowered
    if gpu.tolerations:
        placement["tolerations"] = [
            {k: v for k, v in asdict(t).items() if v is not None} for t in gpu.tolerations
        ]
    return placement
