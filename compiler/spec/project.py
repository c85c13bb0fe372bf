"""The Project kind: one per repository; environments, images, storage, routes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from compiler.spec.types import (
    Image,
    LabelKey,
    LabelValue,
    Name,
    PositiveInt,
    ResourceName,
    SecretRef,
    SpecModel,
    Uri,
    fail,
)


class GitSource(SpecModel):
    """Where Argo CD reads `generated/` from."""

    repo: Uri = Field(description="Clone URL of this repository.")
    revision: str = Field("main", min_length=1, description="Branch, tag or commit to track.")
    path: str = Field("generated", min_length=1, description="Folder of compiled output.")


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

    key: LabelKey = Field(description="Taint key.")
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
    node_selector: dict[LabelKey, LabelValue] = Field(
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


class Environment(SpecModel):
    """A place models run: a Kubernetes namespace, or `local` for this machine."""

    name: Name = Field(description="Environment name, used in paths and overrides.")
    kind: Literal["cluster", "local"] = Field("cluster", description="cluster or local.")
    namespace: Name | None = Field(None, description="Namespace; defaults to the name.")
    gpu: Gpu = Field(default_factory=Gpu, description="GPU resource, placement and quota.")
    policy: Policy = Field(default_factory=Policy, description="Rules for this environment.")
    storage: Storage | None = Field(None, description="Overrides the Project's storage.")
    prometheus_url: Uri = Field(
        "http://prometheus-operated.monitoring.svc:9090",
        description="Prometheus that analysis and autoscaling query.",
    )
    monitoring_labels: dict[LabelKey, LabelValue] = Field(
        default_factory=dict,
        description="Labels Prometheus selects ServiceMonitors and PrometheusRules by, "
        "e.g. {release: kube-prometheus-stack}.",
    )
    pushgateway_url: Uri | None = Field(
        "http://prometheus-pushgateway.monitoring.svc:9091",
        description="Pushgateway the monitor job pushes its metrics to; null to not push.",
    )


class AlertmanagerTarget(SpecModel):
    """Prometheus Alertmanager, API v2."""

    url: Uri = Field(description="Base URL of Alertmanager.")


class SlackTarget(SpecModel):
    """A Slack-compatible incoming webhook whose URL is kept in a Secret."""

    webhook_secret: SecretRef = Field(description="Secret key holding the webhook URL.")
    channel: str | None = Field(None, description="Channel override, if the hook allows it.")


class WebhookTarget(SpecModel):
    """A generic JSON webhook."""

    url: Uri = Field(description="URL the alert events are POSTed to.")
    headers: dict[str, SecretRef] = Field(
        default_factory=dict, description="Headers whose values come from Secrets."
    )


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


class ProjectSpec(SpecModel):
    """The platform: where output goes, the images, storage, environments and routes."""

    git: GitSource = Field(description="Repository Argo CD syncs from.")
    images: Images = Field(description="Images of runtime jobs and Triton.")
    storage: Storage = Field(description="Default model and data stores.")
    kubernetes_version: str = Field(
        "1.33", pattern=r"^1\.\d+$", description="Kubernetes minor version to validate against."
    )
    environments: list[Environment] = Field(
        min_length=1, description="Environments, in promotion order."
    )
    alert_routes: list[AlertRoute] = Field(
        default_factory=list, description="Destinations for alerts."
    )
