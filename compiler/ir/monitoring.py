"""The IR of monitoring, alerts and alert routes: plain values, built by compiler/lowering.py.

Field names follow the spec's: the plan lists the monitoring settings it does not
describe by name under their spec paths (compiler/plan/spec_paths.py), and the monitor
job's config takes the drift, performance and chunking blocks field for field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from compiler.ir.secret import SecretRefIR
from compiler.ir.serving import DurationIR
from compiler.ir.training import ScheduleIR

# Per-class score columns of a multiclass model, (class, column), in the spec's order.
ClassScores = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class DatasetIR:
    uri: str  # as written: the target places a relative one under the data store
    format: Literal["parquet", "csv"] | None  # None: read from the URI's suffix
    lookback: DurationIR | None


@dataclass(frozen=True)
class ColumnsIR:
    timestamp: str
    prediction: str
    score: str | ClassScores | None
    target: str | None  # None: the model's target column


@dataclass(frozen=True)
class ChunkingIR:
    """Exactly one field is set (a spec rule)."""

    period: Literal["h", "D", "W", "M"] | None
    size: int | None
    count: int | None


@dataclass(frozen=True)
class ConstantThresholdIR:
    lower: float | None
    upper: float | None


@dataclass(frozen=True)
class ThresholdIR:
    """Exactly one of std and constant is set (a spec rule)."""

    std: float | None
    constant: ConstantThresholdIR | None


@dataclass(frozen=True)
class UnivariateIR:
    continuous: tuple[str, ...]
    categorical: tuple[str, ...]
    threshold: ThresholdIR | None  # None: each method's default


@dataclass(frozen=True)
class MultivariateIR:
    method: Literal["reconstruction_error", "domain_classifier"]
    max_rows: int | None
    threshold: ThresholdIR | None


@dataclass(frozen=True)
class DriftIR:
    univariate: UnivariateIR | None
    multivariate: MultivariateIR | None


@dataclass(frozen=True)
class PerformanceIR:
    estimator: Literal["cbpe", "dle"]
    metrics: tuple[str, ...]


@dataclass(frozen=True)
class DataQualityIR:
    missing_values: bool
    unseen_values: bool
    ranges: bool


@dataclass(frozen=True)
class MonitoringIR:
    """The scheduled NannyML job."""

    schedule: ScheduleIR
    reference: DatasetIR
    analysis: DatasetIR
    columns: ColumnsIR
    chunking: ChunkingIR
    drift: DriftIR | None
    performance: PerformanceIR | None
    data_quality: DataQualityIR | None


@dataclass(frozen=True)
class ConditionIR:
    signal: str
    metric: str | None
    feature: str | None
    below: float | None
    above: float | None
    for_: DurationIR | None  # how long the condition must hold; None fires at once


@dataclass(frozen=True)
class AlertIR:
    name: str
    when: ConditionIR
    severity: Literal["info", "warning", "critical"]
    route: str


@dataclass(frozen=True)
class AlertmanagerIR:
    url: str


@dataclass(frozen=True)
class SlackIR:
    webhook_secret: SecretRefIR
    channel: str | None


@dataclass(frozen=True)
class WebhookIR:
    url: str | None  # exactly one of url and url_secret is set (a spec rule)
    url_secret: SecretRefIR | None
    headers: tuple[tuple[str, SecretRefIR], ...]  # (header, its Secret), sorted by header


@dataclass(frozen=True)
class RouteIR:
    """Where alerts go; exactly one target is set (a spec rule)."""

    name: str
    alertmanager: AlertmanagerIR | None
    slack: SlackIR | None
    webhook: WebhookIR | None
