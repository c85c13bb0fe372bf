"""The ensemble graph checks (compiler/rules/ensemble.py) and the configs rendered for an
ensemble, parsed back with Triton's own ModelConfig."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from compiler.api import build
from compiler.checks.triton_rules import load_time_problems
from compiler.plan.facts import model_facts
from compiler.rules.ensemble import check_ensemble
from compiler.spec.model import ModelSpec
from compiler.targets import capture, ensemble, triton

ROOT = Path(__file__).resolve().parents[4]


def _tensor(name: str, width: int = 1, dtype: str = "fp32") -> dict[str, Any]:
    return {"name": name, "dtype": dtype, "shape": [-1, width]}


def _step(
    name: str, inputs: dict[str, str], outputs: dict[str, str], **more: Any
) -> dict[str, Any]:
    """A python step whose tensors are named after the ensemble tensors they map to."""
    return {
        "name": name,
        "artifact": {"uri": f"s3://steps/{name}/model.py"},
        "signature": {
            "inputs": [_tensor(k) for k in inputs],
            "outputs": [_tensor(k) for k in outputs],
        },
        "input_map": inputs,
        "output_map": outputs,
        **more,
    }


BASE: dict[str, Any] = {
    "task": "regression",
    "features": "f@1",
    "target": "y",
    "signature": {"inputs": [_tensor("a"), _tensor("b")], "outputs": [_tensor("out")]},
    "ensemble": {
        "steps": [
            _step("one", {"a": "a", "b": "b"}, {"x": "x"}),
            _step("two", {"x": "x"}, {"y": "y"}),
            _step("three", {"y": "y"}, {"out": "out"}),
        ]
    },
    "serving": {"max_batch_size": 8},
}


def _codes(change: Any = None) -> list[tuple[str, str]]:
    spec = copy.deepcopy(BASE)
    if change is not None:
        change(spec)
    found = check_ensemble(ModelSpec.model_validate(spec))
    return [(f.code, f.message) for f in found]


def _steps(spec: dict[str, Any]) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = spec["ensemble"]["steps"]
    return steps


def test_a_connected_chain_has_no_finding() -> None:
    assert _codes() == []


def test_steps_in_any_order_connect_the_same() -> None:
    assert _codes(lambda s: _steps(s).reverse()) == []


def test_a_three_step_cycle_is_named_in_data_flow_order() -> None:
    def loop(spec: dict[str, Any]) -> None:
        one = _steps(spec)[0]
        one["input_map"] = {"a": "y", "b": "b"}  # one reads two's output: one -> two -> one
        spec["signature"]["inputs"] = [_tensor("b")]

    found = _codes(loop)
    assert [c for c, _ in found] == ["KILN1776"]
    assert "one -> two -> one" in found[0][1]


def test_an_edge_with_another_dtype() -> None:
    def retype(spec: dict[str, Any]) -> None:
        _steps(spec)[1]["signature"]["inputs"][0]["dtype"] = "int64"

    assert _codes(retype) == [
        ("KILN1774", "input `x` of step two is int64, fed fp32 by `x` of step one")
    ]


def test_variable_dimensions_match_any_size_but_ranks_must_agree() -> None:
    def variable(spec: dict[str, Any]) -> None:
        _steps(spec)[1]["signature"]["inputs"][0]["shape"] = [-1, -1]

    def rank(spec: dict[str, Any]) -> None:
        _steps(spec)[1]["signature"]["inputs"][0]["shape"] = [-1, 1, 1]

    assert _codes(variable) == []
    assert [c for c, _ in _codes(rank)] == ["KILN1774"]


def test_an_output_no_step_produces_and_an_input_no_step_reads() -> None:
    def loose(spec: dict[str, Any]) -> None:
        spec["signature"]["outputs"].append(_tensor("extra"))
        spec["signature"]["inputs"].append(_tensor("unused"))

    assert sorted(c for c, _ in _codes(loose)) == ["KILN1771", "KILN1772"]


def test_an_ensemble_input_cannot_be_an_ensemble_output() -> None:
    """Triton runs no step for it; the output must come from a step."""

    def passthrough(spec: dict[str, Any]) -> None:
        spec["signature"]["outputs"].append(_tensor("a"))

    assert [c for c, _ in _codes(passthrough)] == ["KILN1771"]


def test_a_tensor_two_steps_produce() -> None:
    def twice(spec: dict[str, Any]) -> None:
        _steps(spec).append(_step("four", {"x": "x"}, {"y": "y"}))

    found = _codes(twice)
    # The first producer keeps the tensor, so the second step also leads nowhere.
    assert [c for c, _ in found] == ["KILN1773", "KILN1777"]
    assert "produced by step two and again by step four" in found[0][1]


def test_a_step_that_reaches_no_output_is_unused_even_when_fed() -> None:
    def side(spec: dict[str, Any]) -> None:
        _steps(spec).append(_step("audit", {"x": "x"}, {"note": "note"}))

    assert [c for c, _ in _codes(side)] == ["KILN1777"]


def test_batching_rules_of_the_steps() -> None:
    def smaller(spec: dict[str, Any]) -> None:
        _steps(spec)[0]["max_batch_size"] = 4

    def larger(spec: dict[str, Any]) -> None:
        _steps(spec)[0]["max_batch_size"] = 64

    def fixed_batch(spec: dict[str, Any]) -> None:
        _steps(spec)[2]["signature"]["outputs"][0]["shape"] = [1, 1]

    assert [c for c, _ in _codes(smaller)] == ["KILN1778"]
    assert _codes(larger) == []
    assert "KILN1778" in [c for c, _ in _codes(fixed_batch)]


def test_names_twice_and_maps_that_name_missing_tensors() -> None:
    def twice(spec: dict[str, Any]) -> None:
        _steps(spec)[2]["name"] = "one"

    def unknown(spec: dict[str, Any]) -> None:
        _steps(spec)[1]["input_map"] = {"z": "x"}

    assert [c for c, _ in _codes(twice)] == ["KILN1770"]
    assert sorted(c for c, _ in _codes(unknown)) == ["KILN1779", "KILN1779"]


def test_an_ensemble_needs_the_signature_and_no_served_version() -> None:
    spec = copy.deepcopy(BASE)
    del spec["signature"]
    with pytest.raises(ValueError, match=r"needs spec\.signature"):
        ModelSpec.model_validate(spec)
    spec = copy.deepcopy(BASE)
    spec["serving"]["version"] = 1
    with pytest.raises(ValueError, match=r"leave serving\.version out"):
        ModelSpec.model_validate(spec)


def test_the_example_ensemble_renders_configs_triton_loads() -> None:
    result = build(ROOT / "specs")
    assert result.ok
    models = [m for m in result.resolution.models if m.ensemble is not None]
    assert {m.environment.name for m in models} == {"local", "staging", "production"}
    for model in models:
        assert model.ensemble is not None
        config = triton.parse(triton.serialize(capture.ensemble_config(model)))
        assert config.platform == "ensemble" and not config.instance_group
        # The ensemble's tensors are the signature: raw inputs, final outputs.
        assert [i.name for i in config.input] == [t.name for t in model.inputs]
        assert [o.name for o in config.output] == [t.name for t in model.outputs]
        steps = {s.model_name: s for s in config.ensemble_scheduling.step}
        # The local environment captures by default: the capture step comes last.
        recorder = {capture.capture_step(model)} if model.capture is not None else set()
        assert set(steps) == {s.name for s in model.ensemble.steps} | recorder
        for step in model.ensemble.steps:
            rendered = mc.ModelConfig()
            text_format.Parse(triton.serialize(ensemble.step_config(model, step)), rendered)
            assert load_time_problems(rendered, step.name, [model.ensemble.version], 0) == []
            assert dict(steps[step.name].input_map) == dict(step.input_map)
            expected_runner = "python" if model.is_local or step.format.name == "python" else ""
            assert rendered.backend == expected_runner


def test_the_plan_names_each_step_so_a_new_step_artifact_shows() -> None:
    result = build(ROOT / "specs")
    model = next(m for m in result.resolution.models if m.ensemble is not None and m.is_local)
    assert model.ensemble is not None
    before = model_facts(model)
    assert before["serving version"] == "ensemble version 1"
    prep = model.ensemble.steps[0]
    assert before[f"step {prep.name}"].startswith(f"python {prep.artifact.uri}, sha256 ")
    changed_artifact = dataclasses.replace(prep.artifact, sha256="0" * 64)
    steps = (dataclasses.replace(prep, artifact=changed_artifact), *model.ensemble.steps[1:])
    changed = dataclasses.replace(model, ensemble=dataclasses.replace(model.ensemble, steps=steps))
    after = model_facts(changed)
    assert [k for k in before if before[k] != after[k]] == [f"step {prep.name}"]
    # The ensemble's serving settings are described like a served version's.
    assert before["max batch size"] == "64"
    assert before["dynamic batching"] == "queue delay up to 200 us"


def test_cluster_environments_serve_the_ensemble_without_a_warning() -> None:
    result = build(ROOT / "specs")
    assert result.ok and not [d for d in result.diagnostics if d.file.endswith("pipeline.yaml")]
    kinds = {
        (a.path.split("/")[0], a.document["kind"])
        for a in result.artifacts
        if a.document is not None and "/car-price-pipeline/" in a.path
    }
    for environment in ("staging", "production"):
        assert (environment, "Rollout") in kinds and (environment, "ConfigMap") in kinds
    assert not any(e == "local" for e, _ in kinds)  # locally `kiln serve` runs it


def test_steps_must_be_signed_where_the_environment_requires_signatures() -> None:
    from compiler.rules.ensemble import check_environment
    from compiler.spec.project import Environment

    spec = ModelSpec.model_validate(BASE)
    signed_spec = copy.deepcopy(BASE)
    for step in _steps(signed_spec):
        step["artifact"]["signature"] = step["artifact"]["uri"] + ".sig"
    signed = ModelSpec.model_validate(signed_spec)
    strict = Environment.model_validate(
        {"name": "prod", "namespace": "ml", "policy": {"require_signatures": True}},
        strict=False,
    )
    found = check_environment(spec, strict)
    assert [(f.code, f.path[-2]) for f in found] == [("KILN1608", i) for i in range(3)]
    assert check_environment(signed, strict) == []
