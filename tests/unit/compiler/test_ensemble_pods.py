"""An ensemble's serving pods in a cluster environment (the example's car-price-pipeline
in staging): one init container assembles every step and the ensemble, the ConfigMap
carries every config, and the pod template's digest covers them all.

What the rendered init command does when it runs is tests/unit/runtime/serving/
test_ensemble_init.py; the strict schemas of these objects are checked with every golden
tree (tests/golden/every-field has a cluster ensemble with signed steps).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from compiler.api import build
from compiler.artifact import Artifact
from compiler.ir import ModelIR
from compiler.render import render_model
from compiler.targets import analysis, ensemble, promql, serving, triton
from runtime.serving import ensemble as runtime_ensemble
from tests.tools import REPO_ROOT

MODEL = "car-price-pipeline"
STEPS = (f"{MODEL}.prep", f"{MODEL}.regressor")
CONFIG_MAP_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")  # Kubernetes' rule for ConfigMap keys


@pytest.fixture(scope="module")
def pipeline() -> ModelIR:
    result = build(REPO_ROOT / "specs")
    assert result.ok, [d.text() for d in result.diagnostics]
    assert not [d for d in result.diagnostics if d.code == "KILN1775"]
    return next(
        m for m in result.resolution.models if m.name == MODEL and m.environment.name == "staging"
    )


def _documents(model: ModelIR) -> dict[str, Any]:
    artifacts, diagnostics = render_model(model, lambda m, p: (1, 1))
    assert diagnostics == []
    return {
        a.document["kind"]: a.document for a in artifacts if isinstance(a, Artifact) and a.document
    }


def _init(model: ModelIR) -> dict[str, Any]:
    pod = _documents(model)["Rollout"]["spec"]["template"]["spec"]
    assert len(pod["initContainers"]) == 1
    container: dict[str, Any] = pod["initContainers"][0]
    return container


def test_one_init_command_names_every_step_with_its_config_and_artifact(
    pipeline: ModelIR,
) -> None:
    command = _init(pipeline)["command"]
    assert command[:3] == ["python", "-m", "runtime.serving.ensemble"]
    # The runtime's own parser reads what the compiler rendered.
    args = runtime_ensemble.build_parser().parse_args(command[3:])
    assert (args.model, args.version, args.repository.as_posix()) == (MODEL, 1, "/models")
    assert args.config.as_posix() == "/etc/kiln/triton/config.pbtxt"
    assert pipeline.ensemble is not None
    for step in pipeline.ensemble.steps:
        assert f"{step.name}=/etc/kiln/triton/{step.name}.config.pbtxt" in args.step
        assert f"{step.name}={step.artifact.uri}" in args.artifact
        assert step.artifact.uri.startswith("s3://acme-models/car-price-pipeline/")
        assert f"{step.name}={step.artifact.sha256}" in args.sha256
    assert [s.partition("=")[0] for s in args.step] == list(STEPS)
    # No trust in staging: no signature is checked, and none is passed.
    assert args.signature == [] and args.trust is None


def test_the_config_map_carries_the_ensemble_and_every_step_config(pipeline: ModelIR) -> None:
    data = _documents(pipeline)["ConfigMap"]["data"]
    assert set(data) == {"config.pbtxt", "signature.json", *(f"{s}.config.pbtxt" for s in STEPS)}
    assert all(CONFIG_MAP_KEY.match(key) for key in data)
    folder = REPO_ROOT / "generated/staging" / MODEL / "triton"
    for key, path in [
        ("config.pbtxt", folder / "config.pbtxt"),
        *((f"{s}.config.pbtxt", folder / "steps" / s / "config.pbtxt") for s in STEPS),
    ]:
        config = mc.ModelConfig()
        text_format.Parse(data[key], config)
        # The same text as the committed config, below its header comment.
        assert path.read_text(encoding="utf-8").split("\n", 1)[1] == data[key]
    assert config.platform == "onnxruntime_onnx"  # the stock image's ONNX backend


def test_a_changed_step_config_changes_the_pod_template(pipeline: ModelIR) -> None:
    ensemble_ir = pipeline.ensemble
    assert ensemble_ir is not None
    prep, regressor = ensemble_ir.steps
    smaller = dataclasses.replace(regressor, max_batch_size=128)
    changed = dataclasses.replace(
        pipeline, ensemble=dataclasses.replace(ensemble_ir, steps=(prep, smaller))
    )
    before, after = _documents(pipeline), _documents(changed)
    # Only the step's config differs; the ensemble's own is the same text.
    assert before["ConfigMap"]["data"]["config.pbtxt"] == after["ConfigMap"]["data"]["config.pbtxt"]
    key = f"{regressor.name}.config.pbtxt"
    assert before["ConfigMap"]["data"][key] != after["ConfigMap"]["data"][key]

    def digest(documents: dict[str, Any]) -> str:
        annotations = documents["Rollout"]["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["kiln.dev/config-sha256"])

    assert digest(before) != digest(after)


def test_a_single_models_digest_is_still_its_config_alone() -> None:
    import hashlib

    text = 'name: "m"\n'
    assert (
        serving.config_digest({triton.CONFIG_FILE: text})
        == hashlib.sha256(text.encode()).hexdigest()
    )


def test_the_pods_are_labelled_with_the_ensemble_version(pipeline: ModelIR) -> None:
    labels = _documents(pipeline)["Rollout"]["spec"]["template"]["metadata"]["labels"]
    assert labels["kiln.dev/version"] == "1"


def test_the_smoke_job_computes_the_ensemble_from_its_steps(pipeline: ModelIR) -> None:
    template = analysis.analysis_template(pipeline)
    assert template is not None
    smoke = next(m for m in template["spec"]["metrics"] if m["name"] == "smoke-test")
    command = smoke["provider"]["job"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "--artifact" not in command  # an ensemble has no served version of its own
    assert command[command.index("--config") + 1] == "/etc/kiln/triton/config.pbtxt"
    steps = [command[i + 1] for i, a in enumerate(command) if a == "--step"]
    assert steps == [f"{s}=/etc/kiln/triton/{s}.config.pbtxt" for s in STEPS]
    artifacts = [command[i + 1] for i, a in enumerate(command) if a == "--step-artifact"]
    assert [a.partition("=")[0] for a in artifacts] == list(STEPS)


def test_triton_metrics_are_read_for_the_ensemble_not_its_steps(pipeline: ModelIR) -> None:
    """Triton reports the ensemble's own requests under its name (model="<m>"), and each
    step's internal requests under the step's: the analysis judges what clients called."""
    template = analysis.analysis_template(pipeline)
    assert template is not None
    queries = [
        m["provider"]["prometheus"]["query"]
        for m in template["spec"]["metrics"]
        if "prometheus" in m["provider"]
    ]
    assert queries
    for query in queries:
        assert f'model="{MODEL}"' in query
        assert all(step not in query for step in STEPS)


def test_config_keys_are_the_step_names_and_a_dot() -> None:
    assert ensemble.config_key(f"{MODEL}.prep") == f"{MODEL}.prep.config.pbtxt"


def test_queue_time_sums_the_steps_queues_per_ensemble_request(pipeline: ModelIR) -> None:
    """Triton's ensemble reports almost no queue time of its own (its scheduler hands the
    request on); the steps' queues are what grow under load (measured
    on the local Triton 2.51, see promql._queues)."""
    query = promql.queue_time_us(pipeline, MODEL)
    queued, requests = query.split(" / ")
    assert 'model=~"car-price-pipeline\\\\.prep|car-price-pipeline\\\\.regressor"' in queued
    assert "nv_inference_queue_duration_us" in queued
    assert f'model="{MODEL}"' in requests and "nv_inference_request_success" in requests
