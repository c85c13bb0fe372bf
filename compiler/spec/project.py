"""The Project kind: one per repository; environments, images, storage, routes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from compiler.spec.signing import Signing
from compiler.spec.types import (
    GitText,
    Image,
    LabelValue,
    Name,
    PositiveInt,
    QualifiedName,
    ResourceName,
    SecretRef,
    SpecModel,
    Uri,
    fail,
)


class GitSource(SpecModel):
    """Where Argo CD reads `generated/` from."""

    repo: Uri = Field(description="Clone URL of this repository.")
    revision: GitText = Field("main", description="Branch, tag or commit to track.")
    path: GitText = Field("generated", description="Folder of compiled output.")


class Images(SpecModel):
    """Container images of the jobs and servers Kiln renders."""

    runtime: Image = Field(description="Image that runs Kiln's runtime jobs.")
    triton: Image = Field(description="Triton Inference Server image.")


class Storage(SpecModel):
    """Object-store roots; relative artifact and data paths resolve against them."""

    models: Uri = Field(description="Root of the model store.")
    data: Uri = Field(description="Root of the data store.")


class Toleration(SpecModel):
    """A Kubernetes toleration added to GPU pods."""

    key: QualifiedName = Field(description="Taint key.")
    operator: Literal["Equal", "Exists"] = Field("Exists", description="Match operator.")
    value: LabelValue | None = Field(None, description="Taint value (with operator Equal).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect to tolerate; all when empty."
    )


class Gpu(SpecModel):
    """How GPUs are requested and where GPU pods may run."""

    available: bool | None = Field(
        None,
        description="Whether the environment has GPUs; unset: a cluster has, local has not.",
    )
    resource: ResourceName = Field("nvidia.com/gpu", description="Extended resource name of a GPU.")
    node_selector: dict[QualifiedName, LabelValue] = Field(
        default_factory=dict, description="Node labels GPU pods require."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, description="Tolerations for tainted GPU nodes."
    )
    quota: PositiveInt | None = Field(
        None, description="GPUs a model may use at the peak of a rollout in this environment."
    )


class Policy(SpecModel):
    """Rules every model must meet in an environment."""

    require_digests: bool = Field(
        False, description="Images must be pinned by digest and artifacts carry sha256."
    )
    min_replicas: PositiveInt = Field(1, description="Lowest allowed `serving.replicas.min`.")
    require_analysis: bool = Field(
        False, description="Rollouts must run an analysis before full traffic."
    )
    require_signatures: bool = Field(
        False,
        description="Served versions must name a signature (artifact.signature), verified "
        "against `signing` before Triton starts.",
    )


class Network(SpecModel):
    """Who may reach a served model's pods: Kiln renders one NetworkPolicy per model that
    admits only these, on Triton's ports (serving.md, "Network policy and Triton's
    restricted APIs")."""

    clients: list[Name] = Field(
        default_factory=list,
        description="Namespaces whose pods may call the inference ports (HTTP 8000, gRPC "
        "8001), besides the model's own namespace, which always may.",
    )
    monitoring_namespace: Name = Field(
        "monitoring",
        description="Namespace of the Prometheus that scrapes Triton's metrics port (8002); "
        "no other namespace may reach it.",
    )
    admin_key_secret: SecretRef | None = Field(
        None,
        description="Secret key holding the header value that unlocks Triton's "
        "model-repository, logging, trace and shared-memory APIs; unset: each pod's own "
        "uid, which no client is told.",
    )


class Environment(SpecModel):
    """A place models run: a Kubernetes namespace, or `local` for this machine."""

    name: Name = Field(description="Environment name, used in paths and overrides.")
    kind: Literal["cluster", "local"] = Field("cluster", description="cluster or local.")
    namespace: Name | None = Field(None, description="Namespace; defaults to the name.")
    gpu: Gpu = Field(default_factory=Gpu, description="GPU resource, placement and quota.")
    policy: Policy = Field(default_factory=Policy, description="Rules for this environment.")
    storage: Storage | None = Field(None, description="Overrides the Project's storage.")
    signing: Signing = Field(
        default_factory=Signing, description="Public keys and identities trusted to sign models."
    )
    prometheus_url: Uri = Field(
        "http://prometheus-operated.monitoring.svc:9090",
        description="Prometheus that analysis and autoscaling query.",
    )
    monitoring_labels: dict[QualifiedName, LabelValue] = Field(
        default_factory=dict,
        description="Labels Prometheus selects ServiceMonitors and PrometheusRules by, "
        "e.g. {release: kube-prometheus-stack}.",
    )
    pushgateway_url: Uri | None = Field(
        "http://prometheus-pushgateway.monitoring.svc:9091",
        description="Pushgateway the monitor job pushes its metrics to; null to not push.",
    )
    network: Network = Field(
        default_factory=Network,
        description="Who may reach served models' pods (cluster environments).",
    )


class AlertmanagerTarget(SpecModel):
    """Prometheus Alertmanager, API v2."""

    url: Uri = Field(description="Base URL of Alertmanager.")


class SlackTarget(SpecModel):
    """A Slack-compatible incoming webhook whose URL is kept in a Secret."""

    webhook_secret: SecretRef = Field(description="Secret key holding the webhook URL.")
    channel: str | None = Field(None, description="Channel override, if the hook allows it.")


class WebhookTarget(SpecModel):
    """A generic JSON webhook: its URL written out, or kept in a Secret when it holds a
    credential (a token in its path or query)."""

    url: Uri | None = Field(None, description="URL the alert events are POSTed to.")
    url_secret: SecretRef | None = Field(
        None, description="Secret key holding the URL, instead of `url`."
    )
    headers: dict[str, SecretRef] = Field(
        default_factory=dict, description="Headers whose values come from Secrets."
    )

    @model_validator(mode="after")
    def _one_url(self) -> WebhookTarget:
        if (self.url is None) == (self.url_secret is None):
            raise fail("KILN1105", "a webhook needs exactly one of url, url_secret")
        return self


class AlertRoute(SpecModel):
    """A named destination for alerts: exactly one target."""

    name: Name = Field(description="Route name that alerts refer to.")
    alertmanager: AlertmanagerTarget | None = Field(None, description="Alertmanager target.")
    slack: SlackTarget | None = Field(None, description="Slack webhook target.")
    webhook: WebhookTarget | None = Field(None, description="Generic webhook target.")

    @model_validator(mode="after")
    def _one_target(self) -> AlertRoute:
        targets = [t for t in (self.alertmanager, self.slack, self.webhook) if t is not None]
        if len(targets) != 1:
            raise fail(
                "KILN1111",
                f"route `{self.name}` needs exactly one of alertmanager, slack, webhook; "
                f"found {len(targets)}",
            )
        return self


MinorVersion = Annotated[str, Field(pattern=r"^\d+\.\d+$")]


class ClusterVersions(SpecModel):
    """Versions of the controllers the cluster runs, as `major.minor`. Each one
    declared must be at least the version Kiln's output needs (the README lists them)."""

    argo_cd: MinorVersion | None = Field(None, description="Argo CD, e.g. '3.1'.")
    argo_rollouts: MinorVersion | None = Field(None, description="Argo Rollouts, e.g. '1.8'.")
    argo_workflows: MinorVersion | None = Field(None, description="Argo Workflows, e.g. '3.7'.")
    istio: MinorVersion | None = Field(None, description="Istio, e.g. '1.27'.")
    keda: MinorVersion | None = Field(None, description="KEDA, e.g. '2.17'.")
    prometheus_operator: MinorVersion | None = Field(
        None, description="Prometheus Operator, e.g. '0.85'."
    )


class ArtifactRepositoryRef(SpecModel):
    """An Argo Workflows artifact repository, from a ConfigMap in the namespace."""

    config_map: Name = Field("artifact-repositories", description="ConfigMap holding it.")
    key: str = Field(min_length=1, description="Key of the repository in the ConfigMap.")


class Cluster(SpecModel):
    """What the cluster provides; `kiln validate` checks the output against it."""

    versions: ClusterVersions = Field(
        default_factory=ClusterVersions, description="Versions of the cluster's controllers."
    )
    istio_native_sidecars: bool = Field(
        False,
        description="Istio injects its proxy as a native sidecar (an init container with "
        "restartPolicy Always), so Jobs finish and init containers have a network; when "
        "false, Kiln turns injection off for job pods.",
    )
    prometheus_selector: dict[str, str] | None = Field(
        None,
        description="Labels the cluster's Prometheus selects ServiceMonitors and "
        "PrometheusRules by; every cluster environment's monitoring_labels must carry them.",
    )
    artifact_repository: ArtifactRepositoryRef | None = Field(
        None,
        description="Artifact repository the workflows use; the controller's default when empty.",
    )


class ProjectSpec(SpecModel):
    """The platform: where output goes, the images, storage, environments and routes."""

    git: GitSource = Field(description="Repository Argo CD syncs from.")
    images: Images = Field(description="Images of runtime jobs and Triton.")
    storage: Storage = Field(description="Default model and data stores.")
    kubernetes_version: str = Field(
        "1.33", pattern=r"^1\.\d+$", description="Kubernetes minor version to validate against."
    )
    cluster: Cluster = Field(
        default_factory=Cluster, description="What the cluster provides and runs."
    )
    environments: list[Environment] = Field(
        min_length=1, description="Environments, in promotion order."
    )
    alert_routes: list[AlertRoute] = Field(
        default_factory=list, description="Destinations for alerts."
    )
