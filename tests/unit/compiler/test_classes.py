"""compiler/rules/classes.py: what the error corpus cannot reach from its binary base."""

from __future__ import annotations

from typing import Any

from ruamel.yaml import YAML

from compiler.rules.classes import check_classes
from compiler.spec.model import ModelSpec
from tests.tools import REPO_ROOT


def _spec(**changes: Any) -> ModelSpec:
    document = YAML(typ="safe").load(REPO_ROOT / "specs" / "models" / "car-price.yaml")
    spec: dict[str, Any] = {**document["spec"], **changes}
    spec.pop("environments", None)
    return ModelSpec.model_validate(spec)


def test_a_regression_model_declares_no_classes() -> None:
    assert check_classes(_spec()) == []
    [finding] = check_classes(_spec(classes=["low", "high"]))
    assert (finding.code, finding.path) == ("KILN1730", ("spec", "classes"))


def test_integer_classes_match_string_score_keys() -> None:
    monitoring = _spec().monitoring
    assert monitoring is not None
    document = monitoring.model_dump(by_alias=True, exclude_none=True)
    document["columns"]["score"] = {"0": "p0", "1": "p1", "2": "p2"}
    document["performance"] = {"estimator": "cbpe", "metrics": ["f1"]}
    spec = _spec(task="multiclass_classification", classes=[0, 1, 2], monitoring=document)
    assert check_classes(spec) == []
    spec = _spec(task="multiclass_classification", classes=[0, 1, 3], monitoring=document)
    [finding] = check_classes(spec)
    assert finding.code == "KILN1731" and "no score column for '3'" in finding.message
