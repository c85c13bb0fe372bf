"""The built-in trainer (`training.trainer`): an estimator the library has, that fits the
task, with parameters it takes, each of the type and in the range the library documents
(runtime/contract/trainer_params.py); features the trainer can encode; and outputs the
graph it exports will have. Checked at compile time so that none of these fails in a
training pod.
"""

from __future__ import annotations

from compiler.formats import fil
from compiler.rules import signature
from compiler.rules.findings import Finding
from compiler.spec.featureset import FeatureSetSpec
from compiler.spec.model import ModelSpec, Trainer
from compiler.spec.types import shown
from runtime.contract.trainer_params import admits, describe, param_rule
from runtime.contract.trainers import (
    FIXED_PARAMS,
    NATIVE_FORMATS,
    NATIVE_ONLY,
    NATIVE_OUTPUT,
    ONNX_OUTPUT,
    Estimator,
    estimators_of,
    find_estimator,
    outputs_for,
    task_family,
)

TRAINER = ("spec", "training", "trainer")
_MODEL_KIND = {ONNX_OUTPUT: "graph", NATIVE_OUTPUT: "native model"}
LIBRARY_NAMES = {"sklearn": "scikit-learn", "xgboost": "XGBoost", "lightgbm": "LightGBM"}


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
    refused = _native(trainer)
    params = [*_params(trainer, estimator), *_param_values(trainer, estimator, family)]
    if refused:  # no native model: its outputs and classes would only repeat the refusal
        return [*params, *refused]
    return [
        *params,
        *_outputs(spec, trainer.output),
        *_classes(spec, estimator, trainer.output),
    ]


def native_output(spec: ModelSpec) -> bool:
    """Whether the built-in trainer writes the library's own file (served by FIL)."""
    trainer = spec.training.trainer if spec.training is not None else None
    return trainer is not None and trainer.output == NATIVE_OUTPUT


def check_native_signature(spec: ModelSpec, featureset: FeatureSetSpec) -> list[Finding]:
    """Before its first version, a native model's declared signature is the one FIL will
    serve (fil.trained_signature)."""
    classes = len(spec.classes) if spec.classes else None
    batching = spec.serving.max_batch_size > 0
    expected = fil.trained_signature(len(featureset.features), spec.task, classes, batching)
    if signature.declared_signature(spec) == expected:
        return []
    shown = "; ".join(
        f"{side} {t.name} {t.dtype} {list(t.shape)}"
        for side, tensors in (("input", expected[0]), ("output", expected[1]))
        for t in tensors
    )
    return [
        Finding(
            ("spec", "signature"),
            "KILN1757",
            f"the built-in trainer's native model will be served by FIL as {shown}; the "
            "declared signature differs",
            "declare exactly that signature",
        )
    ]


def _native(trainer: Trainer) -> list[Finding]:
    """Native output exists for libraries whose own file Triton serves (FIL: xgboost,
    lightgbm); LightGBM has no other (its ONNX path needs the scikit-learn wrapper)."""
    if trainer.output != NATIVE_OUTPUT and trainer.library in NATIVE_ONLY:
        return [
            Finding(
                (*TRAINER, "library"),
                "KILN1791",
                f"Kiln trains {trainer.library} through its Booster API and writes its own "
                "model file only, served by FIL; the trainer's output is onnx",
                "set training.trainer.output: native (numeric features, classes 0..K-1), "
                "or use xgboost or sklearn for an ONNX graph",
            )
        ]
    if trainer.output != NATIVE_OUTPUT or trainer.library in NATIVE_FORMATS:
        return []
    return [
        Finding(
            (*TRAINER, "output"),
            "KILN1748",
            f"{trainer.library} has no native model format that Triton serves",
            f"use output onnx, or an estimator of {' or '.join(NATIVE_FORMATS)} for a tree "
            "model served by FIL",
        )
    ]


def _classes(spec: ModelSpec, estimator: Estimator, output: str) -> list[Finding]:
    """The trainer's ONNX graph returns any labels, but a native model served by FIL
    returns class indices and scores only: its classes are 0..K-1."""
    if output != NATIVE_OUTPUT or spec.classes is None:
        return []
    if spec.classes == list(range(len(spec.classes))):
        return []
    shown = ", ".join(repr(c) for c in spec.classes[:5])
    return [
        Finding(
            ("spec", "classes"),
            "KILN1790",
            f"a native {estimator.library} model served by FIL returns class indices "
            f"0..{len(spec.classes) - 1} and their scores, and `classes` lists {shown}",
            "recode the target as 0..K-1, or use output onnx, whose graph returns the labels",
        )
    ]


def check_trainer_features(spec: ModelSpec, featureset: FeatureSetSpec) -> list[Finding]:
    """Boolean columns reach the trainer's graph as 0/1 int64 inputs, never as bool; a
    native model reads numbers only."""
    if spec.training is None or spec.training.trainer is None:
        return []
    return [*_native_features(spec, featureset), *_bools(spec, featureset)]


def _native_features(spec: ModelSpec, featureset: FeatureSetSpec) -> list[Finding]:
    """FIL takes one fp32 row per request: a text column would need encoding outside the
    model, which Kiln refuses rather than leave to every client (docs/pipelines.md)."""
    trainer = spec.training.trainer if spec.training is not None else None
    # A library without native output is refused already (KILN1748).
    if trainer is None or trainer.output != NATIVE_OUTPUT or trainer.library not in NATIVE_FORMATS:
        return []
    text = [f.name for f in featureset.features if f.dtype == "string"]
    if not text:
        return []
    return [
        Finding(
            (*TRAINER, "output"),
            "KILN1749",
            f"a native model reads numbers only (FIL's one fp32 input), and {spec.features} "
            f"has text features: {', '.join(text[:5])}",
            "encode them as numbers in the FeatureSet, or use output onnx, whose graph "
            "one-hot encodes text",
        )
    ]


def _bools(spec: ModelSpec, featureset: FeatureSetSpec) -> list[Finding]:
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


def _param_values(trainer: Trainer, estimator: Estimator, family: str) -> list[Finding]:
    """Each parameter's value against the library's own rule for it (KILN1747); names the
    estimator does not take are KILN1743's."""
    found = []
    for name, value in trainer.params.items():
        if name in FIXED_PARAMS or name not in estimator.params:
            continue
        rule = param_rule(estimator.library, estimator.name, family, name)
        if rule is None or admits(rule, value):
            continue
        shown_value = "null" if value is None else shown(value, 40)
        found.append(
            Finding(
                (*TRAINER, "params", name),
                "KILN1747",
                f"{estimator.key} parameter `{name}` is {shown_value}, which "
                f"{LIBRARY_NAMES[estimator.library]} does not take",
                f"write {describe(rule)}",
            )
        )
    return found


def _outputs(spec: ModelSpec, output: str) -> list[Finding]:
    """A declared signature lists the outputs the trained model will have."""
    if spec.signature is None:
        return []
    declared = tuple(t.name for t in spec.signature.outputs)
    expected = outputs_for(spec.task, output)
    if sorted(declared) == sorted(expected):
        return []
    return [
        Finding(
            ("spec", "signature", "outputs"),
            "KILN1745",
            f"the built-in trainer's {spec.task} {_MODEL_KIND[output]} has outputs "
            f"{', '.join(expected)}, but the signature declares {', '.join(declared) or 'none'}",
            f"declare the outputs {', '.join(expected)} (docs/pipelines.md gives their types)",
        )
    ]
