"""The cluster's capture ensemble, made runnable on the local Triton (python backend only).

The ensemble and the capture step are exactly what the compiler renders for a cluster
(compiler/targets/capture.py); only the model step differs, because the local Triton has
no onnxruntime backend: there it is the python-backend adapter running the same ONNX
file, with capture off (the capture step does it). Used by the integration tests and by
`benchmarks/serve.py --capture`.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from compiler.ir import ModelIR
from compiler.targets import capture, triton
from runtime.contract.served import ArtifactSource
from runtime.local.serve import ADAPTER_FILES
from runtime.serving.assemble import assemble
from runtime.serving.capture_step import install, install_ensemble


def capture_ensemble(
    ir: ModelIR, artifact: ArtifactSource, repository: Path, libraries: Path
) -> str:
    """Write `<model>`, `<model>.model` and `<model>.capture` into `repository`; return
    the ensemble's name (the model's)."""
    assert ir.capture is not None
    version = capture.version(ir)
    plain = capture.model_step_config(dataclasses.replace(ir, capture=None))
    assemble(plain.name, [artifact], triton.serialize(plain), repository, extra_files=ADAPTER_FILES)
    with tempfile.TemporaryDirectory(prefix="kiln-capture-configs-") as folder:
        step_config = Path(folder) / "capture.pbtxt"
        step_config.write_text(triton.serialize(capture.capture_step_config(ir)))
        install(repository / capture.capture_step(ir) / str(version), libraries, step_config)
        ensemble_config = Path(folder) / "ensemble.pbtxt"
        ensemble_config.write_text(triton.serialize(capture.ensemble_config(ir)))
        install_ensemble(repository / ir.name / str(version), ensemble_config)
    return ir.name
