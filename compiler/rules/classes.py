"""A classifier's class labels: declared where the task needs them, and the same labels
wherever the spec names classes (the probability output, the monitor's score columns).

The order of `classes` is the order of the probability output's columns; the monitor
reads one score column per class, so a class without one would only fail when the
monitor job runs, in the cluster, hours after the merge.
"""

from __future__ import annotations

from compiler.rules.findings import Finding
from compiler.spec.model import ModelSpec

SPEC = ("spec",)
DECLARE = "list the labels in the order of the probability output's columns: classes: [a, b, c]"


def check_classes(spec: ModelSpec) -> list[Finding]:
    """The declaration fits the task; the outputs and score columns fit the declaration."""
    found = _declared(spec)
    if spec.classes is None or found:
        return found
    return [*_probability_width(spec), *_score_columns(spec)]


def _declared(spec: ModelSpec) -> list[Finding]:
    classes = spec.classes
    if spec.task == "multiclass_classification" and classes is None:
        return [
            Finding(
                (*SPEC, "task"),
                "KILN1730",
                "a multiclass model declares its class labels (`classes`)",
                DECLARE,
            )
        ]
    if classes is None:
        return []
    if spec.task == "regression":
        return [
            Finding(
                (*SPEC, "classes"), "KILN1730", "a regression model has no classes", "remove it"
            )
        ]
    if spec.task == "binary_classification" and len(classes) != 2:
        return [
            Finding(
                (*SPEC, "classes"),
                "KILN1730",
                f"a binary classifier has two classes, not {len(classes)}",
                "list the negative class first, then the positive one",
            )
        ]
    labels = [str(c) for c in classes]
    return [
        Finding(
            (*SPEC, "classes", i),
            "KILN1730",
            f"class {classes[i]!r} is listed twice",
            "list every class once",
        )
        for i, label in enumerate(labels)
        if label in labels[:i]
    ]


def _probability_width(spec: ModelSpec) -> list[Finding]:
    """A 2-D floating output of a classifier holds one column per class (a single column
    is a binary model's positive-class score, and fits any declaration)."""
    assert spec.classes is not None
    if spec.signature is None:
        return []
    found: list[Finding] = []
    for i, tensor in enumerate(spec.signature.outputs):
        floating = tensor.dtype in ("fp16", "fp32", "fp64", "bf16")
        width = tensor.shape[-1] if len(tensor.shape) == 2 else None
        if floating and width not in (None, -1, 1, len(spec.classes)):
            found.append(
                Finding(
                    (*SPEC, "signature", "outputs", i, "shape"),
                    "KILN1731",
                    f"output `{tensor.name}` holds {width} probabilities per row, but "
                    f"`classes` lists {len(spec.classes)}",
                    "list every class the model predicts in `classes`, or re-export the model",
                )
            )
    return found


def _score_columns(spec: ModelSpec) -> list[Finding]:
    """The monitor's score mapping names exactly the declared classes."""
    assert spec.classes is not None
    monitoring = spec.monitoring
    if monitoring is None or not isinstance(monitoring.columns.score, dict):
        return []
    declared = [str(c) for c in spec.classes]
    mapped = list(monitoring.columns.score)
    missing = [c for c in declared if c not in mapped]
    unknown = [c for c in mapped if c not in declared]
    if not missing and not unknown:
        return []
    said = []
    if missing:
        said.append(f"no score column for {', '.join(map(repr, missing))}")
    if unknown:
        said.append(f"score columns for {', '.join(map(repr, unknown))}, not a declared class")
    return [
        Finding(
            (*SPEC, "monitoring", "columns", "score"),
            "KILN1731",
            "monitoring.columns.score and `classes` disagree: " + "; ".join(said),
            "map every class of `classes` to the column holding its probability",
        )
    ]
