"""Spec blocks -> IR values: durations in seconds, lists as tuples, defaults applied.

resolve calls these once per (model, environment), on a spec that passed every spec
rule, so a target reads numbers and never parses a spec's text again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from compiler.ir.serving import (
    ABIR,
    AnalysisIR,
    AutoscalingIR,
    BlueGreenIR,
    CanaryStepIR,
    DurationIR,
    DynamicBatchingIR,
    OptimizationIR,
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
from compiler.ir.training import DataIR, GateIR, ScheduleIR, TrainingIR, TrainingResourcesIR
from compiler.spec.model import (
    AB,
    Analysis,
    Autoscaling,
    BlueGreen,
    DynamicBatching,
    Gate,
    Optimization,
    QueuePolicy,
    Rollout,
    Serving,
    Shadow,
    Slo,
    Step,
    Training,
    Warmup,
)
from compiler.spec.types import Schedule
from runtime.contract.durations import duration_seconds

Block = TypeVar("Block")
Lowered = TypeVar("Lowered")

# The canary path when a rollout writes no steps: (weight, pause) twice, with the
# analysis, when there is one, after the first.
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


def _default_steps(analysed: bool) -> tuple[CanaryStepIR, ...]:
    (first, first_pause), (second, second_pause) = DEFAULT_CANARY
    analysis = (CanaryStepIR(None, None, True),) if analysed else ()
    return (
        CanaryStepIR(first, lower_duration(first_pause), False),
        *analysis,
        CanaryStepIR(second, lower_duration(second_pause), False),
    )


def _analysis(analysis: Analysis) -> AnalysisIR:
    return AnalysisIR(
        interval=lower_duration(analysis.interval),
        count=analysis.count,
        failure_limit=analysis.failure_limit,
        max_error_rate=analysis.max_error_rate,
        max_latency_p99_ms=analysis.max_latency_p99_ms,
        smoke_test=analysis.smoke_test,
    )


def _shadow(shadow: Shadow) -> ShadowIR:
    return ShadowIR(shadow.mirror_percent, lower_duration(shadow.duration))


def _ab(ab: AB) -> ABIR:
    return ABIR(ab.header, ab.value, ab.weight, lower_duration(ab.duration))


def _blue_green(blue_green: BlueGreen) -> BlueGreenIR:
    return BlueGreenIR(blue_green.auto_promotion, lower_duration(blue_green.scale_down_delay))


def lower_rollout(rollout: Rollout) -> RolloutIR:
    """What the targets need of `spec.rollout`, with the spec's defaults for unwritten blocks."""
    steps = (
        _default_steps(rollout.analysis is not None)
        if rollout.steps is None
        else tuple(_step(s) for s in rollout.steps)
    )
    return RolloutIR(
        strategy=rollout.strategy,
        traffic=rollout.traffic,
        steps=steps,
        analysis=_maybe(_analysis, rollout.analysis),
        shadow=_shadow(rollout.shadow or Shadow()),
        ab=_maybe(_ab, rollout.ab),
        blue_green=_blue_green(rollout.blue_green or BlueGreen()),
    )


# --- training ------------------------------------------------------------------------


def lower_schedule(schedule: Schedule) -> ScheduleIR:
    return ScheduleIR(schedule.cron, schedule.timezone)


def _gate(gate: Gate) -> GateIR:
    return GateIR(gate.metric, gate.min, gate.max, gate.max_regression)


def lower_training(training: Training | None) -> TrainingIR | None:
    """What the pipeline targets need of `spec.training`; None when there is no training."""
    if training is None:
        return None
    resources = training.resources
    return TrainingIR(
        image=training.image,
        command=tuple(training.command),
        args=tuple(training.args),
        data=DataIR(training.data.uri, training.data.sha256),
        resources=TrainingResourcesIR(resources.cpu, resources.memory, resources.gpus),
        seed=training.seed,
        holdout=training.holdout,
        schedule=_maybe(lower_schedule, training.schedule),
        gates=tuple(_gate(g) for g in training.gates),
    )
