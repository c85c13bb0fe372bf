"""A declared ensemble with capture, lowered: the user's steps, each ensemble output they
produce renamed to its answer tensor, then the capture step. Every config is printed and
parsed back with Triton's ModelConfig and passes its load-time rules; the rendered graph
connects by the compiler's own ensemble checks; the pod installs the capture step; the
rollout's quality gate compares the rows the capture step writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tritonclient.grpc import model_config_pb2 as mc

from compiler.checks.triton_rules import load_time_problems
from compiler.ir import ModelIR
from compiler.rules.ensemble import check_ensemble
from compiler.served import model_ir
from compiler.spec.model import ModelSpec
from compiler.targets import analysis, capture, ensemble, serving, triton
from runtime.contract import capture as contract

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = ROOT / "tests" / "golden" / "capture" / "specs"
DTYPES = {code: dtype for dtype, code in triton.TRITON_TYPES.items()}


def local_pipeline() -> ModelIR:
    ir, _ = model_ir(ROOT / "specs", "car-price-pipeline", "local")
    return ir


def cluster_ensemble() -> ModelIR:
    ir, _ = model_ir(GOLDEN, "ensemble-canary", "staging")
    return ir


def parsed(config: mc.ModelConfig) -> mc.ModelConfig:
    return triton.parse(triton.serialize(config))


def step_configs(ir: ModelIR) -> dict[str, mc.ModelConfig]:
    """Every step's config as rendered, by its Triton name."""
    assert ir.ensemble is not None
    configs = {s.name: parsed(ensemble.step_config(ir, s)) for s in ir.ensemble.steps}
    recorder = parsed(capture.capture_step_config(ir))
    return {**configs, recorder.name: recorder}


@pytest.mark.parametrize("make", [local_pipeline, cluster_ensemble])
def test_the_capture_step_comes_last_and_every_config_loads(make: Any) -> None:
    ir = make()
    assert ir.ensemble is not None and capture.has_capture_step(ir)
    whole = parsed(capture.ensemble_config(ir))
    scheduled = [s.model_name for s in whole.ensemble_scheduling.step]
    assert scheduled == [*(s.name for s in ir.ensemble.steps), f"{ir.name}.capture"]
    configs = step_configs(ir)
    assert set(configs) == set(scheduled)
    for config in [whole, *configs.values()]:
        assert load_time_problems(config, config.name, [ir.ensemble.version], 0) == []
    recorder = configs[f"{ir.name}.capture"]
    # The capture step reads the ensemble's inputs and its answer, and answers the outputs.
    assert [t.name for t in recorder.input] == [t.name for t in ir.inputs + ir.outputs]
    assert [t.name for t in recorder.output] == [t.name for t in ir.outputs]
    assert recorder.backend == "python"
    assert contract.CaptureConfig.from_json(
        recorder.parameters[contract.PARAMETER].string_value
    ) == (ir.capture)


def test_only_the_ensemble_outputs_are_renamed_to_answer_tensors() -> None:
    ir = local_pipeline()
    whole = parsed(capture.ensemble_config(ir))
    maps = {
        s.model_name: (dict(s.input_map), dict(s.output_map))
        for s in whole.ensemble_scheduling.step
    }
    assert maps["car-price-pipeline.prep"][1] == {"features": "features"}  # internal: kept
    assert maps["car-price-pipeline.regressor"][1] == {"variable": "kiln.answer.prediction"}
    inputs, outputs = maps["car-price-pipeline.capture"]
    assert inputs["prediction"] == "kiln.answer.prediction"
    assert inputs["car_age"] == "car_age" and outputs == {"prediction": "prediction"}


def _tensors(tensors: Any) -> list[dict[str, Any]]:
    return [{"name": t.name, "dtype": DTYPES[t.data_type], "shape": [-1, *t.dims]} for t in tensors]


def rendered_graph(ir: ModelIR, rename: bool = True) -> ModelSpec:
    """The graph Triton schedules, read back from the rendered configs, as a spec the
    compiler's ensemble checks take."""
    whole = parsed(capture.ensemble_config(ir))
    configs = step_configs(ir)
    steps = []
    for scheduled in whole.ensemble_scheduling.step:
        config = configs[scheduled.model_name]
        output_map = dict(scheduled.output_map)
        if not rename:  # what the lowering would give without its answer tensors
            output_map = {k: v.removeprefix(contract.ANSWER_PREFIX) for k, v in output_map.items()}
        steps.append(
            {
                "name": scheduled.model_name.split(".", 1)[1],
                "artifact": {"uri": f"s3://steps/{scheduled.model_name}"},
                "signature": {"inputs": _tensors(config.input), "outputs": _tensors(config.output)},
                "input_map": dict(scheduled.input_map),
                "output_map": output_map,
            }
        )
    spec = {
        "task": ir.task,
        "features": "f@1",
        "target": ir.target,
        "signature": {"inputs": _tensors(whole.input), "outputs": _tensors(whole.output)},
        "ensemble": {"steps": steps},
        "serving": {"max_batch_size": whole.max_batch_size},
    }
    return ModelSpec.model_validate(spec)


@pytest.mark.parametrize("make", [local_pipeline, cluster_ensemble])
def test_the_lowered_graph_connects_by_the_compilers_own_checks(make: Any) -> None:
    ir = make()
    assert check_ensemble(rendered_graph(ir)) == []
    # Without the answer tensors the last user step and the capture step would both
    # produce the ensemble's output: the checks see that, so they do read the graph.
    codes = {f.code for f in check_ensemble(rendered_graph(ir, rename=False))}
    assert "KILN1773" in codes


def test_the_pod_installs_the_capture_step_and_forwards_the_request_id() -> None:
    ir = cluster_ensemble()
    command = serving.assemble_command(ir)
    key = ensemble.config_key(f"{ir.name}.capture")
    at = command.index("--capture-step")
    assert command[at + 1] == f"{ir.name}.capture={serving.CONFIG_MOUNT}/{key}"
    configs = {key: triton.serialize(capture.capture_step_config(ir))}
    assert key in serving.config_map(ir, {triton.CONFIG_FILE: "", **configs})["data"]
    args = serving.workload(ir, {triton.CONFIG_FILE: "", **configs})["spec"]["template"]["spec"]
    triton_args = args["containers"][0]["args"]
    assert f"--http-header-forward-pattern={contract.REQUEST_ID_HEADER}" in triton_args


def test_the_quality_gate_compares_the_rows_the_capture_step_writes() -> None:
    ir = cluster_ensemble()
    assert ir.ensemble is not None and ir.serving.version is None
    template = analysis.analysis_template(ir)
    assert template is not None
    metrics = {m["name"]: m for m in template["spec"]["metrics"]}
    job = metrics["quality-measure"]["provider"]["job"]["spec"]["template"]["spec"]
    command = job["containers"][0]["command"]
    flags = dict(zip(command[3::2], command[4::2], strict=False))
    # The rows' model_version is the capture step's version folder: the ensemble's.
    recorder = capture.capture_step_config(ir)
    assert flags["--version"] == str(recorder.version_policy.specific.versions[0]) == "3"
    assert flags["--captured"] == f"s3://capture-data/{ir.name}/captured/"
    assert flags["--prediction"] == "y_hat"
    shift = metrics["prediction-shift"]["provider"]["prometheus"]["query"]
    assert f'model="{ir.name}",environment="staging",version="3"' in shift


def test_an_uncaptured_ensemble_keeps_its_own_graph() -> None:
    ir, _ = model_ir(ROOT / "specs", "car-price-pipeline", "staging")
    assert ir.capture is None and not capture.has_capture_step(ir)
    whole = parsed(capture.ensemble_config(ir))
    assert ir.ensemble is not None
    assert [s.model_name for s in whole.ensemble_scheduling.step] == [
        s.name for s in ir.ensemble.steps
    ]
    assert "--capture-step" not in serving.assemble_command(ir)
