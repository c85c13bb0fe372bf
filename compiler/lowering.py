"""Spec blocks -> IR values: durations in seconds, lists as tuples, defaults applied.

resolve calls these once per (model, environment), on a spec that passed every spec
rule, so a target reads numbers and never parses a spec's text again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from compiler.ir.batch import BatchJobIR
from compiler.ir.environment import EnvironmentIR, GpuIR, NetworkIR, StorageIR, TolerationIR
from compiler.ir.featureset import (
    FeatureColumnsIR,
    FeatureIR,
    FeatureSourceIR,
    ImagesIR,
    RangeIR,
)
from compiler.ir.monitoring import (
    AlertIR,
    AlertmanagerIR,
    ChunkingIR,
    ColumnsIR,
    ConditionIR,
    ConstantThresholdIR,
    DataQualityIR,
    DatasetIR,
    DriftIR,
    MonitoringIR,
    MultivariateIR,
    PerformanceIR,
    RouteIR,
    SlackIR,
    ThresholdIR,
    UnivariateIR,
    WebhookIR,
)
from compiler.ir.secret import SecretRefIR
from compiler.ir.serving import (
    ABIR,
    AnalysisIR,
    AutoscalingIR,
    BlueGreenIR,
    CanaryStepIR,
    DurationIR,
    DynamicBatchingIR,
    OptimizationIR,
    QualityIR,
    QueuePolicyIR,
    ReplicasIR,
    ResourcesIR,
    RolloutIR,
    ServingIR,
    ShadowIR,
    SloIR,
    TensorRTIR,
    WarmupIR,
)
from compiler.ir.training import (
    DataIR,
    GateIR,
    ScheduleIR,
    TrainerIR,
    TrainingIR,
    TrainingResourcesIR,
)
from compiler.rules import pod_weights
from compiler.spec.featureset import Feature, FeatureSetSpec
from compiler.spec.model import (
    AB,
    Alert,
    Analysis,
    Autoscaling,
    BatchJob,
    BlueGreen,
    Columns,
    DataQuality,
    Dataset,
    Drift,
    DynamicBatching,
    Gate,
    ModelSpec,
    Monitoring,
    Multivariate,
    Optimization,
    Performance,
    QueuePolicy,
    Rollout,
    Serving,
    Shadow,
    Slo,
    Step,
    Threshold,
    Training,
    Univariate,
    Warmup,
)
from compiler.spec.project import (
    AlertRoute,
    Environment,
    Gpu,
    Images,
    Network,
    SlackTarget,
    Storage,
    Toleration,
    WebhookTarget,
)
from compiler.spec.types import Schedule, SecretRef
from runtime.contract.batch import BatchColumns, prediction_columns
from runtime.contract.durations import duration_seconds
from runtime.contract.quality import default_distance
from runtime.contract.signing import Trust, TrustedIdentity

Block = TypeVar("Block")
Lowered = TypeVar("Lowered")

# The canary path when a rollout writes no steps: (weight, pause) twice, with the
# analysis, when there is one, after the first. By pod count (`traffic: replicas`) each
# weight becomes the nearest one the replica count can give (20% and 50% of 2 pods:
# 33% and 50%), and a weight given twice is one step: the defaults are never refused.
DEFAULT_CANARY = ((20, "5m"), (50, "5m"))


def lower_duration(text: str) -> DurationIR:
    return DurationIR(duration_seconds(text), text)


def _maybe(lower: Callable[[Block], Lowered], block: Block | None) -> Lowered | None:
    """An optional block stays absent; a written one is lowered."""
    return None if block is None else lower(block)


# --- serving -------------------------------------------------------------------------


def _queue_policy(policy: QueuePolicy) -> QueuePolicyIR:
    return QueuePolicyIR(
        policy.timeout_action,
        policy.default_timeout_us,
        policy.allow_timeout_override,
        policy.max_queue_size,
    )


def _dynamic_batching(batching: DynamicBatching) -> DynamicBatchingIR:
    policy = batching.default_queue_policy
    return DynamicBatchingIR(
        max_queue_delay_us=batching.max_queue_delay_us,
        preferred_batch_size=tuple(batching.preferred_batch_size),
        preserve_ordering=batching.preserve_ordering,
        priority_levels=batching.priority_levels,
        default_priority_level=batching.default_priority_level,
        default_queue_policy=None if policy is None else _queue_policy(policy),
    )


def _autoscaling(autoscaling: Autoscaling) -> AutoscalingIR:
    return AutoscalingIR(autoscaling.metric, autoscaling.target)


def _optimization(optimization: Optimization) -> OptimizationIR:
    tensorrt = optimization.tensorrt
    if tensorrt is None:
        return OptimizationIR(None)
    return OptimizationIR(TensorRTIR(tensorrt.precision, tensorrt.max_workspace_size_bytes))


def _warmup(warmup: Warmup) -> WarmupIR:
    return WarmupIR(tuple(warmup.batch_sizes), warmup.data)


def _slo(slo: Slo) -> SloIR:
    return SloIR(slo.latency_p99_ms, slo.error_rate)


def lower_serving(serving: Serving) -> ServingIR:
    """What the targets need of `spec.serving` (the instance groups are lowered apart)."""
    resources, replicas = serving.resources, serving.replicas
    return ServingIR(
        version=serving.version,
        max_batch_size=serving.max_batch_size,
        dynamic_batching=_maybe(_dynamic_batching, serving.dynamic_batching),
        resources=ResourcesIR(resources.gpus, resources.cpu, resources.memory),
        replicas=ReplicasIR(replicas.min, replicas.max),
        autoscaling=_maybe(_autoscaling, serving.autoscaling),
        optimization=_maybe(_optimization, serving.optimization),
        warmup=_maybe(_warmup, serving.warmup),
        slo=_maybe(_slo, serving.slo),
    )


# --- rollout -------------------------------------------------------------------------


def _step(step: Step) -> CanaryStepIR:
    pause = None if step.pause is None else lower_duration(step.pause)
    return CanaryStepIR(step.weight, pause, step.analysis)


def _default_steps(analysed: bool, pods: int | None) -> tuple[CanaryStepIR, ...]:
    """The default path; `pods`: the replica count when the split is by pod count."""
    weighted: list[CanaryStepIR] = []
    for weight, pause in DEFAULT_CANARY:
        if pods:
            weight = pod_weights.closest(pods, weight)
        if not weighted or weighted[-1].weight != weight:
            weighted.append(CanaryStepIR(weight, lower_duration(pause), False))
    analysis = (CanaryStepIR(None, None, True),) if analysed else ()
    return (*weighted[:1], *analysis, *weighted[1:])


def _analysis(analysis: Analysis, task: str) -> AnalysisIR:
    return AnalysisIR(
        interval=lower_duration(analysis.interval),
        count=analysis.count,
        failure_limit=analysis.failure_limit,
        inconclusive_limit=analysis.inconclusive_limit,
        min_requests=analysis.min_requests,
        max_error_rate=analysis.max_error_rate,
        max_latency_p99_ms=analysis.max_latency_p99_ms,
        smoke_test=analysis.smoke_test,
        quality=_quality(analysis, task),
    )


def _quality(analysis: Analysis, task: str) -> QualityIR | None:
    thresholds = (
        analysis.max_prediction_shift,
        analysis.min_agreement,
        analysis.max_mean_abs_difference,
    )
    if all(t is None for t in thresholds):
        return None
    return QualityIR(
        max_prediction_shift=analysis.max_prediction_shift,
        distance=analysis.shift_distance or default_distance(task),
        min_agreement=analysis.min_agreement,
        max_mean_abs_difference=analysis.max_mean_abs_difference,
        min_rows=analysis.min_rows,
    )


def _shadow(shadow: Shadow) -> ShadowIR:
    return ShadowIR(shadow.mirror_percent, lower_duration(shadow.duration))


def _ab(ab: AB) -> ABIR:
    return ABIR(ab.header, ab.value, ab.weight, lower_duration(ab.duration))


def _blue_green(blue_green: BlueGreen) -> BlueGreenIR:
    return BlueGreenIR(blue_green.auto_promotion, lower_duration(blue_green.scale_down_delay))


def lower_rollout(rollout: Rollout, replicas: int, task: str) -> RolloutIR:
    """What the targets need of `spec.rollout`, with the spec's defaults for unwritten
    blocks; `replicas`: the pods at rest (replicas.min), which a split by pod count shares;
    `task` picks the default prediction-shift distance."""
    pods = replicas if rollout.traffic == "replicas" else None
    steps = (
        _default_steps(rollout.analysis is not None, pods)
        if rollout.steps is None
        else tuple(_step(s) for s in rollout.steps)
    )
    return RolloutIR(
        strategy=rollout.strategy,
        traffic=rollout.traffic,
        steps=steps,
        analysis=None if rollout.analysis is None else _analysis(rollout.analysis, task),
        shadow=_shadow(rollout.shadow or Shadow()),
        ab=_maybe(_ab, rollout.ab),
        blue_green=_blue_green(rollout.blue_green or BlueGreen()),
    )


# --- training ------------------------------------------------------------------------


def lower_schedule(schedule: Schedule) -> ScheduleIR:
    return ScheduleIR(schedule.cron, schedule.timezone)


def _gate(gate: Gate) -> GateIR:
    return GateIR(gate.metric, gate.min, gate.max, gate.max_regression)


def batch_columns(spec: ModelSpec, features: FeatureSetSpec) -> BatchColumns:
    """The columns a batch job keeps and writes: the monitor's names where declared."""
    columns = spec.monitoring.columns if spec.monitoring is not None else None
    prediction, score = prediction_columns(
        spec.task,
        columns.prediction if columns else None,
        columns.score if columns else None,
        tuple(str(c) for c in spec.classes or ()),
    )
    return BatchColumns(
        features=tuple(f.name for f in features.features),
        timestamp=features.timestamp,
        timestamp_out=columns.timestamp if columns else features.timestamp,
        entity=features.entity,
        prediction=prediction,
        score=score,
    )


def lower_batch(jobs: list[BatchJob], serving_version: int | None) -> tuple[BatchJobIR, ...]:
    """Each job with the version it scores with (the rules refused a job without one)."""
    lowered = []
    for job in jobs:
        version = job.version if job.version is not None else serving_version
        assert version is not None  # compiler/rules/batch.py reports KILN1661 first
        schedule = None if job.schedule is None else lower_schedule(job.schedule)
        lowered.append(
            BatchJobIR(
                job.name,
                job.input.uri,
                job.input.format,
                job.output,
                version,
                schedule,
                job.chunk_rows,
                job.resources.cpu,
                job.resources.memory,
            )
        )
    return tuple(lowered)


def lower_training(
    training: Training | None,
    features: FeatureSetSpec,
    runtime_image: str,
    classes: list[str | int] | None = None,
) -> TrainingIR | None:
    """What the pipeline targets need of `spec.training`; None when there is no training.
    Training rows come from the FeatureSet's source unless the spec names other data; the
    built-in trainer runs in Kiln's runtime image."""
    if training is None:
        return None
    trainer = training.trainer
    resources = training.resources
    data = (
        DataIR(training.data.uri, training.data.sha256)
        if training.data is not None
        else DataIR(features.source.uri, None, features.source.format)
    )
    return TrainingIR(
        image=runtime_image if training.image is None else training.image,
        command=tuple(training.command or ()),
        trainer=None
        if trainer is None
        else TrainerIR(
            trainer.library,
            trainer.estimator,
            tuple(sorted(trainer.params.items())),
            None if classes is None else tuple(classes),
            trainer.output,
        ),
        args=tuple(training.args),
        secret_env=tuple((name, _secret(ref)) for name, ref in sorted(training.secret_env.items())),
        data=data,
        resources=TrainingResourcesIR(resources.cpu, resources.memory, resources.gpus),
        seed=training.seed,
        holdout=training.holdout,
        schedule=_maybe(lower_schedule, training.schedule),
        gates=tuple(_gate(g) for g in training.gates),
    )


# --- monitoring ----------------------------------------------------------------------


def _dataset(dataset: Dataset) -> DatasetIR:
    return DatasetIR(dataset.uri, dataset.format, _maybe(lower_duration, dataset.lookback))


def _columns(columns: Columns) -> ColumnsIR:
    score = columns.score
    scores = tuple(score.items()) if isinstance(score, dict) else score
    return ColumnsIR(columns.timestamp, columns.prediction, scores, columns.target)


def _threshold(threshold: Threshold) -> ThresholdIR:
    bounds = threshold.constant
    constant = None if bounds is None else ConstantThresholdIR(bounds.lower, bounds.upper)
    return ThresholdIR(threshold.std, constant)


def _univariate(univariate: Univariate) -> UnivariateIR:
    return UnivariateIR(
        tuple(univariate.continuous),
        tuple(univariate.categorical),
        _maybe(_threshold, univariate.threshold),
    )


def _multivariate(multivariate: Multivariate) -> MultivariateIR:
    return MultivariateIR(
        multivariate.method, multivariate.max_rows, _maybe(_threshold, multivariate.threshold)
    )


def _drift(drift: Drift) -> DriftIR:
    return DriftIR(_maybe(_univariate, drift.univariate), _maybe(_multivariate, drift.multivariate))


def _performance(performance: Performance) -> PerformanceIR:
    return PerformanceIR(performance.estimator, tuple(performance.metrics))


def _data_quality(quality: DataQuality) -> DataQualityIR:
    return DataQualityIR(quality.missing_values, quality.unseen_values, quality.ranges)


def lower_monitoring(
    monitoring: Monitoring | None, captured: DatasetIR | None = None
) -> MonitoringIR | None:
    """What the monitor job and its targets need of `spec.monitoring`; None without it.
    `captured`: the captured traffic, the analysis data when the spec names none."""
    if monitoring is None:
        return None
    if monitoring.analysis is not None:
        analysis = _dataset(monitoring.analysis)
    elif captured is not None:
        analysis = captured
    else:
        raise ValueError("monitoring without analysis data needs serving.capture (KILN1650)")
    chunking = monitoring.chunking
    return MonitoringIR(
        schedule=lower_schedule(monitoring.schedule),
        reference=_dataset(monitoring.reference),
        analysis=analysis,
        columns=_columns(monitoring.columns),
        chunking=ChunkingIR(chunking.period, chunking.size, chunking.count),
        drift=_maybe(_drift, monitoring.drift),
        performance=_maybe(_performance, monitoring.performance),
        data_quality=_maybe(_data_quality, monitoring.data_quality),
    )


# --- alerts and their routes ---------------------------------------------------------


def lower_alert(alert: Alert) -> AlertIR:
    when = alert.when
    condition = ConditionIR(
        signal=when.signal,
        metric=when.metric,
        feature=when.feature,
        below=when.below,
        above=when.above,
        for_=_maybe(lower_duration, when.for_),
    )
    return AlertIR(alert.name, condition, alert.severity, alert.route)


def _secret(ref: SecretRef) -> SecretRefIR:
    return SecretRefIR(ref.name, ref.key)


def _slack(slack: SlackTarget) -> SlackIR:
    return SlackIR(_secret(slack.webhook_secret), slack.channel)


def _webhook(webhook: WebhookTarget) -> WebhookIR:
    headers = tuple((name, _secret(ref)) for name, ref in sorted(webhook.headers.items()))
    url_secret = _maybe(_secret, webhook.url_secret)
    return WebhookIR(webhook.url, url_secret, headers)


def lower_route(route: AlertRoute) -> RouteIR:
    alertmanager = route.alertmanager
    return RouteIR(
        name=route.name,
        alertmanager=None if alertmanager is None else AlertmanagerIR(alertmanager.url),
        slack=_maybe(_slack, route.slack),
        webhook=_maybe(_webhook, route.webhook),
    )


# --- environment and storage ---------------------------------------------------------


def _toleration(toleration: Toleration) -> TolerationIR:
    return TolerationIR(toleration.key, toleration.operator, toleration.value, toleration.effect)


def _gpu(gpu: Gpu) -> GpuIR:
    return GpuIR(
        resource=gpu.resource,
        node_selector=tuple(sorted(gpu.node_selector.items())),
        tolerations=tuple(_toleration(t) for t in gpu.tolerations),
    )


def _network(network: Network) -> NetworkIR:
    secret = network.admin_key_secret
    return NetworkIR(
        clients=tuple(sorted(set(network.clients))),
        monitoring_namespace=network.monitoring_namespace,
        admin_key_secret=None if secret is None else (secret.name, secret.key),
    )


def lower_environment(environment: Environment) -> EnvironmentIR:
    """What the targets render of an environment (its storage is lowered apart)."""
    return EnvironmentIR(
        name=environment.name,
        kind=environment.kind,
        gpu=_gpu(environment.gpu),
        prometheus_url=environment.prometheus_url,
        pushgateway_url=environment.pushgateway_url,
        monitoring_labels=tuple(sorted(environment.monitoring_labels.items())),
        trust=Trust(
            tuple(environment.signing.public_keys),
            tuple(TrustedIdentity(i.identity, i.issuer) for i in environment.signing.identities),
            environment.policy.require_signatures,
        ),
        signing_key=_maybe(_secret, environment.signing.key_secret),
        network=_network(environment.network),
    )


def lower_storage(storage: Storage) -> StorageIR:
    return StorageIR(storage.models, storage.data)


# --- FeatureSet and images -----------------------------------------------------------


def _feature(feature: Feature) -> FeatureIR:
    bounds = feature.range
    return FeatureIR(
        name=feature.name,
        dtype=feature.dtype,
        kind=feature.kind,
        range=None if bounds is None else RangeIR(bounds.min, bounds.max),
        values=None if feature.values is None else tuple(feature.values),
        description=feature.description,
    )


def lower_featureset(spec: FeatureSetSpec) -> FeatureColumnsIR:
    """A FeatureSet's spec, its features in the order written (the columns' order)."""
    return FeatureColumnsIR(
        version=spec.version,
        entity=spec.entity,
        timestamp=spec.timestamp,
        source=FeatureSourceIR(spec.source.uri, spec.source.format),
        features=tuple(_feature(f) for f in spec.features),
    )


def lower_images(images: Images) -> ImagesIR:
    return ImagesIR(images.runtime, images.triton)
