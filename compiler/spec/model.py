"""The Model kind: versions, serving, rollout, training, monitoring and alerts."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from compiler.spec.types import (
    INT32_MAX,
    ColumnName,
    Duration,
    EnvVarName,
    FeatureRef,
    Fraction,
    GpuCount,
    Image,
    Int32Seconds,
    Name,
    NonNegativeInt,
    PositiveInt,
    Quantity,
    Schedule,
    Seconds,
    SecretRef,
    Sha256,
    SpecModel,
    Uri,
    fail,
    shown,
)
from runtime.contract.formats import FormatName
from runtime.contract.quality import ShiftDistance
from runtime.contract.signature import Dtype
from runtime.contract.trainers import PARAM_TEXT, ParamValue
from runtime.contract.vocabulary import Task

# Instances of one group: the local environment adds all groups into one int32 count.
MAX_INSTANCES = 1024


class Tensor(SpecModel):
    """One input or output of the model, as Triton sees it (batch dimension included)."""

    name: str = Field(min_length=1, description="Tensor name in the model file.")
    dtype: Dtype = Field(description="Element type.")
    shape: list[Annotated[int, Field(le=INT32_MAX)]] = Field(
        min_length=1, description="Dimensions; -1 for variable."
    )

    @model_validator(mode="after")
    def _dims(self) -> Tensor:
        if any(d == 0 or d < -1 for d in self.shape):
            raise fail("KILN1105", f"tensor `{self.name}` has a dimension that is not -1 or >= 1")
        return self


class Signature(SpecModel):
    """Inputs and outputs of the model."""

    inputs: list[Tensor] = Field(min_length=1, description="Input tensors.")
    outputs: list[Tensor] = Field(min_length=1, description="Output tensors.")


class Artifact(SpecModel):
    """A model file in an object store, pinned by its digest."""

    uri: Uri = Field(description="Absolute URI, or a path relative to the model store.")
    sha256: Sha256 | None = Field(
        None, description="sha256 of the file; of a folder, its folder digest (serving.md)."
    )
    signature: Uri | None = Field(
        None, description="Its OpenSSF model-signing bundle (publish writes <uri>.sig)."
    )


class Fil(SpecModel):
    """Settings of Triton's FIL backend, which serves XGBoost and LightGBM models."""

    model_type: (
        Literal["xgboost", "xgboost_json", "xgboost_ubj", "lightgbm", "treelite_checkpoint"] | None
    ) = Field(
        None, description="Serialisation of the file; from the format and file name if empty."
    )
    output_class: bool | None = Field(
        None, description="Classifier (true) or regressor (false); from the task if empty."
    )
    predict_proba: bool = Field(False, description="Return a score per class, not the class.")
    threshold: float | None = Field(
        None, ge=0, le=1, description="Decision threshold of a binary classifier (FIL: 0.5)."
    )
    storage_type: Literal["AUTO", "DENSE", "SPARSE", "SPARSE8"] = Field(
        "AUTO", description="How trees sit in GPU memory."
    )
    algo: Literal["ALGO_AUTO", "NAIVE", "TREE_REORG", "BATCH_TREE_REORG"] = Field(
        "ALGO_AUTO", description="Tree layout and traversal on GPUs."
    )


class PythonModel(SpecModel):
    """A model run by Triton's python backend: the artifact is its model.py."""

    execution_env: Uri | None = Field(
        None,
        description="A conda-pack archive (.tar.gz) with the model's requirements; the "
        "backend's own Python when empty.",
    )
    execution_env_sha256: Sha256 | None = Field(
        None, description="sha256 of the archive, checked before Triton starts."
    )


class Version(SpecModel):
    """One trained version of the model."""

    version: PositiveInt = Field(description="Version number; Triton's version folder.")
    format: FormatName = Field("onnx", description="What the artifact is; how Triton runs it.")
    artifact: Artifact = Field(
        description="The model file (a folder for savedmodel, model.py for python)."
    )
    fil: Fil | None = Field(None, description="FIL backend settings (xgboost, lightgbm).")
    python: PythonModel | None = Field(None, description="Python backend settings (python).")
    metrics: dict[str, float] = Field(
        default_factory=dict, description="Metrics recorded at training (regression gates)."
    )
    description: str | None = Field(None, description="What changed in this version.")


# Formats a step of an ensemble may have: those the local Triton runs (through the
# python backend), so an ensemble serves the same in every environment.
StepFormat = Literal["onnx", "python"]


class StepArtifact(SpecModel):
    """A step's model file, pinned by its digest."""

    uri: Uri = Field(description="Absolute URI, or a path relative to the model store.")
    sha256: Sha256 | None = Field(None, description="sha256 of the file.")
    signature: Uri | None = Field(
        None, description="Its OpenSSF model-signing bundle, verified where the pods trust signers."
    )


class EnsembleStep(SpecModel):
    """One model of an ensemble, and how its tensors connect to the ensemble's."""

    name: Name = Field(description="Step name; Triton serves the step as <model>.<name>.")
    format: StepFormat = Field("python", description="What the artifact is.")
    artifact: StepArtifact = Field(description="The step's model file (model.py for python).")
    signature: Signature = Field(description="The step's own tensors (batch dimension included).")
    input_map: dict[str, str] = Field(
        min_length=1, description="Step input -> ensemble tensor that feeds it."
    )
    output_map: dict[str, str] = Field(
        min_length=1, description="Step output -> ensemble tensor it produces."
    )
    max_batch_size: NonNegativeInt | None = Field(
        None, description="The step's largest batch; serving.max_batch_size when empty."
    )


class Ensemble(SpecModel):
    """A pipeline of steps served as one Triton ensemble, whose tensors are spec.signature."""

    version: PositiveInt = Field(1, description="Version folder of the ensemble and its steps.")
    steps: list[EnsembleStep] = Field(min_length=1, description="The models, in any order.")


class QueuePolicy(SpecModel):
    """How Triton treats queued requests."""

    timeout_action: Literal["reject", "delay"] = Field("reject", description="On timeout.")
    default_timeout_us: NonNegativeInt = Field(0, description="Queue timeout; 0 is none.")
    allow_timeout_override: bool = Field(False, description="Clients may set the timeout.")
    max_queue_size: NonNegativeInt = Field(0, description="Queue bound; 0 is unbounded.")


class DynamicBatching(SpecModel):
    """Server-side batching of concurrent requests."""

    max_queue_delay_us: NonNegativeInt = Field(0, description="How long to wait for a batch.")
    preferred_batch_size: list[PositiveInt] = Field(
        default_factory=list, description="Batch sizes to prefer (rarely useful)."
    )
    preserve_ordering: bool = Field(False, description="Return responses in request order.")
    priority_levels: PositiveInt | None = Field(None, description="Number of priorities.")
    default_priority_level: PositiveInt | None = Field(None, description="Default priority.")
    default_queue_policy: QueuePolicy | None = Field(None, description="Queue policy.")


class InstanceGroup(SpecModel):
    """Copies of the model per replica, on GPUs or CPUs."""

    kind: Literal["gpu", "cpu"] = Field(description="gpu or cpu.")
    count: int = Field(1, ge=1, le=MAX_INSTANCES, description="Instances per device.")
    gpus: list[NonNegativeInt] | None = Field(
        None, description="GPU indices within the replica; all when empty."
    )


class Resources(SpecModel):
    """What one pod requests."""

    gpus: GpuCount = Field(0, description="Whole GPUs per pod.")
    cpu: Quantity = Field("1", description="CPU request and limit.")
    memory: Quantity = Field("2Gi", description="Memory request and limit.")


class Replicas(SpecModel):
    """Bounds on the number of serving pods."""

    min: NonNegativeInt = Field(1, description="Fewest pods.")
    max: PositiveInt = Field(1, description="Most pods.")

    @model_validator(mode="after")
    def _ordered(self) -> Replicas:
        if self.min > self.max:
            raise fail("KILN1105", f"replicas min {self.min} is above max {self.max}")
        return self


class Autoscaling(SpecModel):
    """What scales the pods between replicas.min and replicas.max."""

    metric: Literal["queue_time_us", "cpu_utilization", "gpu_utilization"] = Field(
        description="Signal to scale on."
    )
    target: float = Field(gt=0, description="Target value of the signal.")


class TensorRT(SpecModel):
    """TensorRT acceleration of the ONNX Runtime backend on GPUs."""

    precision: Literal["fp32", "fp16", "int8"] = Field("fp16", description="Precision.")
    # Triton hands it to ONNX Runtime as a byte count it reads into 64 bits.
    max_workspace_size_bytes: int | None = Field(None, ge=1, le=2**63 - 1, description="Workspace.")


class Optimization(SpecModel):
    """Backend accelerators."""

    tensorrt: TensorRT | None = Field(None, description="TensorRT on GPU instances.")


class Warmup(SpecModel):
    """Requests Triton runs before it reports ready."""

    batch_sizes: list[PositiveInt] = Field(min_length=1, description="Batch sizes to warm.")
    data: Literal["zero", "random"] = Field("zero", description="Input data of warm-up.")


class Slo(SpecModel):
    """Service-level objectives of the serving endpoint."""

    latency_p99_ms: float = Field(gt=0, description="p99 latency objective.")
    error_rate: Fraction = Field(description="Highest share of failed requests.")


class Capture(SpecModel):
    """Recording of served traffic into the data store (docs/capture.md)."""

    enabled: bool = Field(True, description="Capture at all; false turns a default off.")
    sample: Fraction = Field(1.0, description="Share of requests captured, 0 to 1.")
    buffer_rows: int = Field(
        100_000, ge=1, le=10_000_000, description="Rows held in memory; more are dropped."
    )
    flush_rows: int = Field(10_000, ge=1, le=10_000_000, description="Rows per written part.")
    flush_interval: Seconds = Field("5s", description="Longest wait before rows are written.")

    @model_validator(mode="after")
    def _reachable_flush(self) -> Capture:
        # Rows past buffer_rows are dropped, so a larger part would never fill: only the
        # interval would ever write, and the setting would mean nothing.
        if self.flush_rows <= self.buffer_rows:
            return self
        written = "flush_rows" in self.model_fields_set
        flush = f"flush_rows {self.flush_rows}" + ("" if written else " (the default)")
        raise fail(
            "KILN1105",
            f"{flush} is above buffer_rows {self.buffer_rows}, which the buffer never holds: "
            "set flush_rows at or below buffer_rows",
            at="flush_rows" if written else "buffer_rows",
        )


class Serving(SpecModel):
    """How the model is served by Triton."""

    version: PositiveInt | None = Field(
        None, description="The version that should serve; none: the model is not served yet."
    )
    max_batch_size: NonNegativeInt = Field(0, description="Largest batch; 0 disables batching.")
    dynamic_batching: DynamicBatching | None = Field(None, description="Dynamic batching.")
    instance_groups: list[InstanceGroup] | None = Field(
        None, min_length=1, description="Instances; one per GPU (or one CPU) when empty."
    )
    resources: Resources = Field(default_factory=Resources, description="Per pod.")
    replicas: Replicas = Field(default_factory=Replicas, description="Pod count bounds.")
    autoscaling: Autoscaling | None = Field(None, description="Scaling signal.")
    optimization: Optimization | None = Field(None, description="Accelerators.")
    warmup: Warmup | None = Field(None, description="Warm-up requests.")
    slo: Slo | None = Field(None, description="Objectives used by analysis and alerts.")
    capture: Capture | None = Field(
        None,
        description="Record requests and answers; on by default in `local` environments, "
        "off elsewhere unless declared.",
    )


class Step(SpecModel):
    """One step of a canary: set a weight, pause, or run the analysis."""

    weight: int | None = Field(None, ge=1, le=100, description="Share of traffic, percent.")
    pause: Seconds | None = Field(None, description="Time to hold at this step.")
    analysis: bool = Field(False, description="Run the analysis at this step.")

    @model_validator(mode="after")
    def _something(self) -> Step:
        if self.weight is None and self.pause is None and not self.analysis:
            raise fail("KILN1105", "a rollout step needs weight, pause or analysis")
        if self.analysis and self.weight is not None:
            raise fail("KILN1105", "a step either sets a weight or runs the analysis, not both")
        return self


class Analysis(SpecModel):
    """Checks that stop a rollout when the new version is bad."""

    interval: Seconds = Field("1m", description="How often metrics are measured.")
    count: PositiveInt = Field(5, description="Measurements per analysis.")
    failure_limit: NonNegativeInt = Field(1, description="Failed measurements tolerated.")
    inconclusive_limit: NonNegativeInt = Field(
        2, description="Measurements without enough data tolerated before the rollout pauses."
    )
    min_requests: PositiveInt = Field(
        100, description="Requests to the new version in a window before any metric counts."
    )
    max_error_rate: Fraction | None = Field(None, description="Error-rate ceiling.")
    max_latency_p99_ms: float | None = Field(None, gt=0, description="p99 latency ceiling.")
    smoke_test: bool = Field(True, description="Run the smoke test against the new version.")
    max_prediction_shift: float | None = Field(
        None,
        gt=0,
        description="Largest distance between the new and stable versions' captured "
        "prediction distributions over the same window.",
    )
    shift_distance: ShiftDistance | None = Field(
        None,
        description="Distance of max_prediction_shift: jensen_shannon or psi (classifiers), "
        "wasserstein or ks (regression); by default jensen_shannon or wasserstein.",
    )
    min_agreement: Fraction | None = Field(
        None,
        description="Shadow only: lowest share of mirrored requests both versions label alike.",
    )
    max_mean_abs_difference: float | None = Field(
        None,
        ge=0,
        description="Shadow only: largest mean absolute difference of the two versions' "
        "scores (values, for regression) on the same mirrored requests.",
    )
    min_rows: PositiveInt = Field(
        500,
        description="Captured rows of each version in the window before a quality threshold "
        "counts; fewer is inconclusive, never a pass.",
    )


class Shadow(SpecModel):
    """Mirroring live traffic to the new version before it takes any."""

    mirror_percent: int = Field(100, ge=1, le=100, description="Share of traffic mirrored.")
    duration: Seconds = Field("30m", description="How long to mirror before promotion.")


class AB(SpecModel):
    """Routing a cohort to the new version by header, and a share of the rest."""

    header: str = Field(min_length=1, description="Request header that selects the cohort.")
    value: str = Field(min_length=1, description="Header value (exact match).")
    weight: int = Field(0, ge=0, le=100, description="Share of other traffic, percent.")
    duration: Seconds = Field("1h", description="How long the experiment runs.")


class BlueGreen(SpecModel):
    """Preview then switch."""

    auto_promotion: bool = Field(True, description="Promote when the analysis passes.")
    scale_down_delay: Int32Seconds = Field("30s", description="Keep the old pods this long.")


class Rollout(SpecModel):
    """How traffic moves from the serving version to a new one."""

    strategy: Literal["canary", "blue_green", "shadow", "ab", "recreate"] = Field(
        "canary", description="Rollout strategy."
    )
    traffic: Literal["istio", "replicas"] = Field(
        "replicas", description="Split by Istio routing or by pod counts."
    )
    steps: list[Step] | None = Field(None, min_length=1, description="Canary steps.")
    analysis: Analysis | None = Field(None, description="Analysis of the new version.")
    shadow: Shadow | None = Field(None, description="Settings of the shadow strategy.")
    ab: AB | None = Field(None, description="Settings of the ab strategy.")
    blue_green: BlueGreen | None = Field(None, description="Settings of blue_green.")


class DataRef(SpecModel):
    """A data snapshot, pinned by digest when known."""

    uri: Uri = Field(description="File or prefix.")
    sha256: Sha256 | None = Field(None, description="Digest of the snapshot.")


class TrainingResources(SpecModel):
    """What the training pod requests."""

    cpu: Quantity = Field("1", description="CPU.")
    memory: Quantity = Field("2Gi", description="Memory.")
    gpus: GpuCount = Field(0, description="Whole GPUs.")


class Gate(SpecModel):
    """A condition a newly trained version must meet to be published."""

    metric: str = Field(min_length=1, description="Metric name.")
    min: float | None = Field(None, description="Lowest acceptable value.")
    max: float | None = Field(None, description="Highest acceptable value (losses).")
    max_regression: float | None = Field(
        None, ge=0, description="Largest drop against the serving version's metric."
    )

    @model_validator(mode="after")
    def _one_bound(self) -> Gate:
        if sum(v is not None for v in (self.min, self.max, self.max_regression)) != 1:
            raise fail(
                "KILN1105", f"gate on `{self.metric}` needs exactly one of min, max, max_regression"
            )
        return self


PLAIN_VALUE = "write a number, true/false, null or a name of letters, digits and _ . + -"


def _param_value(value: Any) -> ParamValue:
    """A plain scalar, checked before pydantic tries each type of the union (whose own
    message for a list would name only the first type it tried)."""
    if value is not None and not isinstance(value, bool | int | float | str):
        kind = "a list" if isinstance(value, list) else "a mapping"
        raise fail("KILN1744", f"a parameter value is a plain scalar, not {kind}; {PLAIN_VALUE}")
    if isinstance(value, str) and not PARAM_TEXT.fullmatch(value):
        raise fail(
            "KILN1744",
            f"parameter value {shown(value)} is not a plain name; {PLAIN_VALUE} "
            "(at most 64 characters)",
        )
    return value


class Trainer(SpecModel):
    """Kiln's built-in tabular trainer (docs/pipelines.md lists the estimators)."""

    library: Literal["sklearn", "xgboost", "lightgbm"] = Field(
        description="Library (lightgbm: with output native only)."
    )
    estimator: str = Field(
        min_length=1, max_length=64, description="Estimator of the library, e.g. random_forest."
    )
    params: dict[str, Annotated[ParamValue, BeforeValidator(_param_value)]] = Field(
        default_factory=dict,
        description="The estimator's parameters: plain scalars, checked against its names "
        "and each against the type and range the library documents.",
    )
    output: Literal["onnx", "native"] = Field(
        "onnx",
        description="What the trainer writes: one ONNX graph, or the library's own model "
        "file (xgboost JSON, lightgbm text), served by Triton's FIL backend; numeric "
        "features only.",
    )


class Training(SpecModel):
    """The training pipeline: Kiln's built-in `trainer`, or your own `image` and `command`."""

    trainer: Trainer | None = Field(None, description="Kiln's built-in tabular trainer.")
    image: Image | None = Field(None, description="Training image (with `command`).")
    command: list[str] | None = Field(
        None, min_length=1, description="Command in the image (with `image`)."
    )
    args: list[str] = Field(default_factory=list, description="Extra arguments to `command`.")
    secret_env: dict[EnvVarName, SecretRef] = Field(
        default_factory=dict,
        description="Variables of the train step read from Kubernetes Secrets, e.g. "
        "{DB_PASSWORD: {name: SECRET, key: KEY}}; `kiln run --local` reads each from the "
        "variable of the same name.",
    )
    data: DataRef | None = Field(
        None,
        description="Training rows, when not the FeatureSet's source (a pinned snapshot).",
    )
    resources: TrainingResources = Field(
        default_factory=TrainingResources, description="Training pod resources."
    )
    seed: NonNegativeInt = Field(0, description="Random seed passed to training.")
    holdout: float = Field(0.2, gt=0, lt=1, description="Share held out for evaluation.")
    schedule: Schedule | None = Field(None, description="Retraining schedule.")
    gates: list[Gate] = Field(default_factory=list, description="Publication gates.")

    @model_validator(mode="after")
    def _one_form(self) -> Training:
        own = self.image is not None or self.command is not None or bool(self.args)
        if self.trainer is not None and own:
            raise fail(
                "KILN1740",
                "training has both `trainer` and `image`/`command`/`args`; keep `trainer` for "
                "Kiln's built-in trainer, or `image` and `command` for your own",
            )
        if self.trainer is None and (self.image is None or self.command is None):
            raise fail(
                "KILN1740",
                "training needs `trainer` (Kiln's built-in trainer), or both `image` and "
                "`command` (your own)",
            )
        return self


class Dataset(SpecModel):
    """A monitoring data set."""

    uri: Uri = Field(description="File or prefix.")
    format: Literal["parquet", "csv"] | None = Field(None, description="From the suffix if empty.")
    lookback: Duration | None = Field(None, description="Only rows this recent (analysis).")


class Columns(SpecModel):
    """Columns the monitor reads besides the features."""

    timestamp: ColumnName = Field(description="Event time.")
    prediction: ColumnName = Field(description="Predicted label or value.")
    score: ColumnName | dict[str, ColumnName] | None = Field(
        None, description="Predicted probability (per class for multiclass)."
    )
    target: ColumnName | None = Field(None, description="Ground truth, when it arrives.")


class Chunking(SpecModel):
    """How the analysis period is cut into chunks: exactly one of the fields."""

    period: Literal["h", "D", "W", "M"] | None = Field(None, description="Calendar period.")
    size: PositiveInt | None = Field(None, description="Rows per chunk.")
    count: PositiveInt | None = Field(None, description="Number of chunks.")

    @model_validator(mode="after")
    def _one(self) -> Chunking:
        if sum(v is not None for v in (self.period, self.size, self.count)) != 1:
            raise fail("KILN1105", "chunking needs exactly one of period, size, count")
        return self


class ConstantThreshold(SpecModel):
    """Fixed alert bounds."""

    lower: float | None = Field(None, description="Alert below this.")
    upper: float | None = Field(None, description="Alert above this.")


class Threshold(SpecModel):
    """Alert threshold: standard deviations of the reference, or constants."""

    std: float | None = Field(None, gt=0, description="Multiples of the reference std.")
    constant: ConstantThreshold | None = Field(None, description="Fixed bounds.")

    @model_validator(mode="after")
    def _one(self) -> Threshold:
        if (self.std is None) == (self.constant is None):
            raise fail("KILN1105", "threshold needs exactly one of std, constant")
        return self


ContinuousMethod = Literal["kolmogorov_smirnov", "jensen_shannon", "wasserstein", "hellinger"]
CategoricalMethod = Literal["chi2", "jensen_shannon", "l_infinity", "hellinger"]


def _default_continuous() -> list[ContinuousMethod]:
    return ["jensen_shannon"]


def _default_categorical() -> list[CategoricalMethod]:
    return ["chi2"]


class Univariate(SpecModel):
    """Per-feature drift."""

    continuous: list[ContinuousMethod] = Field(
        default_factory=_default_continuous, description="Methods, continuous."
    )
    categorical: list[CategoricalMethod] = Field(
        default_factory=_default_categorical, description="Methods, categorical."
    )
    threshold: Threshold | None = Field(None, description="Alert threshold; method default.")


class Multivariate(SpecModel):
    """Drift across all features at once."""

    method: Literal["reconstruction_error", "domain_classifier"] = Field(
        "reconstruction_error", description="Method."
    )
    max_rows: PositiveInt | None = Field(None, description="Row budget (domain classifier).")
    threshold: Threshold | None = Field(None, description="Alert threshold.")


class Drift(SpecModel):
    """Drift detection."""

    univariate: Univariate | None = Field(None, description="Per feature.")
    multivariate: Multivariate | None = Field(None, description="Across features.")


class Performance(SpecModel):
    """Performance estimation before labels arrive, and realised once they do."""

    estimator: Literal["cbpe", "dle"] = Field(description="cbpe (classification), dle.")
    metrics: list[str] = Field(min_length=1, description="Metrics to estimate.")


class DataQuality(SpecModel):
    """Data-quality checks from the FeatureSet."""

    missing_values: bool = Field(True, description="Share of missing values.")
    unseen_values: bool = Field(True, description="Categorical values outside reference.")
    ranges: bool = Field(True, description="Values outside the FeatureSet's ranges.")


class Monitoring(SpecModel):
    """The scheduled NannyML job."""

    schedule: Schedule = Field(description="When the monitor runs.")
    reference: Dataset = Field(description="Reference period data.")
    analysis: Dataset | None = Field(
        None,
        description="Production data to analyse; when empty (serving.capture on), this "
        "environment's captured traffic, captured/environment=NAME/.",
    )
    columns: Columns = Field(description="Column roles beyond the features.")
    chunking: Chunking = Field(
        default_factory=lambda: Chunking(size=5000), description="How rows are chunked."
    )
    drift: Drift | None = Field(None, description="Drift detection.")
    performance: Performance | None = Field(None, description="Performance estimation.")
    data_quality: DataQuality | None = Field(None, description="Data quality.")


Signal = Literal[
    "drift",
    "multivariate_drift",
    "estimated_performance",
    "realized_performance",
    "missing_values",
    "unseen_values",
    "range",
    "latency_p99_ms",
    "error_rate",
]


class Condition(SpecModel):
    """When an alert fires."""

    signal: Signal = Field(description="What is watched.")
    metric: str | None = Field(None, description="Performance metric (performance signals).")
    feature: ColumnName | None = Field(None, description="Only this feature.")
    below: float | None = Field(None, description="Fire below this value.")
    above: float | None = Field(None, description="Fire above this value.")
    for_: Seconds | None = Field(None, alias="for", description="Sustained this long.")


class Alert(SpecModel):
    """A rule that turns a signal into a notification."""

    name: Name = Field(description="Alert name.")
    when: Condition = Field(description="Firing condition.")
    severity: Literal["info", "warning", "critical"] = Field(description="Severity.")
    route: Name = Field(description="Alert route of the Project.")


class BatchInput(SpecModel):
    """The rows a batch job scores."""

    uri: Uri = Field(description="File or prefix, relative to the data store or a URI under it.")
    format: Literal["parquet", "csv"] | None = Field(None, description="From the suffix if empty.")


class BatchResources(SpecModel):
    """What the scoring pod requests (and is limited to)."""

    cpu: Quantity = Field("1", description="CPU.")
    memory: Quantity = Field("2Gi", description="Memory.")


class BatchJob(SpecModel):
    """A scoring job: the input rows through one model version, predictions to parquet."""

    name: Name = Field(description="Job name, unique within the model.")
    input: BatchInput = Field(description="Rows to score.")
    output: Uri = Field(
        description="Folder the predictions go to; each run commits one part set under it."
    )
    version: PositiveInt | None = Field(
        None, description="Version that scores; the serving version when empty."
    )
    schedule: Schedule | None = Field(None, description="When it runs; on demand when empty.")
    chunk_rows: int = Field(
        10_000, ge=1, le=1_000_000, description="Rows read and scored at a time (bounds memory)."
    )
    resources: BatchResources = Field(
        default_factory=BatchResources, description="Scoring pod resources."
    )


OVERRIDABLE = ("serving", "rollout", "training", "monitoring", "alerts", "batch")
# A class as the target column holds it: a label or a whole number.
ClassLabel = Annotated[str, Field(min_length=1, max_length=253)] | int


class ModelSpec(SpecModel):
    """A model: what it is, its versions, and how it is served, trained and watched."""

    task: Task = Field(description="Kind of prediction.")
    features: FeatureRef = Field(description="FeatureSet name@version.")
    target: ColumnName = Field(description="Target column.")
    classes: list[ClassLabel] | None = Field(
        None,
        min_length=2,
        description="Class labels in the order of the probability output's columns "
        "(required for multiclass_classification).",
    )
    signature: Signature | None = Field(
        None, description="Required for remote artifacts and before the first version."
    )
    versions: list[Version] = Field(
        default_factory=list, description="Trained versions; none before the first is trained."
    )
    ensemble: Ensemble | None = Field(
        None, description="Serve a pipeline of steps instead of one versioned artifact."
    )
    serving: Serving = Field(description="Serving configuration.")
    rollout: Rollout = Field(default_factory=Rollout, description="Rollout policy.")
    training: Training | None = Field(None, description="Training pipeline.")
    monitoring: Monitoring | None = Field(None, description="Monitoring job.")
    alerts: list[Alert] = Field(default_factory=list, description="Alert rules.")
    batch: list[BatchJob] = Field(default_factory=list, description="Batch scoring jobs.")
    environments: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description=f"Per-environment overrides of {', '.join(OVERRIDABLE)}.",
    )

    @model_validator(mode="after")
    def _ensemble_shape(self) -> ModelSpec:
        # The ensemble's own tensors are the signature: raw features in, final outputs out.
        if self.ensemble is not None and self.signature is None:
            raise fail("KILN1105", "an ensemble needs spec.signature (its raw inputs and outputs)")
        if self.ensemble is not None and self.serving.version is not None:
            raise fail(
                "KILN1105",
                "an ensemble is what serves: leave serving.version out (ensemble.version "
                "names the version folder)",
                at="serving.version",
            )
        return self
