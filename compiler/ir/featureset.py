"""The IR of a FeatureSet's columns and of the project's images: plain values, built by
compiler/lowering.py.

Field names follow the spec's: the plan lists a FeatureSet's settings under their spec
paths (compiler/plan/spec_paths.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class RangeIR:
    min: float | None
    max: float | None


@dataclass(frozen=True)
class FeatureIR:
    name: str
    dtype: Literal["float32", "float64", "int32", "int64", "string", "bool"]
    kind: Literal["continuous", "categorical"]  # the role in monitoring
    range: RangeIR | None  # continuous features only (a spec rule)
    values: tuple[str | int | bool, ...] | None  # categorical features only
    description: str | None  # kept so that the plan lists a changed description


@dataclass(frozen=True)
class FeatureSourceIR:
    uri: str
    format: Literal["parquet", "csv"]


@dataclass(frozen=True)
class FeatureColumnsIR:
    """A FeatureSet's spec: its entity and event-time columns, and the features in order."""

    version: int
    entity: str
    timestamp: str
    source: FeatureSourceIR
    features: tuple[FeatureIR, ...]


@dataclass(frozen=True)
class ImagesIR:
    runtime: str  # runs Kiln's runtime jobs
    triton: str  # Triton Inference Server
