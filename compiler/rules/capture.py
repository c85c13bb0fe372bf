"""Traffic capture in one environment: whether it is on, and what it writes.

The capture step writes the columns the monitor reads (runtime/contract/capture.py),
so everything it needs is settled here, at compile time: which model output is the
prediction, which column of which output is a class's score, and that no two captured
columns share a name. A problem found here would otherwise surface as a monitor job
that cannot read what the served model wrote, hours after the merge.
"""

from __future__ import annotations

from compiler.rules.findings import Finding
from compiler.rules.locations import place_under
from compiler.spec.model import Capture, ModelSpec
from compiler.spec.project import Environment
from runtime.contract import capture as contract
from runtime.contract.durations import duration_seconds
from runtime.contract.signature import Tensor

SPEC = ("spec",)
# The monitor's column names when the model declares no monitoring block.
DEFAULT_COLUMNS = ("timestamp", "prediction", "score")
INTEGER_TYPES = tuple(f"{kind}{bits}" for kind in ("int", "uint") for bits in (8, 16, 32, 64))
LABEL_TYPES = ("bool", "string", *INTEGER_TYPES)
FLOAT_TYPES = ("fp16", "fp32", "fp64")


def declared_capture(spec: ModelSpec, environment: Environment) -> Capture | None:
    """The capture settings in force: a local environment captures unless told not to,
    a cluster environment when the spec says so (a declared ensemble as any model: its
    capture step is appended to its steps)."""
    if environment.kind == "local":
        capture = spec.serving.capture or Capture()
        return capture if capture.enabled else None
    declared = spec.serving.capture
    return declared if declared is not None and declared.enabled else None


def missing_analysis(spec: ModelSpec, capture: Capture | None, environment: str) -> list[Finding]:
    """Monitoring needs analysis data: named, or the captured traffic."""
    monitoring = spec.monitoring
    if monitoring is None or monitoring.analysis is not None:
        return []
    if capture is not None and capture.sample == 0:
        return [
            Finding(
                (*SPEC, "serving", "capture", "sample"),
                "KILN1650",
                f"serving.capture.sample is 0 in `{environment}`, so capture writes no rows, "
                "and monitoring names no analysis data: the monitor would read none",
                "capture a share of the traffic with a sample above 0, or name the "
                "production data in monitoring.analysis.uri",
            )
        ]
    if capture is not None:
        return []
    return [
        Finding(
            (*SPEC, "monitoring"),
            "KILN1650",
            f"monitoring names no analysis data and serving.capture is off in `{environment}`",
            "name the production data (monitoring.analysis.uri), or turn capture on "
            "(serving.capture: {sample: 1.0}) so the monitor reads the served traffic",
            key=True,
        )
    ]


def whole_captured_folder(spec: ModelSpec, name: str, environment: str, data: str) -> list[Finding]:
    """Analysis data naming the captured folder itself reads the rows of every environment
    that shares the store (a staging monitor would watch production): a warning, since a
    deliberate look across environments is possible."""
    monitoring = spec.monitoring
    if monitoring is None or monitoring.analysis is None:
        return []
    named = place_under(monitoring.analysis.uri, data).rstrip("/")
    if named != contract.captured_uri(data, name).rstrip("/"):
        return []
    partition = contract.environment_path(name, environment)
    return [
        Finding(
            (*SPEC, "monitoring", "analysis", "uri"),
            "KILN1435",
            f"monitoring.analysis reads all of {name}'s captured traffic, the rows of every "
            f"environment that captures into this store, not only `{environment}`'s",
            "leave monitoring.analysis out where capture is on (the monitor then reads this "
            f"environment's partition), or name the partition: {partition}",
            warning=True,
        )
    ]


def _width(tensor: Tensor) -> int | None:
    """Values per row of an output (None: unknown)."""
    rest = tensor.shape[1:]
    if not rest:
        return 1
    if len(rest) == 1 and rest[0] != -1:
        return rest[0]
    return None


def _outputs(spec: ModelSpec, outputs: tuple[Tensor, ...]) -> tuple[Tensor | None, Tensor | None]:
    """(the prediction output, the probability output) of the model's outputs."""
    if spec.task == "regression":
        return (outputs[0] if outputs else None), None
    label = next((t for t in outputs if t.dtype in LABEL_TYPES and _width(t) == 1), None)
    scores = next((t for t in outputs if t.dtype in FLOAT_TYPES), None)
    return label, scores


def _columns(spec: ModelSpec) -> tuple[str, str, str | dict[str, str] | None]:
    monitoring = spec.monitoring
    if monitoring is None:
        timestamp, prediction, score = DEFAULT_COLUMNS
        # A regression model answers no probabilities: it has no score column to capture.
        return timestamp, prediction, None if spec.task == "regression" else score
    columns = monitoring.columns
    return columns.timestamp, columns.prediction, columns.score


def _scores(
    spec: ModelSpec, score: str | dict[str, str] | None, output: Tensor
) -> tuple[contract.OutputColumn, ...]:
    if score is None:
        return ()
    if isinstance(score, str):
        # Binary: P(positive class), the last column of a two-column output.
        width = _width(output)
        index = None if width == 1 else 1
        return (contract.OutputColumn(score, output.name, index),)
    order = [str(c) for c in spec.classes or []]
    return tuple(
        contract.OutputColumn(column, output.name, order.index(label))
        for label, column in sorted(score.items())
        if label in order
    )


def capture_config(
    name: str,
    spec: ModelSpec,
    environment: Environment,
    data: str,
    tensors: tuple[tuple[Tensor, ...], tuple[Tensor, ...]],
) -> tuple[contract.CaptureConfig | None, list[Finding]]:
    """What the capture step writes in this environment, or the reasons it cannot."""
    capture = declared_capture(spec, environment)
    if capture is None:
        return None, []
    inputs, outputs = tensors
    timestamp, prediction, score = _columns(spec)
    label, probabilities = _outputs(spec, outputs)
    if label is None or (score is not None and probabilities is None):
        if spec.serving.capture is None:
            # On only by default: a model whose answers do not fit the monitor's columns
            # is served uncaptured rather than refused (docs/capture.md says so).
            return None, []
        at = (*SPEC, "serving", "capture")
        wanted = "a prediction output" if label is None else "a probability output"
        message = f"capture needs {wanted}, and the model's outputs have none"
        hint = (
            "a classifier answers a label (an integer or string output of one value per "
            "row) and probabilities (a floating output); or turn capture off here "
            "(serving.capture: {enabled: false})"
        )
        return None, [Finding(at, "KILN1651", message, hint, key=True)]
    scores = () if probabilities is None else _scores(spec, score, probabilities)
    config = contract.CaptureConfig(
        model=name,
        environment=environment.name,
        data=data,
        sample=capture.sample,
        timestamp=timestamp,
        inputs=tuple(t.name for t in inputs),
        prediction=contract.OutputColumn(prediction, label.name),
        scores=scores,
        buffer_rows=capture.buffer_rows,
        flush_rows=capture.flush_rows,
        flush_seconds=duration_seconds(capture.flush_interval),
    )
    return config, _clashes(config)


def reserved_names(spec: ModelSpec) -> list[Finding]:
    """A declared ensemble captured ends in the step `capture`, fed tensors named
    `kiln.answer.<output>`: the user's graph must use neither name."""
    ensemble = spec.ensemble
    if ensemble is None:
        return []
    found = []
    for i, step in enumerate(ensemble.steps):
        at = (*SPEC, "ensemble", "steps", i)
        if step.name == contract.STEP:
            found.append(
                Finding(
                    (*at, "name"),
                    "KILN1654",
                    f"step name `{contract.STEP}` is the capture step's "
                    f"({contract.step_name('<model>')})",
                    "rename the step",
                )
            )
        for key, tensor in step.output_map.items():
            if tensor.startswith(contract.ANSWER_PREFIX):
                found.append(
                    Finding(
                        (*at, "output_map", key),
                        "KILN1654",
                        f"ensemble tensor `{tensor}`: names starting with "
                        f"`{contract.ANSWER_PREFIX}` carry the answer to the capture step",
                        "rename the tensor",
                    )
                )
    return found


def _clashes(config: contract.CaptureConfig) -> list[Finding]:
    names = [
        contract.REQUEST_ID,
        config.timestamp,
        contract.MODEL_VERSION,
        contract.ENVIRONMENT,
        *dict.fromkeys(config.inputs),  # two inputs of one name: KILN17xx says so
        config.prediction.column,
        *(s.column for s in config.scores),
    ]
    twice = sorted({n for i, n in enumerate(names) if n in names[:i]})
    if not twice:
        return []
    return [
        Finding(
            (*SPEC, "monitoring", "columns"),
            "KILN1652",
            f"captured traffic would have two columns named {', '.join(map(repr, twice))}",
            f"captured rows hold {contract.REQUEST_ID}, {contract.MODEL_VERSION}, "
            f"{contract.ENVIRONMENT}, the inputs and the monitor's columns: rename the "
            "monitor's column (monitoring.columns) so that each name is used once",
        )
    ]
