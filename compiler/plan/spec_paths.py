"""Settings by spec path: what the named facts do not describe still shows up.

A warm-up batch size or a training argument has no topic of its own; it is listed
by its spec path, so that no change to a model goes unmentioned.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from compiler.ir import ModelIR
from compiler.ir.batch import BatchJobIR
from compiler.ir.monitoring import DatasetIR, MonitoringIR
from compiler.ir.training import TrainingIR

# Spec paths that model_facts describes by name; everything else is listed by path.
_DESCRIBED = (
    "serving.version",
    "serving.max_batch_size",
    "serving.dynamic_batching",
    "serving.instance_groups",
    "serving.resources",
    "serving.replicas",
    "serving.autoscaling",
    "serving.slo",
    "rollout",
    "training.image",
    "training.schedule",
    "training.gates",
    "monitoring.schedule",
    "monitoring.drift",
    "monitoring.performance",
)
# Settings that make no difference to the local environment (no cluster there).
# Batch jobs too: locally `kiln predict` runs the step, and no job is rendered.
_CLUSTER_ONLY = (
    "rollout",
    "serving.replicas",
    "serving.autoscaling",
    "serving.resources",
    "batch",
)


def flatten(value: Any, prefix: str, into: dict[str, str]) -> None:
    if isinstance(value, dict) and value:
        for key in sorted(value):
            flatten(value[key], f"{prefix}.{key}" if prefix else str(key), into)
    else:
        into[prefix] = "none" if value is None else json.dumps(value, sort_keys=True)


def _covered(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p + ".") for p in prefixes)


def _dataset(dataset: DatasetIR) -> dict[str, Any]:
    lookback = None if dataset.lookback is None else dataset.lookback.text
    return {"uri": dataset.uri, "format": dataset.format, "lookback": lookback}


def _monitoring(monitoring: MonitoringIR) -> dict[str, Any]:
    """The monitoring block as the spec writes it: a lookback as its text, and
    per-class score columns as a mapping, so each class keeps its own spec path."""
    dumped = asdict(monitoring)
    dumped["reference"] = _dataset(monitoring.reference)
    dumped["analysis"] = _dataset(monitoring.analysis)
    score = monitoring.columns.score
    if isinstance(score, tuple):
        dumped["columns"]["score"] = dict(score)
    return dumped


def _training(training: TrainingIR) -> dict[str, Any]:
    """The training block as the spec writes it: `data` only when the spec names it
    (rows read from the FeatureSet's source are listed under `featureset.source`)."""
    dumped = asdict(training)
    dumped["secret_env"] = {name: asdict(ref) for name, ref in training.secret_env}
    trainer = training.trainer
    if trainer is None:
        del dumped["trainer"]
    else:  # `classes` is the spec's own field, listed under its own path
        dumped["trainer"] = {
            "library": trainer.library,
            "estimator": trainer.estimator,
            "params": dict(trainer.params),
        }
    if training.data.format is not None:
        del dumped["data"]
    else:
        del dumped["data"]["format"]
    return dumped


def _batch_job(job: BatchJobIR) -> dict[str, Any]:
    dumped = asdict(job)
    del dumped["name"]
    return dumped


def other_facts(model: ModelIR) -> dict[str, str]:
    """Every other setting, by spec path, for changes the named facts do not cover."""
    dumped: dict[str, Any] = {
        "owner": model.owner,
        "task": model.task,
        "target": model.target,
        "features": f"{model.featureset.name}@{model.featureset.version}",
        "featureset": asdict(model.featureset.spec),
        "signature": {
            "inputs": [f"{t.name} {t.dtype} {list(t.shape)}" for t in model.inputs],
            "outputs": [f"{t.name} {t.dtype} {list(t.shape)}" for t in model.outputs],
        },
        "storage": asdict(model.storage),
        # Lowered blocks keep the spec's field names for what is listed here by path.
        # A model with no version served (and no ensemble) has no serving to describe.
        "serving": asdict(model.serving) if model.is_served or model.ensemble is not None else None,
        # rollout is left out: the facts describe all of it (it is in _DESCRIBED).
        "training": _training(model.training) if model.training else None,
        "monitoring": _monitoring(model.monitoring) if model.monitoring else None,
        # By job name, so that a change to one job is listed under its own paths.
        "batch": {job.name: _batch_job(job) for job in model.batch} or None,
    }
    flat: dict[str, str] = {}
    flatten(dumped, "", flat)
    skip = _DESCRIBED + (_CLUSTER_ONLY if model.is_local else ())
    return {path: value for path, value in flat.items() if not _covered(path, skip)}
