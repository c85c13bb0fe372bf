"""The IR of serving and rollout: plain values, built from the spec by compiler/lowering.py.

Field names follow the spec's where a block keeps its shape: the plan lists the settings
it does not describe by name under their spec paths (compiler/plan/spec_paths.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class DurationIR:
    """A length of time: seconds for the targets, and the text as written for people.

    The plan quotes a duration as the spec wrote it ("for 1h30m", not "for 5400s").
    """

    seconds: float
    text: str


@dataclass(frozen=True)
class QueuePolicyIR:
    timeout_action: Literal["reject", "delay"]
    default_timeout_us: int  # 0 is no timeout
    allow_timeout_override: bool
    max_queue_size: int  # 0 is unbounded


@dataclass(frozen=True)
class DynamicBatchingIR:
    max_queue_delay_us: int
    preferred_batch_size: tuple[int, ...]
    preserve_ordering: bool
    priority_levels: int | None
    default_priority_level: int | None
    default_queue_policy: QueuePolicyIR | None


@dataclass(frozen=True)
class ResourcesIR:
    """One serving pod's request.

    cpu and memory stay Kubernetes quantities as written: the pod spec takes them as
    they are, and the plan shows them so.
    """

    gpus: int
    cpu: str
    memory: str


@dataclass(frozen=True)
class ReplicasIR:
    min: int
    max: int


@dataclass(frozen=True)
class AutoscalingIR:
    metric: Literal["queue_time_us", "cpu_utilization", "gpu_utilization"]
    target: float


@dataclass(frozen=True)
class TensorRTIR:
    precision: Literal["fp32", "fp16", "int8"]
    max_workspace_size_bytes: int | None


@dataclass(frozen=True)
class OptimizationIR:
    # Kept as a block, not flattened to its one setting: the plan lists `optimization`
    # and `optimization.tensorrt` as the spec paths they are.
    tensorrt: TensorRTIR | None


@dataclass(frozen=True)
class WarmupIR:
    batch_sizes: tuple[int, ...]
    data: Literal["zero", "random"]


@dataclass(frozen=True)
class SloIR:
    latency_p99_ms: float
    error_rate: float  # a fraction, 0 to 1


@dataclass(frozen=True)
class ServingIR:
    """How Triton serves the model; the instance groups are ModelIR.instance_groups."""

    version: int | None  # None: the model is not served yet in this environment
    max_batch_size: int  # 0 disables batching
    dynamic_batching: DynamicBatchingIR | None
    resources: ResourcesIR
    replicas: ReplicasIR
    autoscaling: AutoscalingIR | None
    optimization: OptimizationIR | None
    warmup: WarmupIR | None
    slo: SloIR | None


@dataclass(frozen=True)
class CanaryStepIR:
    weight: int | None  # percent of traffic
    pause: DurationIR | None
    analysis: bool


@dataclass(frozen=True)
class AnalysisIR:
    interval: DurationIR
    count: int
    failure_limit: int
    inconclusive_limit: int
    min_requests: int  # requests to the new pods in a window before a metric counts
    max_error_rate: float | None  # the analysis's own ceiling; the SLO's applies otherwise
    max_latency_p99_ms: float | None
    smoke_test: bool
    quality: QualityIR | None = None  # thresholds on captured predictions, when any is set


@dataclass(frozen=True)
class QualityIR:
    """Thresholds on the new version's captured predictions against the stable one's."""

    max_prediction_shift: float | None
    distance: str  # a runtime.contract.quality distance, the task's default applied
    min_agreement: float | None  # shadow only
    max_mean_abs_difference: float | None  # shadow only
    min_rows: int  # per version in the window


@dataclass(frozen=True)
class ShadowIR:
    mirror_percent: int
    duration: DurationIR


@dataclass(frozen=True)
class ABIR:
    header: str
    value: str
    weight: int  # percent of the traffic outside the cohort
    duration: DurationIR


@dataclass(frozen=True)
class BlueGreenIR:
    auto_promotion: bool
    scale_down_delay: DurationIR


@dataclass(frozen=True)
class RolloutIR:
    """How traffic moves to a new version. Every default is applied: the canary steps
    (the default path when none are written), shadow and blue-green settings."""

    strategy: Literal["canary", "blue_green", "shadow", "ab", "recreate"]
    traffic: Literal["istio", "replicas"]
    steps: tuple[CanaryStepIR, ...]
    analysis: AnalysisIR | None
    shadow: ShadowIR
    ab: ABIR | None  # the ab strategy requires it (a spec rule); it has no defaults
    blue_green: BlueGreenIR
