"""The pods that run Triton: ConfigMap, ServiceAccount and the Rollout (or Deployment).

Every served version's artifact is fetched and verified by an init container
(`runtime/serving/assemble.py`) before Triton starts, so a pod with a tampered model
never becomes ready. `recreate` renders a plain Deployment with the Recreate
strategy; every other strategy is an Argo Rollouts `Rollout`.
"""

from __future__ import annotations

import hashlib

from compiler import names
from compiler.ir import ModelIR
from compiler.serialize import to_json
from compiler.targets import k8s, strategies
from compiler.targets.k8s import GRPC_PORT, HTTP_PORT, METRICS_PORT, Object
from runtime.contract.signature import Signature

CONFIG_MOUNT = "/etc/kiln/triton"
REPOSITORY = "/models"
SIGNATURE_FILE = "signature.json"


def signature(model: ModelIR) -> Signature:
    """The signature the smoke test and the pipeline compare a model with."""
    return Signature(model.name, model.serving.max_batch_size, model.inputs, model.outputs)


def signature_document(model: ModelIR) -> str:
    return to_json(signature(model).document())


def config_map(model: ModelIR, config_text: str) -> Object:
    return k8s.resource(
        "v1",
        "ConfigMap",
        k8s.metadata(model, names.derived(model.name, "-triton-config"), "serving"),
        data={"config.pbtxt": config_text, SIGNATURE_FILE: signature_document(model)},
    )


def service_account(model: ModelIR) -> Object:
    # Object-store access is granted to this account (workload identity), never by keys.
    return k8s.resource(
        "v1",
        "ServiceAccount",
        k8s.metadata(model, model.name, "serving"),
        automountServiceAccountToken=False,
    )


def _assemble_container(model: ModelIR) -> Object:
    args = ["python", "-m", "runtime.serving.assemble", "--model", model.name]
    for artifact in model.served:
        args += ["--artifact", f"{artifact.version}={artifact.uri}"]
        if artifact.sha256:
            args += ["--sha256", f"{artifact.version}={artifact.sha256}"]
    args += ["--config", f"{CONFIG_MOUNT}/config.pbtxt", "--repository", REPOSITORY]
    return {
        "name": "assemble-model-repository",
        "image": model.project.images.runtime,
        # `command`, not `args`: the runtime image's ENTRYPOINT would be prepended to args.
        "command": args,
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        },
        "securityContext": k8s.container_security(),
        "volumeMounts": [
            {"name": "models", "mountPath": REPOSITORY},
            {"name": "triton-config", "mountPath": CONFIG_MOUNT, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def _probe(path: str, period: int, failures: int) -> Object:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _triton_container(model: ModelIR) -> Object:
    resources = model.serving.resources
    limits: Object = {"cpu": resources.cpu, "memory": resources.memory}
    if resources.gpus:
        limits[model.environment.gpu.resource] = str(resources.gpus)
    return {
        "name": "triton",
        "image": model.project.images.triton,
        "args": [
            "tritonserver",
            f"--model-repository={REPOSITORY}",
            "--model-control-mode=none",
            "--exit-on-error=true",
            f"--http-port={HTTP_PORT}",
            f"--grpc-port={GRPC_PORT}",
            f"--metrics-port={METRICS_PORT}",
            "--allow-metrics=true",
            # GPU metrics only where there are GPUs: on a CPU model they would be empty.
            f"--allow-gpu-metrics={'true' if resources.gpus else 'false'}",
            # p99 latency for the analysis comes from Triton's summary metrics.
            "--metrics-config=summary_latencies=true",
        ],
        "ports": [
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "resources": {
            "requests": {"cpu": resources.cpu, "memory": resources.memory},
            "limits": limits,
        },
        # Loading a large model can take minutes: the startup probe allows 10.
        "startupProbe": _probe("/v2/health/ready", 10, 60),
        "livenessProbe": _probe("/v2/health/live", 10, 3),
        "readinessProbe": _probe("/v2/health/ready", 5, 3),
        "securityContext": k8s.container_security(),
        "volumeMounts": [
            {"name": "models", "mountPath": REPOSITORY, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "dshm", "mountPath": "/dev/shm"},
        ],
    }


def pod_template(model: ModelIR, config_text: str) -> Object:
    digest = hashlib.sha256(config_text.encode()).hexdigest()
    served = ",".join(str(a.version) for a in model.served)
    spec: Object = {
        "serviceAccountName": model.name,
        "automountServiceAccountToken": False,
        "securityContext": k8s.pod_security(),
        "terminationGracePeriodSeconds": 30,
        "initContainers": [_assemble_container(model)],
        "containers": [_triton_container(model)],
        "volumes": [
            {"name": "models", "emptyDir": {}},
            {
                "name": "triton-config",
                "configMap": {"name": names.derived(model.name, "-triton-config")},
            },
            {"name": "tmp", "emptyDir": {}},
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
        ],
        **k8s.gpu_placement(model, model.serving.resources.gpus),
    }
    return {
        "metadata": {
            "labels": {**k8s.selector(model), "kiln.dev/version": served},
            # A changed config changes the template, so Kubernetes rolls the pods.
            "annotations": {"kiln.dev/config-sha256": digest},
        },
        "spec": spec,
    }


def workload(model: ModelIR, config_text: str) -> Object:
    """The Rollout, or for `recreate` a Deployment, that runs Triton."""
    template = pod_template(model, config_text)
    common: Object = {
        "replicas": model.serving.replicas.min,
        "revisionHistoryLimit": 3,
        "selector": {"matchLabels": k8s.selector(model)},
        "template": template,
    }
    meta = k8s.metadata(model, model.name, "serving")
    if model.rollout.strategy == "recreate":
        return k8s.resource(
            "apps/v1",
            "Deployment",
            meta,
            spec={**common, "strategy": {"type": "Recreate"}, "progressDeadlineSeconds": 600},
        )
    return k8s.resource(
        "argoproj.io/v1alpha1",
        "Rollout",
        meta,
        spec={
            **common,
            "progressDeadlineSeconds": 600,
            "progressDeadlineAbort": True,
            "strategy": strategies.strategy(model),
        },
    )
