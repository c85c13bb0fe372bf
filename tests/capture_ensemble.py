"""The cluster's capture ensemble, made runnable on the local Triton (python backend only).

The ensemble and the capture step are exactly what the compiler renders for a cluster
(compiler/targets/capture.py); only the model step differs, because the local Triton has
no onnxruntime backend: there it is the python-backend adapter running the same ONNX
file, with capture off (the capture step does it). Used by the integration tests and by
`benchmarks/serve.py --capture`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from compiler.ir import ModelIR
from compiler.targets import capture, triton
from runtime.contract.served import ArtifactSource, ServedStep
from runtime.local.serve import ADAPTER_FILES
from runtime.serving.ensemble import InstalledStep, assemble_ensemble


def capture_ensemble(
    ir: ModelIR, artifact: ArtifactSource, repository: Path, libraries: Path
) -> str:
    """Write `<model>`, `<model>.model` and `<model>.capture` into `repository`; return
    the ensemble's name (the model's)."""
    assert ir.capture is not None
    version = capture.version(ir)
    plain = capture.model_step_config(dataclasses.replace(ir, capture=None))
    model_step = ServedStep(plain.name, triton.serialize(plain), artifact)
    recorder = triton.serialize(capture.capture_step_config(ir))
    capture_step = InstalledStep(capture.capture_step(ir), recorder, version, libraries)
    assemble_ensemble(
        ir.name,
        triton.serialize(capture.ensemble_config(ir)),
        version,
        [model_step, capture_step],
        repository,
        # The pod's init container runs this with no extra files: the cluster's Triton
        # runs the model step on onnxruntime; here the adapter stands in for it.
        extra_files=lambda step: ADAPTER_FILES if step is model_step else (),
    )
    return ir.name
