"""A batch scoring job as the compiler renders it and `runtime.serving.batch` runs it.

The command's flags (`BATCH`), the columns it writes (`BatchColumns`: the columns the
monitor reads, so batch predictions are watched exactly as captured traffic), and the
layout of its output folder, which makes a run appear whole or not at all:

    OUTPUT/_temporary/RUN/part-00000.parquet   while the run scores (readers skip `_` names)
    OUTPUT/run=RUN/part-00000.parquet          moved there once every chunk is written
    OUTPUT/run=RUN/_SUCCESS                    written last: rows, parts and their digests

A single-file output (a name ending in .parquet, as `kiln predict` takes) is written as a
hidden temporary file beside it and renamed into place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from runtime.contract.steps import Flag, StepCommand
from runtime.contract.vocabulary import TASKS

TEMPORARY = "_temporary"  # readers (the monitor) skip names starting with "_" or "."
SUCCESS = "_SUCCESS"
RUN_PREFIX = "run="
PART = "part-{index:05d}.parquet"
# The run's name in the cluster: Argo's, unique per Workflow. Kiln's own text, not a user's.
ARGO_RUN = "{{workflow.name}}"


def run_folder(output: str, run: str) -> str:
    return f"{output.rstrip('/')}/{RUN_PREFIX}{run}"


def temporary_folder(output: str, run: str) -> str:
    return f"{output.rstrip('/')}/{TEMPORARY}/{run}"


@dataclass(frozen=True)
class BatchColumns:
    """Which input columns are kept, and the names of the prediction columns written.

    `score` is one column (binary: P(class 1)), one per class label (multiclass, in
    the order of the probabilities output), or None (regression).
    """

    features: tuple[str, ...]
    timestamp: str  # in the input (the FeatureSet's event time)
    timestamp_out: str  # in the output (monitoring.columns.timestamp)
    entity: str | None
    prediction: str
    score: str | tuple[tuple[str, str], ...] | None  # (class label, column) pairs

    def to_json(self) -> str:
        score: Any = self.score
        if isinstance(score, tuple):
            score = [list(pair) for pair in score]
        document = {
            "entity": self.entity,
            "features": list(self.features),
            "prediction": self.prediction,
            "score": score,
            "timestamp": self.timestamp,
            "timestamp_out": self.timestamp_out,
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> BatchColumns:
        """Raises ValueError on a document the compiler would not write."""
        document = json.loads(text)
        if not isinstance(document, dict):
            raise ValueError("columns must be a JSON object")
        score = document.get("score")
        if isinstance(score, list):
            score = tuple((str(label), str(column)) for label, column in score)
        try:
            return cls(
                features=tuple(str(f) for f in document["features"]),
                timestamp=str(document["timestamp"]),
                timestamp_out=str(document["timestamp_out"]),
                entity=document.get("entity"),
                prediction=str(document["prediction"]),
                score=score,
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"columns lack a field: {exc}") from exc

    @property
    def score_columns(self) -> tuple[str, ...]:
        if self.score is None:
            return ()
        if isinstance(self.score, str):
            return (self.score,)
        return tuple(column for _, column in self.score)

    @property
    def written(self) -> tuple[str, ...]:
        """Every output column, in the order written."""
        kept = (*((self.entity,) if self.entity else ()), self.timestamp_out, *self.features)
        return (*kept, self.prediction, *self.score_columns)


BATCH = StepCommand(
    "runtime.serving.batch",
    "Score rows with a verified model version, in chunks; write predictions as parquet.",
    (
        Flag("--model", "the ONNX artifact: path or fsspec URL", required=True),
        Flag("--sha256", "its expected digest; the run stops on a mismatch"),
        Flag("--bundle", "its OpenSSF model-signing bundle: path or fsspec URL"),
        Flag("--trust", "trusted signers: JSON object (inline) as the serving pod takes it"),
        Flag("--signature", "the model's signature: JSON file or inline object", required=True),
        Flag("--task", "the model's task", required=True, choices=TASKS),
        Flag("--columns", "BatchColumns as a JSON object", required=True),
        Flag("--input", "rows to score: parquet/CSV file or folder", required=True),
        Flag("--format", "input format (default: from the names)", choices=("parquet", "csv")),
        Flag("--output", "a folder (one part set per run) or a .parquet file", required=True),
        Flag("--run", "the run's name in the output folder (default: the time and a nonce)"),
        Flag("--chunk-rows", "rows per chunk", type=int, default=10_000),
    ),
)


# Prediction columns of a model without a monitoring block (which would name them).
DEFAULT_PREDICTION = "prediction"
DEFAULT_SCORE = "score"


def prediction_columns(
    task: str,
    prediction: str | None,
    score: str | dict[str, str] | None,
    classes: tuple[str, ...],
) -> tuple[str, str | tuple[tuple[str, str], ...] | None]:
    """(prediction, score) column names: the monitor's when its columns are declared,
    else the defaults. A multiclass score is one column per class, in `classes` order
    (the order of the probabilities output)."""
    if task == "regression":
        return prediction or DEFAULT_PREDICTION, None
    if task == "binary_classification":
        single = score if isinstance(score, str) else DEFAULT_SCORE
        return prediction or DEFAULT_PREDICTION, single
    named = score if isinstance(score, dict) else {}
    pairs = tuple((label, named.get(label, f"{DEFAULT_SCORE}_{label}")) for label in classes)
    return prediction or DEFAULT_PREDICTION, pairs
