"""Capture in a cluster environment, lowered: the served model becomes the ensemble
`<model>` of `<model>.model` (its own config under a step name) and `<model>.capture`
(the python-backend capture step), and the pod installs the step from the runtime
image. Every config is printed and parsed back with Triton's ModelConfig."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from compiler.ir import ModelIR
from compiler.served import model_ir
from compiler.targets import capture, ensemble, serving, triton
from runtime.contract import capture as contract

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = ROOT / "tests" / "golden" / "capture" / "specs"


def cluster(name: str = "canary-replicas-cpu") -> ModelIR:
    ir, _ = model_ir(GOLDEN, name, "staging")
    return ir


def parsed(config: object) -> object:
    return triton.parse(triton.serialize(config))  # type: ignore[arg-type]


def test_the_public_name_is_an_ensemble_of_the_model_and_the_capture_step() -> None:
    ir = cluster()
    assert capture.is_capture_ensemble(ir)
    config = parsed(capture.ensemble_config(ir))
    assert config.name == ir.name and config.platform == "ensemble"
    model_step, capture_step = config.ensemble_scheduling.step
    assert (model_step.model_name, capture_step.model_name) == (
        "canary-replicas-cpu.model",
        "canary-replicas-cpu.capture",
    )
    assert model_step.model_version == capture_step.model_version == 2
    # The model's answer goes through the capture step, which answers it unchanged.
    assert dict(model_step.output_map) == {"y_hat": "kiln.answer.y_hat"}
    assert dict(capture_step.input_map) == {"x": "x", "y_hat": "kiln.answer.y_hat"}
    assert dict(capture_step.output_map) == {"y_hat": "y_hat"}
    assert [o.name for o in config.output] == ["y_hat"]
    assert not config.output[0].HasField("reshape")


def test_the_model_step_is_the_models_own_config_under_the_step_name() -> None:
    ir = cluster()
    step = capture.model_step_config(ir)
    alone = triton.build_config(dataclasses.replace(ir, capture=None))
    assert step.name == "canary-replicas-cpu.model" and step.platform == "onnxruntime_onnx"
    alone.name = step.name
    assert step == alone  # instances, batching and platform as served alone
    assert contract.PARAMETER not in step.parameters


def test_the_capture_step_reads_inputs_and_answer_and_carries_the_settings() -> None:
    ir = cluster()
    config = parsed(capture.capture_step_config(ir))
    assert config.backend == "python" and config.max_batch_size == 16
    assert [i.name for i in config.input] == ["x", "y_hat"]
    assert [o.name for o in config.output] == ["y_hat"]
    assert config.HasField("dynamic_batching")
    settings = contract.CaptureConfig.from_json(config.parameters[contract.PARAMETER].string_value)
    assert settings == ir.capture
    assert settings.data == "s3://capture-data" and settings.environment == "staging"
    assert settings.sample == 0.25 and settings.flush_seconds == 30
    # A regression model without a monitoring block has no score column to capture.
    assert (
        settings.prediction == contract.OutputColumn("prediction", "y_hat") and not settings.scores
    )


def test_the_pod_assembles_the_capture_ensemble_in_one_step_and_forwards_the_request_id() -> None:
    ir = cluster()
    model_key = ensemble.config_key("canary-replicas-cpu.model")
    capture_key = ensemble.config_key("canary-replicas-cpu.capture")
    configs = {"config.pbtxt": "ensemble", model_key: "model", capture_key: "step"}
    template = serving.pod_template(ir, configs)["spec"]
    (assemble,) = template["initContainers"]
    command = assemble["command"]
    assert command[:5] == ["python", "-m", "runtime.serving.ensemble", "--model", ir.name]
    assert command[command.index("--version") + 1] == "2"
    assert command[command.index("--step") + 1] == (
        f"canary-replicas-cpu.model={serving.CONFIG_MOUNT}/{model_key}"
    )
    artifact = command[command.index("--artifact") + 1]
    assert artifact.startswith("canary-replicas-cpu.model=")
    # The capture step comes from the runtime image: no artifact, digest or signature.
    assert command[command.index("--capture-step") + 1] == (
        f"canary-replicas-cpu.capture={serving.CONFIG_MOUNT}/{capture_key}"
    )
    assert command.count("--artifact") == 1
    assert command[command.index("--config") + 1] == f"{serving.CONFIG_MOUNT}/config.pbtxt"
    args = template["containers"][0]["args"]
    assert "--grpc-header-forward-pattern=x-request-id" in args
    assert "--http-header-forward-pattern=x-request-id" in args
    # The steps' configs are part of what rolls the pods.
    changed = serving.pod_template(ir, {**configs, capture_key: "changed"})
    assert changed["metadata"] != serving.pod_template(ir, configs)["metadata"]


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    shutil.copytree(GOLDEN, tmp_path / "specs")
    return tmp_path / "specs"


def test_without_capture_a_cluster_model_is_served_alone(specs: Path) -> None:
    path = specs / "models" / "canary-replicas-cpu.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace("sample: 0.25,", "enabled: false, sample: 0.25,"), encoding="utf-8"
    )
    ir, _ = model_ir(specs, "canary-replicas-cpu", "staging")
    assert ir.capture is None and not capture.is_capture_ensemble(ir)
    template = serving.pod_template(ir, {"config.pbtxt": "plain"})["spec"]
    (assemble,) = template["initContainers"]
    assert assemble["command"][:3] == ["python", "-m", "runtime.serving.assemble"]
    assert not any("forward-pattern" in a for a in template["containers"][0]["args"])


def test_a_local_environment_keeps_capture_in_the_adapter() -> None:
    ir, _ = model_ir(ROOT / "specs", "car-loan-default", "local")
    assert ir.capture is not None and not capture.is_capture_ensemble(ir)
    assert contract.PARAMETER in triton.build_config(ir).parameters


def test_a_captured_python_models_archive_reaches_its_model_step() -> None:
    """The model step's config points EXECUTION_ENV_PATH at an archive beside model.py:
    the one init command must fetch it into that step, or Triton never loads it."""
    ir = cluster()
    (artifact,) = ir.served
    packed = dataclasses.replace(
        artifact, execution_env="s3://models/env.tar.gz", execution_env_sha256="a" * 64
    )
    command = serving.assemble_command(dataclasses.replace(ir, served=(packed,)))
    step = "canary-replicas-cpu.model"
    assert command[command.index("--execution-env") + 1] == f"{step}=s3://models/env.tar.gz"
    assert command[command.index("--execution-env-sha256") + 1] == f"{step}={'a' * 64}"
