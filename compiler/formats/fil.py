"""Triton's FIL backend (XGBoost and LightGBM): its parameters and the rules it applies
when it loads a model, checked here so that a bad combination fails at compile time.

Facts from triton-inference-server/fil_backend, docs/model_config.md: parameters are
strings; the input is `input__0` and the output `output__0`, both TYPE_FP32; the output
holds one value per row, or one per class with predict_proba; the NAIVE layout is the
only one for sparse storage; FIL needs a max_batch_size.
"""

from __future__ import annotations

from compiler.rules.findings import Finding
from compiler.spec.model import Fil, ModelSpec, Version
from runtime.contract.formats import FIL_INPUT, FIL_MODEL_FILES, FIL_OUTPUT
from runtime.contract.signature import Tensor

TREE_FORMATS = ("xgboost", "lightgbm")
# Model types each format may declare: a LightGBM file is never an XGBoost one.
MODEL_TYPES = {
    "xgboost": ("xgboost", "xgboost_json", "xgboost_ubj", "treelite_checkpoint"),
    "lightgbm": ("lightgbm", "treelite_checkpoint"),
}
SPARSE = ("SPARSE", "SPARSE8")
SPARSE_ALGOS = ("ALGO_AUTO", "NAIVE")


def model_type(version: Version) -> str:
    """The declared model type, else the one the format and the file's suffix say."""
    if version.fil is not None and version.fil.model_type is not None:
        return version.fil.model_type
    if version.format == "lightgbm":
        return "lightgbm"
    uri = version.artifact.uri
    if uri.endswith(".json"):
        return "xgboost_json"
    return "xgboost_ubj" if uri.endswith(".ubj") else "xgboost"


def output_class(version: Version, task: str) -> bool:
    declared = version.fil.output_class if version.fil is not None else None
    return declared if declared is not None else task != "regression"


def parameters(version: Version, task: str) -> tuple[tuple[str, str], ...]:
    """The config's parameters, as the strings FIL parses."""
    fil = version.fil or Fil()
    found = [
        ("model_type", model_type(version)),
        ("output_class", _flag(output_class(version, task))),
        ("predict_proba", _flag(fil.predict_proba)),
        ("storage_type", fil.storage_type),
        ("algo", fil.algo),
    ]
    if fil.threshold is not None:
        found.append(("threshold", repr(fil.threshold)))
    return tuple(sorted(found))


def model_file(version: Version) -> str:
    return FIL_MODEL_FILES[model_type(version)]


def _flag(value: bool) -> str:
    return "true" if value else "false"


def check(spec: ModelSpec, index: int) -> list[Finding]:
    """What FIL refuses, or would silently ignore, in one version's settings."""
    version = spec.versions[index]
    at = ("spec", "versions", index, "fil")
    fil = version.fil or Fil()
    found = []
    if fil.model_type is not None and fil.model_type not in MODEL_TYPES[version.format]:
        allowed = ", ".join(MODEL_TYPES[version.format])
        found.append(
            _finding(
                (*at, "model_type"),
                f"model_type {fil.model_type} does not describe a {version.format} file",
                f"use one of {allowed}, or leave model_type out",
            )
        )
    found += _class_findings(spec, fil, at)
    if fil.storage_type in SPARSE and fil.algo not in SPARSE_ALGOS:
        found.append(
            _finding(
                (*at, "algo"),
                f"algo {fil.algo} does not work with storage_type {fil.storage_type}",
                "use algo NAIVE (or ALGO_AUTO) with sparse storage, or storage_type DENSE",
            )
        )
    if version.version == spec.serving.version and spec.serving.max_batch_size == 0:
        found.append(
            _finding(
                ("spec", "serving", "max_batch_size"),
                f"version {version.version} is served by the FIL backend, which needs batching",
                "set serving.max_batch_size above 0 (FIL takes large batches: 1024 or more)",
            )
        )
    return found


def _class_findings(spec: ModelSpec, fil: Fil, at: tuple[str | int, ...]) -> list[Finding]:
    """output_class, predict_proba and threshold against the task and each other."""
    found = []
    classifier = spec.task != "regression"
    if fil.output_class is not None and fil.output_class != classifier:
        found.append(
            _finding(
                (*at, "output_class"),
                f"output_class {_flag(fil.output_class)} contradicts task {spec.task}",
                "leave output_class out: Kiln sets it from the task",
            )
        )
    if not classifier and (fil.predict_proba or fil.threshold is not None):
        field = "predict_proba" if fil.predict_proba else "threshold"
        found.append(
            _finding(
                (*at, field),
                f"{field} applies to classifiers; the task is regression",
                f"remove {field}",
            )
        )
    elif fil.threshold is not None and (fil.predict_proba or spec.task != "binary_classification"):
        found.append(
            _finding(
                (*at, "threshold"),
                "threshold decides a binary classifier's class; FIL ignores it with "
                "predict_proba or more than two classes",
                "remove threshold, or serve the class of a binary classifier",
            )
        )
    return found


def _finding(path: tuple[str | int, ...], message: str, hint: str) -> Finding:
    return Finding(path, "KILN1751", message, hint)


def signature(
    width: int, outputs: int, batching: bool
) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    """The tensors FIL serves: one fp32 row of `width` features, `outputs` values back."""
    lead = (-1,) if batching else ()
    return (
        (Tensor(FIL_INPUT, "fp32", (*lead, width)),),
        (Tensor(FIL_OUTPUT, "fp32", (*lead, outputs)),),
    )


def trained_signature(
    features: int, task: str, classes: int | None, batching: bool
) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    """What FIL serves of a tree model the built-in trainer writes natively: every feature
    in one input, and a value per row (regression) or a probability per class (the
    trainer records predict_proba for classifiers; two for a binary one)."""
    width = 1 if task == "regression" else classes or 2
    return signature(features, width, batching)


def output_width(spec: ModelSpec, version: Version) -> int:
    """One value per row, or a score per class with predict_proba (two for binary)."""
    if version.fil is None or not version.fil.predict_proba:
        return 1
    return len(spec.classes) if spec.classes else 2
