"""The IR of training: plain values, built from the spec by compiler/lowering.py.

Field names follow the spec's: the plan lists the settings it does not describe by
name under their spec paths (compiler/plan/spec_paths.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from compiler.ir.secret import SecretRefIR


@dataclass(frozen=True)
class ScheduleIR:
    cron: str  # five fields
    timezone: str  # IANA name


@dataclass(frozen=True)
class DataIR:
    """Where the features step reads training rows: `training.data` when the spec sets
    it, else the FeatureSet's source (then with the source's format)."""

    uri: str  # as written: the target places a relative one under the data store
    sha256: str | None
    format: str | None = None  # None: from the file names


@dataclass(frozen=True)
class TrainingResourcesIR:
    """The training pod's request; cpu and memory are Kubernetes quantities as written."""

    cpu: str
    memory: str
    gpus: int


@dataclass(frozen=True)
class GateIR:
    """A condition a trained version must meet; exactly one bound is set (a spec rule)."""

    metric: str
    min: float | None
    max: float | None
    max_regression: float | None  # largest drop against the served version's metric


@dataclass(frozen=True)
class TrainerIR:
    """Kiln's built-in trainer: an estimator of the table in runtime/contract/trainers.py."""

    library: str
    estimator: str
    params: tuple[tuple[str, bool | int | float | str | None], ...]  # sorted by name
    # The spec's `classes`: the trainer checks that its probability columns follow them.
    classes: tuple[str | int, ...] | None = None
    output: str = "onnx"  # onnx, or native: the library's own file (trainers.OUTPUTS)


@dataclass(frozen=True)
class TrainingIR:
    image: str  # the user's, or Kiln's runtime image for the built-in trainer
    command: tuple[str, ...]  # the user's; empty for the built-in trainer
    trainer: TrainerIR | None
    args: tuple[str, ...]
    secret_env: tuple[tuple[str, SecretRefIR], ...]  # (variable, its Secret), sorted by name
    data: DataIR
    resources: TrainingResourcesIR
    seed: int
    holdout: float  # the share of rows held out for evaluation
    schedule: ScheduleIR | None  # retraining; None runs only when submitted
    gates: tuple[GateIR, ...]
