"""The built-in trainer (`training.trainer`): an estimator the library has, that fits the
task, with parameters it takes; features the trainer can encode; and outputs the graph it
exports will have. Checked at compile time so that none of these fails in a training pod.
"""

from __future__ import annotations

from compiler.rules.findings import Finding
from compiler.spec.featureset import FeatureSetSpec
from compiler.spec.model import ModelSpec, Trainer
from runtime.contract.trainers import (
    FIXED_PARAMS,
    Estimator,
    estimators_of,
    find_estimator,
    outputs_for,
    task_family,
)

TRAINER = ("spec", "training", "trainer")


def check_trainer(spec: ModelSpec) -> list[Finding]:
    """The estimator and its parameters, and the declared outputs, against the table."""
    trainer = spec.training.trainer if spec.training is not None else None
    if trainer is None:
        return []
    estimator = find_estimator(trainer.library, trainer.estimator)
    if estimator is None:
        return [_unknown_estimator(trainer)]
    family = task_family(spec.task)
    if family not in estimator.classes:
        fitting = [e.name for e in estimators_of(trainer.library) if family in e.classes]
        return [
            Finding(
                (*TRAINER, "estimator"),
                "KILN1742",
                f"{estimator.key} is not a {family} estimator, and the task is {spec.task}",
                f"use one of: {', '.join(fitting)}",
            )
        ]
    return [*_params(trainer, estimator), *_outputs(spec), *_classes(spec, estimator)]


def _classes(spec: ModelSpec, estimator: Estimator) -> list[Finding]:
    """XGBoost's classifiers learn the classes 0..K-1 only (its graph has no label map)."""
    if estimator.library != "xgboost" or spec.classes is None:
        return []
    if spec.classes == list(range(len(spec.classes))):
        return []
    return [
        Finding(
            ("spec", "classes"),
            "KILN1747",
            f"{estimator.key} learns the classes 0..{len(spec.classes) - 1} only, and "
            f"`classes` lists {', '.join(repr(c) for c in spec.classes[:5])}",
            "recode the target as 0..K-1, or use an sklearn estimator, which takes any labels",
        )
    ]


def check_trainer_features(spec: ModelSpec, featureset: FeatureSetSpec) -> list[Finding]:
    """Boolean columns reach the trainer's graph as 0/1 int64 inputs, never as bool."""
    if spec.training is None or spec.training.trainer is None:
        return []
    return [
        Finding(
            (*TRAINER,),
            "KILN1746",
            f"feature `{f.name}` of {spec.features} is bool, which the built-in trainer does "
            "not take as an input",
            f"declare `{f.name}` as dtype int64 with values [0, 1] in the FeatureSet; the "
            "trainer reads true/false as 1/0",
        )
        for f in featureset.features
        if f.dtype == "bool"
    ]


def _unknown_estimator(trainer: Trainer) -> Finding:
    names = ", ".join(e.name for e in estimators_of(trainer.library))
    return Finding(
        (*TRAINER, "estimator"),
        "KILN1741",
        f"{trainer.library} has no estimator {trainer.estimator!r} in Kiln's trainer",
        f"use one of: {names}",
    )


def _params(trainer: Trainer, estimator: Estimator) -> list[Finding]:
    found = []
    for name in trainer.params:
        if name in FIXED_PARAMS:
            message = f"parameter `{name}` is set by Kiln for reproducible training"
            hint = "remove it; the seed is `training.seed`, and training uses one thread"
        elif name not in estimator.params:
            message = f"{estimator.key} takes no parameter `{name}`"
            hint = f"use one of: {', '.join(sorted(estimator.params))}"
        else:
            continue
        found.append(Finding((*TRAINER, "params", name), "KILN1743", message, hint, key=True))
    return found


def _outputs(spec: ModelSpec) -> list[Finding]:
    """A declared signature lists the outputs the exported graph will have."""
    if spec.signature is None:
        return []
    declared = tuple(t.name for t in spec.signature.outputs)
    expected = outputs_for(spec.task)
    if sorted(declared) == sorted(expected):
        return []
    return [
        Finding(
            ("spec", "signature", "outputs"),
            "KILN1745",
            f"the built-in trainer's {spec.task} graph has outputs {', '.join(expected)}, but "
            f"the signature declares {', '.join(declared) or 'none'}",
            f"declare the outputs {', '.join(expected)} (docs/pipelines.md gives their types)",
        )
    ]
