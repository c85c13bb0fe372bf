"""A compiled model as the serving tools take it: no spec, no IR, only what was compiled.

The compiler hands a `ServedModel` to the local tools (`kiln serve`, `kiln smoke`); in
the cluster the same facts reach the serving pod and the analysis Job as arguments
(`--artifact VERSION=URI`, `--sha256 VERSION=HEX`, `--signature VERSION=URI`,
`--execution-env VERSION=URI`, `--execution-env-sha256 VERSION=HEX`) and files
(`config.pbtxt`, `signature.json`, `trust.json`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from runtime.contract.signature import Signature
from runtime.contract.signing import Trust
from runtime.contract.triton_config import read_config, served_format

# The module-level function a python ensemble step's model.py defines, `compute(**inputs)
# -> {output: array}`: smoke runs it in process as the reference Triton's answers are
# compared with, and the compiler checks (by parsing) that it is there.
STEP_FUNCTION = "compute"


@dataclass(frozen=True)
class ArtifactSource:
    """One served version: where its model file is and what its digest must be."""

    version: int
    uri: str  # an fsspec URL, or an absolute local path
    sha256: str | None = None
    signature: str | None = None  # the model-signing bundle's fsspec URL or local path
    # A python model's conda-pack archive (fsspec URL or local path) and its sha256.
    execution_env: str | None = None
    execution_env_sha256: str | None = None


@dataclass(frozen=True)
class ServedStep:
    """One model of an ensemble: its Triton name, compiled config and artifact."""

    name: str
    config_text: str
    artifact: ArtifactSource

    @property
    def format(self) -> str:
        """The step's model format, read from its compiled config."""
        model_format, _ = served_format(read_config(self.config_text))
        return model_format

    @property
    def onnx(self) -> bool:
        """Served locally through the python-backend adapter (a python step is its own
        python-backend model)."""
        return self.format == "onnx"


@dataclass(frozen=True)
class InstalledConfig:
    """A step Kiln ships itself (the capture step): its Triton name and compiled config;
    its files come with Kiln, so it has no artifact."""

    name: str
    config_text: str


@dataclass(frozen=True)
class ServedModel:
    """One (model, environment) as compiled: its Triton config, signature and artifacts."""

    name: str
    environment: str
    signature: Signature
    artifacts: tuple[ArtifactSource, ...]
    config_text: str  # the compiled config.pbtxt
    config_path: Path
    root: Path  # the project root (the folder above specs/), for local working folders
    local: bool = True  # a `local`-kind environment (python backend, CPU)
    trust: Trust = field(default_factory=Trust)  # whose signatures the environment accepts
    # An ensemble's steps; `config_text` is then the ensemble's and `artifacts` is empty.
    steps: tuple[ServedStep, ...] = ()
    ensemble_version: int | None = None
    capture_step: InstalledConfig | None = None  # an ensemble's last step, capture on

    @property
    def versions(self) -> tuple[int, ...]:
        return tuple(a.version for a in self.artifacts)
