"""The FeatureSet and Model documents `kiln new` writes, with comments for the reader.

The documents are built as ruamel.yaml nodes and serialised by its emitter, never by
formatting text: a column name or a category value from the data is a scalar the
emitter quotes as it needs, so nothing in a data file can add keys or documents.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from compiler.rules.signature import FEATURE_TO_KILN
from compiler.scaffold.infer import Inferred, InferredFeature
from compiler.spec.types import API_VERSION
from runtime.contract.vocabulary import Task

# A feature written on one line when it fits in LINE characters; the emitter wraps
# longer value lists at WIDTH.
LINE = 96
WIDTH = 100


@dataclass(frozen=True)
class Request:
    """What the user asked `kiln new` for, besides the data."""

    name: str
    task: Task
    source_uri: str
    source_format: str
    data_label: str  # how the header comment names the data file
    rows: int


def featureset_document(request: Request, inferred: Inferred) -> CommentedMap:
    spec = CommentedMap(
        version=1,
        entity=inferred.roles.entity,
        timestamp=inferred.roles.timestamp,
        source=_flow(uri=request.source_uri, format=request.source_format),
        features=_features(inferred.features),
    )
    document = _envelope("FeatureSet", request.name, spec)
    document.yaml_set_start_comment(
        f"FeatureSet inferred by `kiln new` from {request.data_label} ({request.rows} rows read).\n"
        "Review it: ranges are the sample's, and the kinds follow the rules in\n"
        "docs/your-model.md. Numbers become float32 inputs, labels int64 or string."
    )
    return document


def model_document(request: Request, inferred: Inferred) -> CommentedMap:
    spec = CommentedMap(
        task=request.task,
        features=f"{request.name}@1",
        target=inferred.roles.target,
        **({"classes": _flow_list(inferred.classes)} if inferred.classes else {}),
        signature=_signature(inferred, request.task),
        # Empty, not absent: the publish step adds each trained version to this list.
        versions=CommentedSeq(),
        serving=_serving(),
        rollout=_rollout(),
        training=_training(request.task),
        monitoring=_monitoring(request, inferred),
    )
    spec.yaml_set_comment_before_after_key(
        "training",
        before="Kiln's built-in trainer (docs/pipelines.md lists the estimators and their\n"
        "params); `kiln run NAME --local` trains a first version with it.",
        indent=2,
    )
    spec.yaml_set_comment_before_after_key(
        "versions",
        before="No version yet: `kiln run` trains one, `kiln promote` adds it here.",
        indent=2,
    )
    spec.yaml_set_comment_before_after_key(
        "monitoring",
        before="The monitor compares served traffic with the reference rows.",
        indent=2,
    )
    document = _envelope("Model", request.name, spec)
    document.yaml_set_start_comment(
        f"{request.task.replace('_', ' ').capitalize()} model scaffolded by `kiln new` from "
        f"{request.data_label}.\nEvery block holds defaults: adjust them to your service."
    )
    return document


def dump(document: CommentedMap) -> str:
    yaml = YAML(typ="rt")
    yaml.width = WIDTH
    yaml.indent(mapping=2, sequence=4, offset=2)
    stream = io.StringIO()
    yaml.dump(document, stream)
    return stream.getvalue()


def _envelope(kind: str, name: str, spec: CommentedMap) -> CommentedMap:
    return CommentedMap(apiVersion=API_VERSION, kind=kind, metadata=_flow(name=name), spec=spec)


def _features(features: tuple[InferredFeature, ...]) -> CommentedSeq:
    listed = CommentedSeq()
    for i, feature in enumerate(features):
        entry = _flow(name=feature.name, dtype=feature.dtype, kind=feature.kind)
        if feature.range is not None:
            low, high = feature.range
            entry["range"] = _flow(
                min=_rounded(low, ROUND_FLOOR), max=_rounded(high, ROUND_CEILING)
            )
        if feature.values is not None:
            entry["values"] = _flow_list(feature.values)
        listed.append(_one_line_if_short(entry))
        if feature.notes:
            listed.yaml_add_eol_comment("; ".join(feature.notes), i)
    return listed


def _signature(inferred: Inferred, task: Task) -> CommentedMap:
    inputs = CommentedSeq(
        _flow(name=f.name, dtype=FEATURE_TO_KILN[f.dtype], shape=_flow_list([-1, 1]))
        for f in inferred.features
    )
    outputs = CommentedSeq()
    if task == "regression":
        outputs.append(_flow(name="prediction", dtype="fp32", shape=_flow_list([-1, 1])))
    else:
        assert inferred.classes is not None
        outputs.append(_flow(name="label", dtype=inferred.label_dtype, shape=_flow_list([-1])))
        classes = len(inferred.classes)
        outputs.append(_flow(name="probabilities", dtype="fp32", shape=_flow_list([-1, classes])))
    return CommentedMap(inputs=inputs, outputs=outputs)


def _training(task: Task) -> CommentedMap:
    """Gradient-boosted trees: good on mixed tabular data with no tuning, for any task.
    A classifier must beat chance to be published; a regression's scale is the user's."""
    trainer = CommentedMap(
        library="sklearn", estimator="hist_gradient_boosting", params=_flow(max_iter=100)
    )
    training = CommentedMap(trainer=trainer, seed=0, holdout=0.2)
    if task != "regression":
        training["gates"] = _flow_list([_flow(metric="roc_auc", min=0.6)])
        training.yaml_add_eol_comment("better than chance; raise it to your own bar", "gates")
    return training


def _serving() -> CommentedMap:
    return CommentedMap(
        max_batch_size=64,
        dynamic_batching=_flow(max_queue_delay_us=500),
        instance_groups=_flow_list([_flow(kind="cpu", count=1)]),
        resources=_flow(cpu="2", memory="4Gi"),
        replicas=_flow(min=2, max=4),
        slo=_flow(latency_p99_ms=50, error_rate=0.001),
    )


def _rollout() -> CommentedMap:
    """A canary with an analysis step, so the rollout meets an environment that requires
    an analysis before full traffic (KILN1604)."""
    return CommentedMap(
        strategy="canary",
        steps=_flow_list([_flow(weight=50, pause="10m"), _flow(analysis=True)]),
        analysis=_flow(smoke_test=True),
    )


def _monitoring(request: Request, inferred: Inferred) -> CommentedMap:
    columns = _flow(timestamp=inferred.roles.timestamp, prediction="y_pred")
    if request.task == "binary_classification":
        columns["score"] = "y_pred_proba"
    elif request.task == "multiclass_classification":
        assert inferred.classes is not None
        columns["score"] = _one_line_if_short(_flow(**score_columns(inferred.classes)))
    columns["target"] = inferred.roles.target
    performance = (
        _flow(estimator="dle", metrics=_flow_list(["mae"]))
        if request.task == "regression"
        else _flow(estimator="cbpe", metrics=_flow_list(["roc_auc", "f1"]))
    )
    return CommentedMap(
        schedule=_flow(cron="0 * * * *"),
        reference=_flow(uri=request.source_uri),
        analysis=_flow(uri=f"{request.name}/predictions/", lookback="7d"),
        columns=_one_line_if_short(columns),
        chunking=_flow(size=5000),
        drift=CommentedMap(
            univariate=_flow(
                continuous=_flow_list(["jensen_shannon"]), categorical=_flow_list(["chi2"])
            ),
            multivariate=_flow(method="reconstruction_error"),
        ),
        performance=performance,
        data_quality=_flow(missing_values=True, unseen_values=True, ranges=True),
    )


def score_columns(classes: tuple[Any, ...]) -> dict[str, str]:
    """The monitored probability column of each class: `y_pred_proba_<class>`, with every
    character a column name cannot hold replaced by '_' (and a number added where two
    classes would meet on one name)."""
    columns: dict[str, str] = {}
    for label in classes:
        base = "y_pred_proba_" + re.sub(r"[^A-Za-z0-9_]", "_", str(label))
        column, n = base, 2
        while column in columns.values():
            column, n = f"{base}_{n}", n + 1
        columns[str(label)] = column
    return columns


def _rounded(value: float, rounding: str) -> int | float:
    """A bound to three significant digits, rounded away from the data (floor for a
    minimum, ceiling for a maximum) so every sampled value stays inside; whole bounds
    are written as integers (0, not 0.0)."""
    exact = Decimal(value)
    if exact == 0:
        return 0
    bound = exact.quantize(Decimal(1).scaleb(exact.adjusted() - 2), rounding=rounding)
    return int(bound) if bound == bound.to_integral_value() else float(bound)


def _one_line_if_short(node: CommentedMap) -> CommentedMap:
    if len(dump(node)) > LINE:
        node.fa.set_block_style()
    return node


def _flow(**entries: Any) -> CommentedMap:
    node = CommentedMap(entries)
    node.fa.set_flow_style()
    return node


def _flow_list(items: Any) -> CommentedSeq:
    node = CommentedSeq(items)
    node.fa.set_flow_style()
    return node
