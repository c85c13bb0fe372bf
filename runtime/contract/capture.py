"""Captured traffic: where a served model's requests and answers are written, and how.

This is the one definition of the capture layout. The compiler renders a
`CaptureConfig` into the model's config.pbtxt (parameter `PARAMETER`); the capture
step inside Triton writes what it describes; the monitor reads it back as its analysis
data; the rollout gates read the same folders. It imports only the standard library,
because it is also copied beside the python-backend adapter, whose Python has no Kiln.

Layout, under the environment's data store:

    <data>/<model>/captured/environment=<env>/version=<N>/date=<YYYY-MM-DD>/hour=<HH>/
        <part>.parquet
    <data>/<model>/labels/*.parquet      (request_id and/or the FeatureSet's entity, + target)

Every environment whose store is shared writes under one `captured/` folder, so a reader
of one environment's traffic (the monitor's default analysis data) reads its partition,
`captured/environment=<env>/`, never the whole folder. Labels are not partitioned: a
request id is unique and an entity's outcome is the same whichever environment served it.

Columns of a captured part: `request_id` (string), the monitor's timestamp column
(timestamp[us, tz=UTC]), `model_version` (int64), `environment` (string), one column per
model input named as the input, and the prediction and score columns named as the
monitor's columns say. A request of one row keeps its request id; the rows of a request
of n > 1 rows get `<request id>#<row>` (0-based), so that every row has its own key
for the labels to join on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

PARAMETER = "kiln_capture"  # the config.pbtxt parameter that holds CaptureConfig as JSON
CAPTURED = "captured"
LABELS = "labels"
REQUEST_ID = "request_id"
MODEL_VERSION = "model_version"
ENVIRONMENT = "environment"
REQUEST_ID_HEADER = "x-request-id"
ROW_SEPARATOR = "#"
# Prometheus counters the capture step exports on Triton's metrics endpoint.
DROPPED_METRIC = "kiln_capture_dropped_total"
WRITTEN_METRIC = "kiln_capture_written_total"
# Where `kiln serve` tells the capture step the project folder is, so that a local
# environment's relative data store lands beside the specs, not in Triton's cwd.
PROJECT_ROOT_ENV = "KILN_PROJECT_ROOT"
# The capture step of an ensemble is the model `<model>.capture` (the ensemble's step
# naming, `<model>.<step>`): the compiler renders it, the smoke reference passes its
# answer on as Triton's capture step does.
STEP = "capture"
# The ensemble tensors that carry the answer to the capture step, which passes them on
# as the ensemble's outputs (Triton refuses a step without an output and an ensemble
# tensor that nobody reads): `<ANSWER_PREFIX><output>`.
ANSWER_PREFIX = "kiln.answer."


def step_name(model: str) -> str:
    """The capture step's Triton name in the ensemble `model`."""
    return f"{model}.{STEP}"


def answer_tensor(output: str) -> str:
    """The ensemble tensor that carries `output` to the capture step."""
    return f"{ANSWER_PREFIX}{output}"


def captured_path(model: str) -> str:
    """The captured folder of a model, relative to its data store."""
    return f"{model}/{CAPTURED}/"


def captured_uri(data: str, model: str) -> str:
    """The captured folder of a model under a data store (a path or a URL)."""
    return f"{data.rstrip('/')}/{captured_path(model)}"


def environment_path(model: str, environment: str) -> str:
    """The partition of one environment's captured rows, relative to the data store."""
    return f"{captured_path(model)}{ENVIRONMENT}={environment}/"


def labels_uri(data: str, model: str) -> str:
    """Where the labels of a model's served rows are written."""
    return f"{data.rstrip('/')}/{model}/{LABELS}/"


def partition(environment: str, version: int, when: datetime) -> str:
    """The hive partition folder of the rows captured at `when` (UTC)."""
    moment = when.astimezone(UTC)
    return f"{ENVIRONMENT}={environment}/version={version}/date={moment:%Y-%m-%d}/hour={moment:%H}"


def row_request_id(request_id: str, row: int, rows: int) -> str:
    return request_id if rows == 1 else f"{request_id}{ROW_SEPARATOR}{row}"


@dataclass(frozen=True)
class OutputColumn:
    """A captured column taken from a model output: the whole output (`index` None,
    one value per row) or one column of it (a class's probability)."""

    column: str
    output: str
    index: int | None = None


@dataclass(frozen=True)
class CaptureConfig:
    """What the capture step needs, rendered at compile time."""

    model: str
    environment: str
    data: str  # the environment's data store root (path or URL)
    sample: float  # share of requests captured, 0 to 1
    timestamp: str  # the monitor's timestamp column
    inputs: tuple[str, ...]
    prediction: OutputColumn
    scores: tuple[OutputColumn, ...] = ()
    buffer_rows: int = 100_000  # rows held in memory before new ones are dropped
    flush_rows: int = 10_000  # a part is written at this many rows ...
    flush_seconds: float = 5.0  # ... or this long after its first row

    @property
    def location(self) -> str:
        return captured_uri(self.data, self.model)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> CaptureConfig:
        raw = json.loads(text)
        raw["inputs"] = tuple(raw["inputs"])
        raw["prediction"] = OutputColumn(**raw["prediction"])
        raw["scores"] = tuple(OutputColumn(**s) for s in raw.get("scores", ()))
        return cls(**raw)
