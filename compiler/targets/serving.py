"""The pods that run Triton: ConfigMap, ServiceAccount and the Rollout (or Deployment).

Every served version's artifact (an ensemble's: every step's, by
`runtime/serving/ensemble.py`) is fetched and verified by an init container
(`runtime/serving/assemble.py`) before Triton starts, so a pod with a tampered model
never becomes ready. Where the environment trusts signers, the trust goes to the init
container as data (`trust.json` in the ConfigMap, the public keys' PEM among it) and
each signed version's bundle as `--signature VERSION=URI`: the assemble step verifies
them, and refuses unsigned versions under `policy.require_signatures`. `recreate`
renders a plain Deployment with the Recreate strategy; every other strategy is an Argo
Rollouts `Rollout`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from compiler import names
from compiler.ir import ArtifactIR, EnsembleStepIR, ModelIR
from compiler.serialize import to_json
from compiler.targets import capture, ensemble, k8s, strategies, triton
from compiler.targets.k8s import GRPC_PORT, HTTP_PORT, METRICS_PORT, Object
from runtime.contract import capture as capture_contract
from runtime.contract.signature import Signature
from runtime.contract.signing import TRUST_FILE

CONFIG_MOUNT = "/etc/kiln/triton"
# Loading a large model can take minutes: the startup probe allows 60 x 10 s.
STARTUP_PERIOD_S, STARTUP_FAILURES = 10, 60
# Before the probe even starts, a new GPU pod may wait for the cluster autoscaler to add
# a node (typically 5-10 minutes) and pull the Triton image (about 10 GB compressed).
PROVISIONING_S = 20 * 60
# Time a new ReplicaSet may go without progress before the rollout is aborted
# (Argo Rollouts, with progressDeadlineAbort) or marked failed (a Deployment).
PROGRESS_DEADLINE_S = PROVISIONING_S + STARTUP_PERIOD_S * STARTUP_FAILURES
REPOSITORY = "/models"
SIGNATURE_FILE = "signature.json"


def signature(model: ModelIR) -> Signature:
    """The signature the smoke test and the pipeline compare a model with."""
    return Signature(model.name, model.serving.max_batch_size, model.inputs, model.outputs)


def signature_document(model: ModelIR) -> str:
    return to_json(signature(model).document())


def verifies_signatures(model: ModelIR) -> bool:
    """Whether the assemble step gets a trust document (and the served versions' bundles)."""
    trust = model.environment.trust
    return trust.declared or trust.require_signatures


def config_digest(configs: Mapping[str, str]) -> str:
    """One digest over every config the pod loads: the model's (or ensemble's) own, then
    each step's by its key, so a changed step config changes the pod template too."""
    digest = hashlib.sha256(configs[triton.CONFIG_FILE].encode())
    for key in sorted(configs.keys() - {triton.CONFIG_FILE}):
        digest.update(b"\0" + key.encode() + b"\0" + configs[key].encode())
    return digest.hexdigest()


def config_map(model: ModelIR, configs: Mapping[str, str]) -> Object:
    """The configs by their keys (the model's, or an ensemble's and each step's), the
    signature the smoke test compares with, and the trust where signatures are checked."""
    data = {**configs, SIGNATURE_FILE: signature_document(model)}
    if verifies_signatures(model):
        data[TRUST_FILE] = model.environment.trust.to_json()
    return k8s.resource(
        "v1",
        "ConfigMap",
        k8s.metadata(model, names.derived(model.name, "-triton-config"), "serving"),
        data=data,
    )


def service_account(model: ModelIR) -> Object:
    # Object-store access is granted to this account (workload identity), never by keys.
    return k8s.resource(
        "v1",
        "ServiceAccount",
        k8s.metadata(model, model.name, "serving"),
        automountServiceAccountToken=False,
    )


def _artifact_args(model: ModelIR, key: str, artifact: ArtifactIR) -> list[str]:
    """`--artifact`, `--sha256` and `--signature` of one version (or one step: `key`)."""
    args = ["--artifact", f"{key}={artifact.uri}"]
    if artifact.sha256:
        args += ["--sha256", f"{key}={artifact.sha256}"]
    if artifact.signature and verifies_signatures(model):
        args += ["--signature", f"{key}={artifact.signature}"]
    return args


def _execution_env_args(key: str, artifact: ArtifactIR) -> list[str]:
    """A python model's conda-pack archive, placed beside model.py, where the config's
    EXECUTION_ENV_PATH points (of one version, or one step: `key`)."""
    if not artifact.execution_env:
        return []
    args = ["--execution-env", f"{key}={artifact.execution_env}"]
    if artifact.execution_env_sha256:
        args += ["--execution-env-sha256", f"{key}={artifact.execution_env_sha256}"]
    return args


def step_args(model: ModelIR, step: EnsembleStepIR) -> list[str]:
    """One step's flags for the ensemble's assemble command: its config in the ConfigMap
    and its artifact."""
    config = f"{CONFIG_MOUNT}/{ensemble.config_key(step.name)}"
    return ["--step", f"{step.name}={config}", *_artifact_args(model, step.name, step.artifact)]


def _capture_step_args(model: ModelIR) -> list[str]:
    """The capture step, whose files the runtime image ships (installed, not fetched)."""
    if not capture.has_capture_step(model):
        return []
    step = capture.capture_step(model)
    return ["--capture-step", f"{step}={CONFIG_MOUNT}/{ensemble.config_key(step)}"]


def _capture_args(model: ModelIR) -> list[str]:
    """The capture ensemble's model step: the served version as `<model>.model`."""
    (artifact,) = model.served
    model_step = capture.model_step(model)
    return [
        "--version",
        str(artifact.version),
        "--step",
        f"{model_step}={CONFIG_MOUNT}/{ensemble.config_key(model_step)}",
        *_artifact_args(model, model_step, artifact),
        *_execution_env_args(model_step, artifact),
    ]


def assemble_command(model: ModelIR) -> list[str]:
    """The init container's command line. An ensemble is assembled by ONE invocation over
    all its steps, not one init container per step: it places the whole repository or
    nothing (a failed step leaves no other step's folder behind in the pod's emptyDir, which
    outlives init container retries), and the pod starts one interpreter however many steps."""
    if capture.is_capture_ensemble(model):
        args = ["python", "-m", "runtime.serving.ensemble", "--model", model.name]
        args += _capture_args(model)
    elif model.ensemble is None:
        args = ["python", "-m", "runtime.serving.assemble", "--model", model.name]
        for artifact in model.served:
            args += _artifact_args(model, str(artifact.version), artifact)
            args += _execution_env_args(str(artifact.version), artifact)
    else:
        args = ["python", "-m", "runtime.serving.ensemble", "--model", model.name]
        args += ["--version", str(model.ensemble.version)]
        for step in model.ensemble.steps:
            args += step_args(model, step)
    args += _capture_step_args(model)
    if verifies_signatures(model):
        args += ["--trust", f"{CONFIG_MOUNT}/{TRUST_FILE}"]
    args += ["--config", f"{CONFIG_MOUNT}/{triton.CONFIG_FILE}", "--repository", REPOSITORY]
    return args


def _assemble_container(model: ModelIR) -> Object:
    """The init container that writes the model repository from verified artifacts."""
    args = assemble_command(model)
    return {
        "name": "assemble-model-repository",
        "image": model.project.images.runtime,
        # `command`, not `args`: the runtime image's ENTRYPOINT would be prepended to args.
        "command": k8s.literals(args),
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        },
        "securityContext": {**k8s.container_security(), **k8s.init_container_user(model)},
        "volumeMounts": [
            {"name": "models", "mountPath": REPOSITORY},
            {"name": "triton-config", "mountPath": CONFIG_MOUNT, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


# Triton's APIs that no client of a Kiln model needs, and that a client could misuse:
# model-repository (index, load, unload), logging and trace (their settings name files
# and verbosity, and can write request data to the log), shared-memory (register regions
# of the pod's memory). Names from Triton's restricted_features.h (RESTRICTED_CATEGORY_NAMES).
RESTRICTED_APIS = ("model-repository", "logging", "trace", "shared-memory")
# The header that unlocks them; over gRPC Triton prefixes it with `triton-grpc-protocol-`.
ADMIN_HEADER = "kiln-admin-key"
ADMIN_KEY_ENV = "KILN_TRITON_ADMIN_KEY"


def _admin_key_env(model: ModelIR) -> Object:
    """The header's value: the Secret key the environment names, else the pod's uid, a
    random UUID the API server assigns that is in no file and told to no client."""
    secret = model.environment.network.admin_key_secret
    if secret is None:
        source: Object = {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.uid"}}
    else:
        name, key = secret
        source = {"secretKeyRef": {"name": name, "key": key}}
    return {"name": ADMIN_KEY_ENV, "valueFrom": source}


def restricted_api_args() -> list[str]:
    """tritonserver's `--http-restricted-api` and `--grpc-restricted-protocol`, each
    `<apis>:<header>=<value>` (Triton's command_line_parser.cc). The value is Kiln's own
    `$(VAR)` reference, which Kubernetes expands from the container's env; spec text never
    reaches these arguments (it would pass through `k8s.literal`)."""
    restriction = f"{','.join(RESTRICTED_APIS)}:{ADMIN_HEADER}=$({ADMIN_KEY_ENV})"
    return [f"--http-restricted-api={restriction}", f"--grpc-restricted-protocol={restriction}"]


def _forwarded_headers(model: ModelIR) -> list[str]:
    """The capture step keeps a client's x-request-id: Triton forwards the header to the
    models as a request parameter (the labels join on it)."""
    if not capture.has_capture_step(model):
        return []
    header = capture_contract.REQUEST_ID_HEADER
    return [f"--http-header-forward-pattern={header}", f"--grpc-header-forward-pattern={header}"]


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
            *restricted_api_args(),
            *_forwarded_headers(model),
        ],
        "env": [_admin_key_env(model)],
        "ports": [
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "resources": {
            "requests": {"cpu": resources.cpu, "memory": resources.memory},
            "limits": limits,
        },
        "startupProbe": _probe("/v2/health/ready", STARTUP_PERIOD_S, STARTUP_FAILURES),
        "livenessProbe": _probe("/v2/health/live", 10, 3),
        "readinessProbe": _probe("/v2/health/ready", 5, 3),
        "securityContext": k8s.container_security(),
        "volumeMounts": [
            {"name": "models", "mountPath": REPOSITORY, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "dshm", "mountPath": "/dev/shm"},
        ],
    }


def served_versions(model: ModelIR) -> str:
    """The pods' `kiln.dev/version` label: the served versions, or the ensemble's."""
    if model.ensemble is not None:
        return str(model.ensemble.version)
    if capture.is_capture_ensemble(model):
        return str(capture.version(model))
    return ",".join(str(a.version) for a in model.served)


def pod_template(model: ModelIR, configs: Mapping[str, str]) -> Object:
    digest = config_digest(configs)
    served = served_versions(model)
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


def workload(model: ModelIR, configs: Mapping[str, str]) -> Object:
    """The Rollout, or for `recreate` a Deployment, that runs Triton."""
    template = pod_template(model, configs)
    common: Object = {
        "revisionHistoryLimit": 3,
        "selector": {"matchLabels": k8s.selector(model)},
        "template": template,
    }
    if model.serving.autoscaling is None:
        common = {"replicas": model.serving.replicas.min, **common}
    # Under an autoscaler `replicas` is left out, as Argo CD advises for fields another
    # controller owns: a value here would be applied again at every sync and scale the
    # model back to its minimum at the start of each rollout. A new workload starts at
    # one pod and the autoscaler raises it to its minimum.
    meta = k8s.metadata(model, model.name, "serving")
    if model.rollout.strategy == "recreate":
        spec = {**common, "strategy": {"type": "Recreate"}}
        return k8s.resource(
            "apps/v1",
            "Deployment",
            meta,
            spec={**spec, "progressDeadlineSeconds": PROGRESS_DEADLINE_S},
        )
    return k8s.resource(
        "argoproj.io/v1alpha1",
        "Rollout",
        meta,
        spec={
            **common,
            "progressDeadlineSeconds": PROGRESS_DEADLINE_S,
            "progressDeadlineAbort": True,
            "strategy": strategies.strategy(model),
        },
    )
