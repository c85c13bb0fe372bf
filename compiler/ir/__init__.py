"""The intermediate representation: one complete, frozen record per (model, environment).

Targets read only this. Every default is applied and every reference resolved,
so a target never looks at specs or at other models. The lowered blocks are plain
values in their own modules (serving.py: serving and rollout; training.py;
monitoring.py: monitoring, alerts and their routes; environment.py: the environment
and its storage; featureset.py: a FeatureSet's columns and the project's images).
tests/unit/compiler/test_ir.py proves that no field holds a spec object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from compiler.ir.batch import BatchJobIR
from compiler.ir.environment import EnvironmentIR, StorageIR
from compiler.ir.featureset import FeatureColumnsIR, ImagesIR
from compiler.ir.monitoring import AlertIR, MonitoringIR, RouteIR
from compiler.ir.serving import RolloutIR, ServingIR
from compiler.ir.training import TrainingIR
from runtime.contract.batch import BatchColumns
from runtime.contract.capture import CaptureConfig
from runtime.contract.signature import Tensor

TaskName = str


class Source(NamedTuple):
    """A spec file that contributed to an output, with its digest.

    A named tuple, not a dataclass: every file of a large tree hashes its sources
    when the manifest is written, and a tuple hashes in C.
    """

    file: str
    digest: str


@dataclass(frozen=True)
class ArtifactIR:
    version: int
    uri: str  # absolute URI, or a project-relative path for local files
    sha256: str | None
    local: bool
    metrics: tuple[tuple[str, float], ...]
    signature: str | None = None  # its model-signing bundle, located like `uri`
    format: str = "onnx"  # the version's model format (runtime/contract/formats.py)
    # A python model's conda-pack archive, located like `uri`, and its declared digest.
    execution_env: str | None = None
    execution_env_sha256: str | None = None


@dataclass(frozen=True)
class FormatIR:
    """What Triton runs the served version with: the format, the file it loads from a
    version folder, and the backend's parameters as config.pbtxt holds them."""

    name: str = "onnx"
    model_file: str = "model.onnx"
    parameters: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class EnsembleStepIR:
    """One model of an ensemble, under the name Triton serves it by (`<model>.<step>`)."""

    name: str
    format: FormatIR
    artifact: ArtifactIR
    max_batch_size: int
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    input_map: tuple[tuple[str, str], ...]  # step input -> ensemble tensor
    output_map: tuple[tuple[str, str], ...]  # step output -> ensemble tensor


@dataclass(frozen=True)
class EnsembleIR:
    version: int  # the version folder of the ensemble and of each step
    steps: tuple[EnsembleStepIR, ...]


@dataclass(frozen=True)
class InstanceGroupIR:
    kind: str  # gpu | cpu
    count: int
    gpus: tuple[int, ...]


@dataclass(frozen=True)
class ProjectIR:
    name: str
    git_repo: str
    git_revision: str
    git_path: str
    kubernetes_version: str
    images: ImagesIR
    source: Source
    # Istio injects its proxy as a native sidecar; else job pods turn injection off.
    istio_native_sidecars: bool = False
    # (ConfigMap, key) of the workflows' artifact repository; None: the controller's.
    artifact_repository: tuple[str, str] | None = None


@dataclass(frozen=True)
class FeatureSetIR:
    name: str
    version: int
    spec: FeatureColumnsIR
    source: Source


class ModelPlacement(NamedTuple):
    """Where one model's environment is deployed: all the Argo CD objects need of it."""

    name: str
    environment: str
    namespace: str
    is_local: bool
    source: Source


@dataclass(frozen=True)
class ModelIR:
    """Everything every target needs to render one model in one environment."""

    name: str
    owner: str | None
    task: TaskName
    target: str
    project: ProjectIR
    environment: EnvironmentIR
    namespace: str
    storage: StorageIR
    featureset: FeatureSetIR
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    served: tuple[ArtifactIR, ...]  # the versions this environment serves
    versions: tuple[ArtifactIR, ...]  # every declared version
    serving: ServingIR
    instance_groups: tuple[InstanceGroupIR, ...]
    rollout: RolloutIR
    training: TrainingIR | None
    monitoring: MonitoringIR | None
    alerts: tuple[AlertIR, ...]
    routes: tuple[RouteIR, ...]  # the routes the alerts use, resolved
    source: Source
    format: FormatIR = FormatIR()  # the served version's, else the newest version's
    batch: tuple[BatchJobIR, ...] = ()  # batch scoring jobs, each with a declared version
    batch_columns: BatchColumns | None = None  # what batch scoring keeps and writes
    capture: CaptureConfig | None = None  # serving.capture in force here (None: off)
    ensemble: EnsembleIR | None = None  # served instead of a version when declared

    @property
    def is_served(self) -> bool:
        """Whether a version serves in this environment; a model without one has its
        training and monitoring rendered, and no serving objects."""
        return bool(self.served)

    @property
    def is_local(self) -> bool:
        return self.environment.kind == "local"

    @property
    def sources(self) -> tuple[Source, ...]:
        return (self.source, self.featureset.source, self.project.source)

    @property
    def placement(self) -> ModelPlacement:
        return ModelPlacement(
            self.name, self.environment.name, self.namespace, self.is_local, self.source
        )
