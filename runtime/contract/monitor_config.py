"""The monitor job's configuration: one JSON document per (model, environment).

The compiler renders it from a Model spec (`compiler/targets/monitor_config.py`); the job
(`python -m runtime.monitor --config F`) reads it with `load_config(path)`. It carries
everything the job needs and nothing it has to look up: column roles come from the
FeatureSet (never inferred from dtypes), data URIs are absolute or relative to the job's
working directory, and secrets are references resolved at run time (see `Secrets`).

Only monitor signals appear here; serving alerts (`latency_p99_ms`, `error_rate`) are
Prometheus rules and are left to the compiler's serving target.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic_core
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from runtime.contract.durations import duration_seconds
from runtime.contract.vocabulary import CBPE_METRICS, DLE_METRICS, Task

CONFIG_VERSION: Literal[1] = 1

_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def _check_duration(value: str) -> str:
    if duration_seconds(value) <= 0:
        raise ValueError(f"{value!r} is not a positive duration")
    return value


def _check_column(value: str) -> str:
    if not _COLUMN.fullmatch(value):
        raise ValueError(f"{value!r} is not a column name (letters, digits, '_')")
    return value


def _check_name(value: str) -> str:
    if not _NAME.fullmatch(value) or len(value) > 63:
        raise ValueError(f"{value!r} is not a DNS-1123 label")
    return value


# A key of a Kubernetes Secret (its data keys: IsConfigMapKey in apimachinery's
# validation). The job reads a key as a file under the Secret's mount, so the grammar is
# also what keeps a key from leaving it ('..', '/').
SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")
SECRET_KEY_MAX = 253


def secret_key_problem(value: str) -> str | None:
    """Why `value` is not a Kubernetes Secret key, or None."""
    if value in (".", "..") or not SECRET_KEY.fullmatch(value):
        return (
            f"{value!r} is not a Secret key: use letters, digits, '-', '_' and '.', not '.' or '..'"
        )
    if len(value) > SECRET_KEY_MAX:
        return f"a Secret key is at most {SECRET_KEY_MAX} characters; this one has {len(value)}"
    return None


def _check_secret_key(value: str) -> str:
    problem = secret_key_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


Duration = Annotated[str, AfterValidator(_check_duration)]
Column = Annotated[str, AfterValidator(_check_column)]
Name = Annotated[str, AfterValidator(_check_name)]
SecretKey = Annotated[str, AfterValidator(_check_secret_key)]


class Strict(BaseModel):
    """Unknown fields are errors; values are immutable."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )


class ValueRange(Strict):
    """Declared bounds of a continuous feature; either end may be open."""

    min: float | None = None
    max: float | None = None


class FeatureColumn(Strict):
    """A feature column with its role. `kind` decides the NannyML treatment."""

    name: Column
    dtype: Literal["float32", "float64", "int32", "int64", "string", "bool"]
    kind: Literal["continuous", "categorical"]
    range: ValueRange | None = None
    values: list[str | int | bool] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _role_fits(self) -> FeatureColumn:
        if self.kind == "continuous" and self.dtype in ("string", "bool"):
            raise ValueError(f"feature {self.name!r} is {self.dtype} and cannot be continuous")
        if self.kind == "categorical" and self.range is not None:
            raise ValueError(f"feature {self.name!r} is categorical and cannot have a range")
        if self.kind == "continuous" and self.values is not None:
            raise ValueError(f"feature {self.name!r} is continuous and cannot list values")
        return self


class Columns(Strict):
    """Every column the job reads, with its role."""

    timestamp: Column
    prediction: Column
    score: Column | dict[str, Column] | None = None
    target: Column | None = None
    features: list[FeatureColumn] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> Columns:
        names = [f.name for f in self.features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"features listed twice: {', '.join(duplicates)}")
        for role, column in self.role_columns().items():
            if column in names:
                raise ValueError(f"column {column!r} is both a feature and the {role} column")
        return self

    def role_columns(self) -> dict[str, str]:
        """Non-feature columns by role (score columns as `score[class]` for multiclass)."""
        roles = {"timestamp": self.timestamp, "prediction": self.prediction}
        if isinstance(self.score, str):
            roles["score"] = self.score
        elif self.score:
            roles.update({f"score[{label}]": c for label, c in sorted(self.score.items())})
        if self.target:
            roles["target"] = self.target
        return roles

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def continuous(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "continuous"]

    @property
    def categorical(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "categorical"]


class DataSource(Strict):
    """A data set: one file, or a folder/prefix of files of one format."""

    uri: str = Field(min_length=1)
    format: Literal["parquet", "csv"]
    lookback: Duration | None = Field(
        None, description="Keep only rows this recent, relative to the latest timestamp."
    )


class Labels(Strict):
    """Ground truth that arrives after the predictions: parquet files holding the target
    column and one or more of `keys`, joined onto the analysis rows by the first key that
    both carry (runtime/monitor/labels.py): a served row's `request_id`, then the
    FeatureSet's id column."""

    uri: str = Field(min_length=1)
    keys: list[Column] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> Labels:
        if len(set(self.keys)) != len(self.keys):
            raise ValueError(f"label keys are listed twice: {', '.join(self.keys)}")
        return self


class Chunking(Strict):
    """How data is cut into chunks: exactly one field."""

    period: Literal["h", "D", "W", "M"] | None = None
    size: int | None = Field(None, ge=1)
    count: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _one(self) -> Chunking:
        if sum(v is not None for v in (self.period, self.size, self.count)) != 1:
            raise ValueError("chunking needs exactly one of period, size, count")
        return self


class ConstantBounds(Strict):
    lower: float | None = None
    upper: float | None = None


class Threshold(Strict):
    """Multiples of the reference chunks' standard deviation, or constant bounds."""

    std: float | None = Field(None, gt=0)
    constant: ConstantBounds | None = None

    @model_validator(mode="after")
    def _one(self) -> Threshold:
        if (self.std is None) == (self.constant is None):
            raise ValueError("threshold needs exactly one of std, constant")
        return self


ContinuousMethod = Literal["kolmogorov_smirnov", "jensen_shannon", "wasserstein", "hellinger"]
CategoricalMethod = Literal["chi2", "jensen_shannon", "l_infinity", "hellinger"]


class Univariate(Strict):
    continuous: list[ContinuousMethod] = Field(min_length=1)
    categorical: list[CategoricalMethod] = Field(min_length=1)
    threshold: Threshold | None = Field(
        None, description="Applies to every method but chi2 (a p-value test in NannyML)."
    )


class Multivariate(Strict):
    method: Literal["reconstruction_error", "domain_classifier"] = "reconstruction_error"
    max_rows: int | None = Field(
        None, ge=100, description="Row budget of the domain classifier, per data set."
    )
    threshold: Threshold | None = None


class Drift(Strict):
    univariate: Univariate | None = None
    multivariate: Multivariate | None = None


class Performance(Strict):
    estimator: Literal["cbpe", "dle"]
    metrics: list[str] = Field(min_length=1)
    realized: bool = Field(True, description="Also compute realised performance from targets.")

    @model_validator(mode="after")
    def _known(self) -> Performance:
        known = CBPE_METRICS if self.estimator == "cbpe" else DLE_METRICS
        unknown = [m for m in self.metrics if m not in known]
        if unknown:
            raise ValueError(
                f"{self.estimator} cannot estimate {', '.join(unknown)}; "
                f"it supports {', '.join(known)}"
            )
        if len(set(self.metrics)) != len(self.metrics):
            raise ValueError("performance metrics are listed twice")
        return self


class DataQuality(Strict):
    missing_values: bool = True
    unseen_values: bool = True
    ranges: bool = True


MonitorSignal = Literal[
    "drift",
    "multivariate_drift",
    "estimated_performance",
    "realized_performance",
    "missing_values",
    "unseen_values",
    "range",
]
MONITOR_SIGNALS: tuple[str, ...] = MonitorSignal.__args__  # type: ignore[attr-defined]


class AlertRule(Strict):
    """Fires per chunk. Without below/above it follows NannyML's alert flag of the signal."""

    name: Name
    signal: MonitorSignal
    metric: str | None = None
    feature: Column | None = None
    below: float | None = None
    above: float | None = None
    for_: Duration | None = Field(None, alias="for")
    severity: Literal["info", "warning", "critical"]
    route: Name


class SecretRef(Strict):
    """A key of a Kubernetes Secret; see `Secrets` for how the job reads it."""

    name: Name
    key: SecretKey


class AlertmanagerTarget(Strict):
    url: str = Field(min_length=1)


class SlackTarget(Strict):
    webhook_secret: SecretRef
    channel: str | None = None


class WebhookTarget(Strict):
    url: str | None = Field(None, min_length=1)
    url_secret: SecretRef | None = None  # the URL, when it holds a credential
    headers: dict[str, SecretRef] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_url(self) -> WebhookTarget:
        if (self.url is None) == (self.url_secret is None):
            raise ValueError("a webhook needs exactly one of url, url_secret")
        return self


class Route(Strict):
    name: Name
    alertmanager: AlertmanagerTarget | None = None
    slack: SlackTarget | None = None
    webhook: WebhookTarget | None = None

    @model_validator(mode="after")
    def _one(self) -> Route:
        if sum(t is not None for t in (self.alertmanager, self.slack, self.webhook)) != 1:
            raise ValueError(
                f"route {self.name!r} needs exactly one of alertmanager, slack, webhook"
            )
        return self

    @property
    def kind(self) -> str:
        return "alertmanager" if self.alertmanager else "slack" if self.slack else "webhook"


class Delivery(Strict):
    """Retries of alert delivery: `attempts` tries, waiting backoff * 2**n between them."""

    attempts: int = Field(4, ge=1, le=10)
    backoff_seconds: float = Field(1.0, ge=0)
    max_backoff_seconds: float = Field(30.0, ge=0)
    timeout_seconds: float = Field(10.0, gt=0)
    resolve_after: Duration = Field(
        "2h", description="Alertmanager endsAt = run time + this; each run re-asserts alerts."
    )


class Secrets(Strict):
    """Where secret values come from at run time, first match wins.

    1. the environment variable `<env_prefix><NAME>_<KEY>`, with NAME and KEY upper-cased
       and every character outside [A-Z0-9] replaced by '_' (slack-webhook/url ->
       KILN_SECRET_SLACK_WEBHOOK_URL);
    2. the file `<directory>/<name>/<key>`: the layout of a Kubernetes Secret volume
       mounted at `<directory>/<name>`.
    """

    env_prefix: str = "KILN_SECRET_"
    directory: str = "/var/run/secrets/kiln"


def version_label(version: int | None) -> str:
    """A serving version as a label value: its number, or "none" before one serves."""
    return "none" if version is None else str(version)


class MonitorConfig(Strict):
    """The whole job: what to read, what to compute, when to alert and where to send it."""

    config_version: Literal[1] = CONFIG_VERSION
    model: Name
    environment: Name
    version: int | None = Field(
        None,
        ge=1,
        description="The serving version the predictions come from; none before the first "
        "version serves (the analysis data then comes from elsewhere, offline scoring say).",
    )
    task: Task
    columns: Columns
    reference: DataSource
    analysis: DataSource
    labels: Labels | None = Field(
        None, description="Late ground truth joined onto the analysis rows (served traffic)."
    )
    chunking: Chunking
    drift: Drift | None = None
    performance: Performance | None = None
    data_quality: DataQuality | None = None
    alerts: list[AlertRule] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)
    delivery: Delivery = Field(default_factory=Delivery)
    secrets: Secrets = Field(default_factory=Secrets)
    report_url: str | None = Field(None, description="Where the HTML report is published.")
    pushgateway: str | None = Field(None, description="Prometheus Pushgateway base URL.")

    @model_validator(mode="after")
    def _consistent(self) -> MonitorConfig:
        problems = _task_problems(self) + _alert_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def version_label(self) -> str:
        """The version as metric labels and alert annotations carry it."""
        return version_label(self.version)

    @property
    def served_as(self) -> str:
        """The version as messages name it."""
        return "not served yet" if self.version is None else f"v{self.version}"

    @property
    def classification(self) -> bool:
        return self.task != "regression"

    def computes(self, signal: str) -> bool:
        """Whether this configuration computes `signal` at all."""
        drift, dq, perf = self.drift, self.data_quality, self.performance
        return {
            "drift": bool(drift and drift.univariate),
            "multivariate_drift": bool(drift and drift.multivariate),
            "estimated_performance": perf is not None,
            "realized_performance": bool(perf and perf.realized and self.columns.target),
            "missing_values": bool(dq and dq.missing_values),
            "unseen_values": bool(dq and dq.unseen_values and self.columns.categorical),
            "range": bool(dq and dq.ranges and _declared_features(self.columns)),
        }[signal]


def _declared_features(columns: Columns) -> list[str]:
    return [
        f.name
        for f in columns.features
        if (f.range and (f.range.min is not None or f.range.max is not None)) or f.values
    ]


def _task_problems(config: MonitorConfig) -> list[str]:
    problems: list[str] = []
    score = config.columns.score
    if config.task == "binary_classification" and isinstance(score, dict):
        problems.append("binary classification takes one score column, not a mapping")
    if config.task == "multiclass_classification" and isinstance(score, str):
        problems.append("multiclass classification takes a score column per class (a mapping)")
    perf = config.performance
    if perf is not None:
        if perf.estimator == "cbpe" and not config.classification:
            problems.append("cbpe estimates classification performance; use dle for regression")
        if perf.estimator == "dle" and config.classification:
            problems.append("dle estimates regression performance; use cbpe for classification")
        if perf.estimator == "cbpe" and score is None:
            problems.append("cbpe needs the score column (predicted probabilities)")
        if config.columns.target is None:
            problems.append(f"{perf.estimator} needs the target column to fit on the reference")
    if not any(config.computes(s) for s in MONITOR_SIGNALS):
        problems.append(
            "the configuration computes nothing: enable drift, performance or data quality"
        )
    return problems


def _alert_problems(config: MonitorConfig) -> list[str]:
    problems: list[str] = []
    routes = {r.name for r in config.routes}
    features = {f.name: f for f in config.columns.features}
    metrics = set(config.performance.metrics) if config.performance else set()
    if len(routes) != len(config.routes):
        problems.append("routes are listed twice")
    names = [a.name for a in config.alerts]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"alert {name!r} is listed twice")
    for rule in config.alerts:
        where = f"alert {rule.name!r}"
        if rule.route not in routes:
            problems.append(f"{where} sends to route {rule.route!r}, which is not configured")
        if not config.computes(rule.signal):
            problems.append(f"{where} watches {rule.signal}, which this monitor does not compute")
        if rule.below is not None and rule.above is not None and rule.below > rule.above:
            problems.append(f"{where} fires below {rule.below} or above {rule.above}: never empty")
        if rule.signal in ("estimated_performance", "realized_performance"):
            if rule.feature is not None:
                problems.append(f"{where} watches performance and cannot name a feature")
            if rule.metric is not None and rule.metric not in metrics:
                problems.append(f"{where} watches metric {rule.metric!r}, which is not computed")
        elif rule.signal == "multivariate_drift":
            if rule.feature is not None:
                problems.append(f"{where} watches multivariate drift and cannot name a feature")
        elif rule.metric is not None:
            problems.append(f"{where} watches {rule.signal} and cannot name a metric")
        if rule.feature is not None:
            feature = features.get(rule.feature)
            if feature is None:
                problems.append(f"{where} names feature {rule.feature!r}, which is not a feature")
            elif rule.signal == "unseen_values" and feature.kind != "categorical":
                problems.append(f"{where}: unseen values are checked on categorical features only")
            elif rule.signal == "range" and feature.name not in _declared_features(config.columns):
                problems.append(f"{where}: feature {rule.feature!r} declares no range or values")
    return problems


def load_config(path: Path) -> MonitorConfig:
    """Read and validate a config file (JSON)."""
    return MonitorConfig.model_validate(json.loads(path.read_text(encoding="utf-8")))


def dump_config(config: MonitorConfig) -> dict[str, Any]:
    """The config as JSON data: aliases (`for`), no empty fields, ready for sorted dumping."""
    data: dict[str, Any] = config.model_dump(mode="json", by_alias=True, exclude_none=True)
    return data


def _keys_sorted(value: Any) -> Any:
    if type(value) is dict:
        return {key: _keys_sorted(value[key]) for key in sorted(value)}
    if type(value) is list:
        return [_keys_sorted(item) for item in value]
    return value


def config_text(config: MonitorConfig) -> str:
    """Deterministic JSON text of a config: sorted keys, two-space indent, final newline.

    pydantic-core's encoder, not `json.dumps`: the same text (small floats aside, which
    it writes without an exponent) several times faster, for thousands of models.
    """
    text = pydantic_core.to_json(_keys_sorted(dump_config(config)), indent=2)
    return text.decode("utf-8") + "\n"
