"""One Model spec, resolved in every environment of the Project.

Depends only on the spec and the `ModelContext` (the Project and the FeatureSets),
so Model specs resolve in any order, each in whichever process renders it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from compiler.diagnostics import Diagnostic, Path_
from compiler.formats.config import lower_format
from compiler.formats.ensemble import check_step_artifacts, lower_ensemble
from compiler.formats.fil import TREE_FORMATS
from compiler.ir import ArtifactIR, InstanceGroupIR, ModelIR, Source
from compiler.ir.monitoring import DatasetIR
from compiler.load import Document
from compiler.lowering import (
    batch_columns,
    lower_alert,
    lower_batch,
    lower_environment,
    lower_monitoring,
    lower_rollout,
    lower_route,
    lower_serving,
    lower_storage,
    lower_training,
)
from compiler.parse import document_locator
from compiler.resolve.overlay import environment_spec
from compiler.resolve.project import ModelContext, ResolvedFeatureSet
from compiler.resolve.resolution import place
from compiler.rules import (
    batch,
    capture,
    format_signature,
    formats,
    locations,
    semantics,
    signature,
    trainer,
)
from compiler.rules import ensemble as ensemble_rules
from compiler.rules.execution_env import check_execution_envs
from compiler.rules.findings import Finding
from compiler.spec.documents import MODEL_NAME_MAX, ModelDoc
from compiler.spec.model import OVERRIDABLE, Alert, ModelSpec, Version
from compiler.spec.project import Environment, Storage
from runtime.contract.capture import CaptureConfig, environment_path
from runtime.contract.signature import Tensor
from runtime.contract.vocabulary import SERVING_SIGNALS

Signature = tuple[tuple[Tensor, ...], tuple[Tensor, ...]]  # inputs, outputs

# Findings that stop a spec from being resolved in any environment: an overlay that
# overrides what may not be overridden (KILN1308), and a name too long for the
# names derived from it (KILN1312). The environments would build on either.
_STOPPING = ("KILN1308", "KILN1312")


def resolve_model(
    document: Document, doc: ModelDoc, context: ModelContext
) -> tuple[list[ModelIR], list[Diagnostic]]:
    """The models of one Model spec, one per environment it resolves in, and every
    problem found, in the order found."""
    findings = _spec_findings(doc, context)
    diagnostics = place(findings, document.path, document_locator(document))
    featureset = context.featureset(doc.spec.features)
    if featureset is None or any(f.code in _STOPPING for f in findings):
        return [], diagnostics
    models = []
    for environment in context.spec.environments:
        spec, locate, problems = environment_spec(document, doc, environment.name)
        diagnostics.extend(replace(p, environments=(environment.name,)) for p in problems)
        if spec is None:
            continue
        model, found = _model_in(document, doc, spec, environment, featureset, context)
        diagnostics.extend(place(found, document.path, locate, environment.name))
        if model is not None:
            models.append(model)
    return models, diagnostics


# --- What does not depend on the environment --------------------------------------------


def _spec_findings(doc: ModelDoc, context: ModelContext) -> list[Finding]:
    spec = doc.spec
    return [
        *_name_findings(doc.metadata.name),
        *_featureset_reference(spec, context),
        *_duplicate_versions(spec),
        *signature.check_tensor_names(spec),
        *_overlay_keys(spec, [e.name for e in context.spec.environments]),
    ]


def _name_findings(name: str) -> list[Finding]:
    """The name's own rules, and a length that leaves room for every derived name."""
    findings = semantics.check_names(name)
    if len(name) > MODEL_NAME_MAX:
        message = (
            f"model name {name!r} is {len(name)} characters; the limit is "
            f"{MODEL_NAME_MAX} so that every derived name fits"
        )
        findings.append(Finding(("metadata", "name"), "KILN1312", message))
    return findings


def _featureset_reference(spec: ModelSpec, context: ModelContext) -> list[Finding]:
    """The FeatureSet must exist, unless it failed to parse (and was reported so)."""
    broken = context.broken
    ref = spec.features
    if ref in context.featuresets or ref in broken.featuresets or broken.unknown:
        return []
    known = ", ".join(sorted(context.featuresets)) or "none"
    message = f"FeatureSet {ref} is not defined"
    return [Finding(("spec", "features"), "KILN1304", message, f"known: {known}")]


def _duplicate_versions(spec: ModelSpec) -> list[Finding]:
    findings = []
    seen: set[int] = set()
    for i, version in enumerate(spec.versions):
        if version.version in seen:
            message = f"version {version.version} is declared twice"
            findings.append(Finding(("spec", "versions", i, "version"), "KILN1302", message))
        seen.add(version.version)
    return findings


def _overlay_keys(spec: ModelSpec, environments: list[str]) -> list[Finding]:
    """Each overlay names a declared environment and overrides only what may be."""
    findings = []
    for env_name, overlay in spec.environments.items():
        at: Path_ = ("spec", "environments", env_name)
        if env_name not in environments:
            message = f"environment `{env_name}` is not declared in the Project"
            hint = f"known: {', '.join(environments)}"
            findings.append(Finding(at, "KILN1306", message, hint, key=True))
            continue
        for key in overlay:
            if key not in OVERRIDABLE:
                message = f"`{key}` cannot be overridden per environment"
                hint = f"override only {', '.join(OVERRIDABLE)}"
                findings.append(Finding((*at, key), "KILN1308", message, hint, key=True))
    return findings


# --- One environment ---------------------------------------------------------------------


def _model_in(
    document: Document,
    doc: ModelDoc,
    spec: ModelSpec,
    environment: Environment,
    featureset: ResolvedFeatureSet,
    context: ModelContext,
) -> tuple[ModelIR | None, list[Finding]]:
    """The model with `spec`, its spec in `environment`, unless an error was found."""
    routes = {r.name: r for r in context.spec.alert_routes}
    findings = semantics.check_model(spec, featureset.spec, environment, frozenset(routes))
    findings.extend(trainer.check_trainer(spec))
    findings.extend(trainer.check_trainer_features(spec, featureset.spec))
    storage = environment.storage or context.spec.storage
    findings.extend(locations.check_locations(spec, environment, storage))
    findings.extend(locations.check_routes(spec, environment, routes))
    findings.extend(formats.check_versions(spec, environment))
    findings.extend(formats.check_torchscript_names(spec))  # of the version served here
    findings.extend(batch.check_batch(doc.metadata.name, spec, featureset.spec))
    findings.extend(batch.check_overlap(spec, storage.data))
    findings.extend(ensemble_rules.check_ensemble(spec))
    findings.extend(ensemble_rules.check_environment(spec, environment))
    ensemble = lower_ensemble(doc.metadata.name, spec, storage.models)
    if ensemble is not None:
        findings.extend(check_step_artifacts(spec, ensemble, context.root))
    versions = _artifacts(spec, storage)
    escaping = _local_artifacts(spec, versions, context.root)
    findings.extend(escaping)
    findings.extend(check_execution_envs(spec, versions, context.root, environment))
    served = tuple(a for a in versions if a.version == spec.serving.version)
    stopping = _serving_findings(spec, environment, versions, served)
    if stopping:
        return None, [*findings, *stopping]
    if escaping:
        return None, findings  # nothing is read from a location refused
    source = _signature_source(spec, served, versions)
    tensors, more = _signature(doc.metadata.name, spec, source, featureset, context.root)
    # The format rendered: the served version's, else the newest version's.
    formatted = source or max(versions, key=lambda a: a.version, default=None)
    findings.extend(more)
    alerts, skipped = _alerts_in(spec, served)
    findings.extend(skipped)
    declared = capture.declared_capture(spec, environment)
    findings.extend(capture.missing_analysis(spec, declared, environment.name))
    if declared is not None:
        findings.extend(capture.reserved_names(spec))
    name = doc.metadata.name
    findings.extend(capture.whole_captured_folder(spec, name, environment.name, storage.data))
    if tensors is None or any(not f.warning for f in findings):
        return None, findings
    captured, more = capture.capture_config(name, spec, environment, storage.data, tensors)
    findings.extend(more)
    if any(not f.warning for f in more):
        return None, findings
    model = ModelIR(
        name=doc.metadata.name,
        owner=doc.metadata.owner,
        task=spec.task,
        target=spec.target,
        project=context.project,
        environment=lower_environment(environment),
        namespace=environment.namespace or environment.name,
        storage=lower_storage(storage),
        featureset=featureset.ir,
        inputs=tensors[0],
        outputs=tensors[1],
        served=served,
        versions=versions,
        serving=lower_serving(spec.serving),
        instance_groups=_instance_groups(spec),
        rollout=lower_rollout(spec.rollout, spec.serving.replicas.min, spec.task),
        training=lower_training(
            spec.training, featureset.spec, context.project.images.runtime, spec.classes
        ),
        monitoring=lower_monitoring(spec.monitoring, _captured_dataset(captured)),
        capture=captured,
        alerts=tuple(lower_alert(a) for a in alerts),
        routes=tuple(lower_route(routes[n]) for n in sorted({a.route for a in alerts})),
        source=Source(document.path, document.digest),
        format=lower_format(spec, _version_of(spec, formatted)),
        batch=lower_batch(spec.batch, spec.serving.version),
        batch_columns=batch_columns(spec, featureset.spec),
        ensemble=ensemble,
    )
    return model, findings


def _version_of(spec: ModelSpec, artifact: ArtifactIR | None) -> Version | None:
    """The spec's version of an artifact."""
    if artifact is None:
        return None
    return next(v for v in spec.versions if v.version == artifact.version)


def _captured_dataset(captured: CaptureConfig | None) -> DatasetIR | None:
    """This environment's captured traffic as the monitor's analysis data (relative to the
    data store): its partition only, since every environment captures into one folder."""
    if captured is None:
        return None
    return DatasetIR(environment_path(captured.model, captured.environment), "parquet", None)


def artifact_location(uri: str, storage: Storage) -> str:
    """An artifact's URI in an environment: relative URIs sit under the model store."""
    return locations.place_under(uri, storage.models)


def local_path(location: str, root: Path) -> Path:
    path = Path(location.removeprefix("file://"))
    return path if path.is_absolute() else root / path


# Protobuf, and so ONNX, cannot hold a larger model in one file; Kiln reads no more.
ARTIFACT_MAX_BYTES = 2 * 1024**3


def _local_artifacts(
    spec: ModelSpec, versions: tuple[ArtifactIR, ...], root: Path
) -> list[Finding]:
    """Local artifacts resolve inside the project, links followed, and fit the size cap:
    a spec cannot have Kiln read (or `kiln serve` copy) a file from anywhere on disk."""
    found = []
    inside = root.resolve()
    for index, artifact in enumerate(versions):
        if not artifact.local:
            continue
        at: Path_ = ("spec", "versions", index, "artifact", "uri")
        real = local_path(artifact.uri, root).resolve()
        if not real.is_relative_to(inside):
            message = (
                f"artifact of version {artifact.version} ({artifact.uri}) resolves outside "
                "the project folder, links followed"
            )
            hint = "keep local models under the project (the environment's model store)"
            found.append(Finding(at, "KILN1711", message, hint))
        elif real.is_file() and real.stat().st_size > ARTIFACT_MAX_BYTES:
            message = (
                f"artifact of version {artifact.version} is {real.stat().st_size} bytes, "
                f"over the {ARTIFACT_MAX_BYTES} bytes an ONNX file can hold"
            )
            found.append(Finding(at, "KILN1712", message, "check the path"))
    return found


def _artifacts(spec: ModelSpec, storage: Storage) -> tuple[ArtifactIR, ...]:
    """Every version's artifact, located in the environment's storage."""
    return tuple(
        ArtifactIR(
            v.version,
            location := artifact_location(v.artifact.uri, storage),
            v.artifact.sha256,
            not signature.is_remote(location),
            tuple(sorted(v.metrics.items())),
            None
            if v.artifact.signature is None
            else artifact_location(v.artifact.signature, storage),
            v.format,
            *_execution_env(v, storage),
        )
        for v in spec.versions
    )


def _execution_env(version: Version, storage: Storage) -> tuple[str | None, str | None]:
    """A python version's archive, located in the environment's storage, and its digest."""
    python = version.python
    if python is None or python.execution_env is None:
        return None, None
    return artifact_location(python.execution_env, storage), python.execution_env_sha256


def _serving_findings(
    spec: ModelSpec,
    environment: Environment,
    versions: tuple[ArtifactIR, ...],
    served: tuple[ArtifactIR, ...],
) -> list[Finding]:
    """What stops the model in the environment for what it serves: a serving.version
    that names no declared version, or nothing at all to deploy to a cluster."""
    if spec.serving.version is not None and not served:
        return [_not_served(spec, versions)]
    nothing_else = (
        spec.training is None
        and spec.monitoring is None
        and not spec.batch
        and spec.ensemble is None
    )
    if not served and environment.kind != "local" and nothing_else:
        return [_nothing_to_deploy()]
    return []


def _not_served(spec: ModelSpec, versions: tuple[ArtifactIR, ...]) -> Finding:
    declared = ", ".join(str(a.version) for a in versions) or "none declared yet"
    return Finding(
        ("spec", "serving", "version"),
        "KILN1307",
        f"serving.version {spec.serving.version} is not among the versions ({declared})",
        "declare the version under spec.versions, or leave serving.version out until a "
        "version is trained: the model then compiles without serving",
    )


def _nothing_to_deploy() -> Finding:
    """A cluster environment's folder would be empty, and Argo CD refuses an Application
    whose path does not exist. The message names no environment: the diagnostic lists
    them, one line for the problem in all."""
    return Finding(
        ("spec",),
        "KILN1642",
        "the model has nothing to deploy in a cluster environment: no version is served, "
        "and there is no training, no monitoring and no batch job",
        "add a training, monitoring or batch block, or serve a version",
        key=True,
    )


def _signature_source(
    spec: ModelSpec, served: tuple[ArtifactIR, ...], versions: tuple[ArtifactIR, ...]
) -> ArtifactIR | None:
    """The artifact the signature is read from: the served one. With none served, none
    when the spec declares the signature (nothing unserved is read), else the newest
    declared version, else none (the spec must then declare it)."""
    if served:
        return served[0]
    if spec.signature is not None:
        return None
    return max(versions, key=lambda a: a.version, default=None)


def _alerts_in(
    spec: ModelSpec, served: tuple[ArtifactIR, ...]
) -> tuple[list[Alert], list[Finding]]:
    """The alerts that apply in the environment. Latency and error rate are measured on
    the serving pods: with no version served there are none, so those alerts are left
    out with a warning (they take effect when a version serves) rather than refused,
    and a model can be declared with them before its first version."""
    if served:
        return list(spec.alerts), []
    kept, skipped = [], []
    for i, alert in enumerate(spec.alerts):
        if alert.when.signal not in SERVING_SIGNALS:
            kept.append(alert)
            continue
        message = (
            f"alert {alert.name} watches {alert.when.signal}, a signal of the serving pods, "
            "and no version is served yet: it is left out until one is"
        )
        hint = "it applies once serving.version names a trained version"
        skipped.append(
            Finding(
                ("spec", "alerts", i, "when", "signal"), "KILN1641", message, hint, warning=True
            )
        )
    return kept, skipped


def _instance_groups(spec: ModelSpec) -> tuple[InstanceGroupIR, ...]:
    gpus = spec.serving.resources.gpus
    groups = spec.serving.instance_groups
    if groups is None:
        kind = "gpu" if gpus else "cpu"
        return (InstanceGroupIR(kind, 1, tuple(range(gpus))),)
    return tuple(
        InstanceGroupIR(
            g.kind,
            g.count,
            tuple(g.gpus) if g.gpus else (tuple(range(gpus)) if g.kind == "gpu" else ()),
        )
        for g in groups
    )


# --- The signature -----------------------------------------------------------------------


def _signature(
    name: str,
    spec: ModelSpec,
    artifact: ArtifactIR | None,
    featureset: ResolvedFeatureSet,
    root: Path,
) -> tuple[Signature | None, list[Finding]]:
    """The model's tensors: read from a local artifact (and compared with the declared
    ones), or declared for a remote one or for a model with no version yet; then checked
    against the batching and the FeatureSet."""
    # A built-in trainer with native output will write a tree model: FIL's tensors.
    tree = trainer.native_output(spec)
    if artifact is None:
        tensors, findings = _declared_signature(spec)
        if tensors is not None and tree:
            findings.extend(trainer.check_native_signature(spec, featureset.spec))
    else:
        index = next(i for i, v in enumerate(spec.versions) if v.version == artifact.version)
        tree = spec.versions[index].format in TREE_FORMATS
        if artifact.local:
            tensors, findings = _local_signature(name, spec, artifact, index, root, featureset)
        else:
            tensors, findings = _remote_signature(spec, artifact, index, featureset)
    if tensors is None:
        return None, findings
    findings.extend(signature.check_batching(spec, *tensors))
    if not tree:  # FIL takes all features in one tensor, checked against the file's names
        findings.extend(signature.check_features(spec, featureset.spec, tensors[0]))
    return tensors, findings


def _remote_signature(
    spec: ModelSpec, artifact: ArtifactIR, index: int, featureset: ResolvedFeatureSet
) -> tuple[Signature | None, list[Finding]]:
    """A remote model cannot be read at compile time: its signature must be declared."""
    tensors = signature.declared_signature(spec)
    if tensors is not None and spec.versions[index].format in TREE_FORMATS:
        return format_signature.tree_signature(spec, index, None, featureset.spec)
    if tensors is not None:
        return tensors, []
    finding = Finding(
        ("spec", "versions", index, "artifact"),
        "KILN1708",
        f"version {artifact.version} is remote ({artifact.uri}), so the model "
        "cannot be read at compile time and spec.signature is required",
        "declare spec.signature (inputs and outputs)",
        key=True,
    )
    return None, [finding]


def _declared_signature(spec: ModelSpec) -> tuple[Signature | None, list[Finding]]:
    """No version is served: the declared signature. Without one and with no version
    there is no model file to read, and the training and evaluation steps still need
    the inputs and outputs."""
    tensors = signature.declared_signature(spec)
    if tensors is not None:
        return tensors, []
    finding = Finding(
        ("spec",),
        "KILN1640",
        "the model has no version yet, so its inputs and outputs cannot be read from an "
        "artifact and spec.signature is required",
        "declare spec.signature with the inputs and outputs; `kiln new` writes one from the data",
        key=True,
    )
    return None, [finding]


def _local_signature(
    name: str,
    spec: ModelSpec,
    artifact: ArtifactIR,
    index: int,
    root: Path,
    featureset: ResolvedFeatureSet,
) -> tuple[Signature | None, list[Finding]]:
    """Read the local model file; check its sha256 and the declared signature."""
    at: Path_ = ("spec", "versions", index, "artifact", "uri")
    path = local_path(artifact.uri, root)
    folder = spec.versions[index].format == "savedmodel"
    if not (path.is_dir() if folder else path.is_file()):
        return None, [_artifact_missing(name, spec.versions[index], artifact, path, at)]
    if spec.versions[index].format != "onnx":
        return format_signature.local_signature(spec, index, path, featureset.spec)
    try:
        model = signature.load_onnx(path)
    except (signature.UnreadableModel, OSError) as exc:
        return None, [Finding(at, "KILN1702", f"cannot read {artifact.uri}: {exc}")]
    findings: list[Finding] = []
    if artifact.sha256 is not None and model.sha256 != artifact.sha256:
        findings.append(
            Finding(
                ("spec", "versions", index, "artifact", "sha256"),
                "KILN1703",
                f"{artifact.uri} has sha256 {model.sha256}, declared {artifact.sha256}",
            )
        )
    tensors, more = signature.check_against_model(spec, model, at)
    return tensors, [*findings, *more]


def _artifact_missing(
    name: str, version: Version, artifact: ArtifactIR, path: Path, at: Path_
) -> Finding:
    """KILN1701. A SavedModel is a folder: a uri naming a file in it is found but wrong,
    and training a first version would not help."""
    if version.format == "savedmodel" and path.is_file():
        folder = version.artifact.uri.rstrip("/").rsplit("/", 1)[0]
        message = (
            f"version {artifact.version} is a savedmodel, which is a folder; "
            f"{artifact.uri} is a file"
        )
        hint = f"point artifact.uri at the folder holding saved_model.pb: {folder}/"
        return Finding(at, "KILN1701", message, hint)
    message = f"artifact of version {artifact.version} not found at {artifact.uri}"
    hint = (
        f"fix the path; for a first version, `kiln run {name} --local` trains and "
        f"publishes one, and `kiln promote {name}` declares it here"
    )
    return Finding(at, "KILN1701", message, hint)
