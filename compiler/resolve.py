"""Resolve: typed specs -> one complete IR per (model, environment).

Applies environment overlays (deep merge, lists replace), resolves references
between specs, reads local model signatures, and runs the semantic checks.
Every problem becomes a diagnostic placed at the line that caused it, including
lines inside an environment overlay.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from compiler.diagnostics import Diagnostic, Location, Locator, Path_, Severity
from compiler.ir import (
    ArtifactIR,
    FeatureSetIR,
    InstanceGroupIR,
    ModelIR,
    ProjectIR,
    Source,
)
from compiler.load import Document, display_path, load_tree
from compiler.parse import document_locator, parse_document, translate
from compiler.rules import semantics, signature
from compiler.rules.findings import Finding
from compiler.spec.documents import MODEL_NAME_MAX, FeatureSetDoc, ModelDoc, ProjectDoc
from compiler.spec.model import OVERRIDABLE, ModelSpec
from compiler.spec.project import Environment, ProjectSpec, Storage
from compiler.targets import gitops
from runtime.contract.signature import Tensor


@dataclass
class Resolution:
    """What resolving a spec tree produced."""

    root: Path
    project: ProjectIR | None = None
    models: list[ModelIR] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    documents: dict[str, Document] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)

    def find(self, name: str, environment: str) -> ModelIR:
        """The model `name` in `environment`; UnknownModel says what exists instead."""
        for model in self.models:
            if model.name == name and model.environment.name == environment:
                return model
        errors = [d for d in self.diagnostics if d.is_error]
        if errors:
            first = errors[0]
            raise UnknownModel(
                f"no usable model {name!r} in environment {environment!r}: the specs have "
                f"{len(errors)} error(s), e.g. {first.file}:{first.line}: {first.message}; "
                "run `kiln validate`"
            )
        if all(m.name != name for m in self.models):
            known = sorted({f"{m.name} ({m.environment.name})" for m in self.models})
            raise UnknownModel(
                f"no model {name!r} in environment {environment!r}; "
                f"known: {', '.join(known) or 'none'}"
            )
        environments = sorted({m.environment.name for m in self.models if m.name == name})
        raise UnknownModel(
            f"model {name!r} has no environment {environment!r}; known: {', '.join(environments)}"
        )


class UnknownModel(LookupError):
    """No model of that name in that environment; the message lists what there is."""


@dataclass
class SpecOutcome:
    """What parsing and resolving one Model spec gave."""

    name: str | None  # None when the spec did not parse
    problems: list[Diagnostic]  # from parsing: reported even when the name is taken
    diagnostics: list[Diagnostic]  # from resolving
    models: list[ModelIR]  # one per environment that resolved


def _is_model_spec(document: Document) -> bool:
    data = document.data
    return isinstance(data, dict) and data.get("kind") == "Model"


def _place(findings: list[Finding], file: str, locate: Locator) -> list[Diagnostic]:
    placed = []
    for finding in findings:
        line, col = locate(finding.path, finding.key)
        severity = Severity.WARNING if finding.warning else Severity.ERROR
        placed.append(
            Diagnostic(file, line, col, finding.code, finding.message, severity, finding.hint)
        )
    return placed


def deep_merge(base: Any, overlay: Any, path: Path_ = ()) -> tuple[Any, set[Path_]]:
    """Merge `overlay` into `base`: mappings merge, everything else replaces.

    Also returns the paths whose value now comes from the overlay, so that a
    problem found in the merged spec can be shown on the overlay's line.
    """
    if not (isinstance(base, Mapping) and isinstance(overlay, Mapping)):
        return overlay, {path}
    merged = dict(base)
    replaced: set[Path_] = set()
    for key, value in overlay.items():
        if key in base:
            merged[key], inner = deep_merge(base[key], value, (*path, key))
            replaced |= inner
        else:
            merged[key] = value
            replaced.add((*path, key))
    return merged, replaced


def overlay_locator(document: Document, environment: str, replaced: set[Path_]) -> Locator:
    overlay_root: Path_ = ("spec", "environments", environment)

    def locate(path: Path_, key: bool) -> Location:
        for cut in range(len(path), 1, -1):
            if path[:cut] in replaced:
                return document.locate((*overlay_root, *path[1:]), key=key)
        # A block the overlay changed in part (rollout, when it sets rollout.steps)
        # is, in this environment, what the overlay made of it.
        if len(path) > 1 and any(p[: len(path)] == path for p in replaced):
            return document.locate((*overlay_root, *path[1:]), key=key)
        return document.locate(path, key=key)

    return locate


def _storage(project: ProjectSpec, environment: Environment) -> Storage:
    return environment.storage or project.storage


def artifact_location(uri: str, storage: Storage) -> str:
    """An artifact's URI in an environment: relative URIs sit under the model store."""
    if "://" in uri:
        return uri
    return f"{storage.models.rstrip('/')}/{uri}"


def local_path(location: str, root: Path) -> Path:
    path = Path(location.removeprefix("file://"))
    return path if path.is_absolute() else root / path


class Resolver:
    """Resolves a spec tree in two parts. `run` loads every spec and resolves all but
    the Model specs, which it leaves in `pending`: each resolves on its own
    (`model_spec`), so that they can be resolved where they are rendered, in
    several processes; `accept` then keeps the first spec of each model name."""

    def __init__(self, specs_dir: Path) -> None:
        self.result = Resolution(root=specs_dir.resolve().parent)
        self.pending: list[Document] = []
        self.featuresets: dict[str, tuple[Document, FeatureSetDoc]] = {}
        self._sink = self.result.diagnostics
        # Specs that failed to load or parse have been reported already; what
        # refers to them is not reported again as missing.
        self.unknown_broken = False  # a file whose kind is unknown failed
        self.broken_project = False
        self.broken_featuresets: set[str] = set()

    def _note_broken(self, data: dict[str, Any]) -> None:
        kind = data.get("kind")
        if kind == "Project":
            self.broken_project = True
        elif kind == "FeatureSet":
            metadata, spec = data.get("metadata"), data.get("spec")
            name = metadata.get("name") if isinstance(metadata, dict) else None
            version = spec.get("version") if isinstance(spec, dict) else None
            if isinstance(name, str) and isinstance(version, int):
                self.broken_featuresets.add(f"{name}@{version}")
            else:
                self.unknown_broken = True
        elif kind != "Model":
            self.unknown_broken = True

    def emit(self, diagnostics: list[Diagnostic]) -> None:
        self._sink.extend(diagnostics)

    def run(
        self, specs_dir: Path, loaded: tuple[list[Document], list[Diagnostic]] | None = None
    ) -> Resolution:
        """Load every spec (unless given them `loaded`, in spec order, as the
        incremental build does); resolve the Project and the FeatureSets. Model specs
        are left in `pending`. (A Model spec's failure to parse marks nothing broken,
        so nothing here depends on them.)"""
        documents, problems = load_tree(specs_dir) if loaded is None else loaded
        self.emit(problems)
        self.unknown_broken = any(p.is_error for p in problems)
        projects: list[tuple[Document, ProjectDoc]] = []
        for document in documents:
            self.result.documents[document.path] = document
            if _is_model_spec(document):
                self.pending.append(document)
                continue
            parsed, problems = parse_document(document)
            self.emit(problems)
            if parsed is None:
                self._note_broken(document.data)
            if isinstance(parsed, ProjectDoc):
                projects.append((document, parsed))
            elif isinstance(parsed, FeatureSetDoc):
                ref = f"{parsed.metadata.name}@{parsed.spec.version}"
                self._unique(self.featuresets, ref, document, parsed, "FeatureSet")
        for document, featureset in self.featuresets.values():
            self.emit(self._featureset_checks(document, featureset))
        self.result.project = self._project(projects, specs_dir)
        return self.result

    def model_spec(self, document: Document) -> SpecOutcome:
        """Parse one Model spec and, when the Project resolved, resolve it in every
        environment. Leaves the resolver as it found it (its diagnostics go to the
        outcome), so specs can be resolved in any order, in forked processes."""
        parsed, problems = parse_document(document)
        if not isinstance(parsed, ModelDoc):
            return SpecOutcome(None, problems, [], [])
        outcome = SpecOutcome(parsed.metadata.name, problems, [], [])
        if self.result.project is not None:
            self._sink = outcome.diagnostics
            try:
                outcome.models = self._model(document, parsed, self.result.project)
            finally:
                self._sink = self.result.diagnostics
        return outcome

    def accept(self, specs: list[tuple[Document, str | None, list[Diagnostic]]]) -> list[bool]:
        """Report what parsing the Model specs found, (document, name, problems) in
        document order, and which of them to keep: the first of each name."""
        first: dict[str, Document] = {}
        kept = []
        for document, name, problems in specs:
            self.emit(problems)
            if name is not None and name in first:
                line, col = document.locate(("metadata", "name"))
                message = f"Model {name} is also defined in {first[name].path}"
                self.emit([Diagnostic(document.path, line, col, "KILN1301", message)])
            elif name is not None:
                first[name] = document
            kept.append(name is not None and first[name] is document)
        return kept

    def _unique(
        self, table: dict[str, Any], key: str, document: Document, parsed: Any, kind: str
    ) -> None:
        if key in table:
            line, col = document.locate(("metadata", "name"))
            self.emit(
                [
                    Diagnostic(
                        document.path,
                        line,
                        col,
                        "KILN1301",
                        f"{kind} {key} is also defined in {table[key][0].path}",
                    )
                ]
            )
            return
        table[key] = (document, parsed)

    def _featureset_checks(self, document: Document, doc: FeatureSetDoc) -> list[Diagnostic]:
        findings: list[Finding] = []
        seen: set[str] = set()
        reserved = {doc.spec.entity, doc.spec.timestamp}
        for i, feature in enumerate(doc.spec.features):
            at = ("spec", "features", i, "name")
            if feature.name in seen:
                findings.append(
                    Finding(at, "KILN1302", f"feature `{feature.name}` is declared twice")
                )
            elif feature.name in reserved:
                findings.append(
                    Finding(at, "KILN1310", f"`{feature.name}` is the entity or timestamp column")
                )
            seen.add(feature.name)
        return _place(findings, document.path, document_locator(document))

    def _project(
        self, projects: list[tuple[Document, ProjectDoc]], specs_dir: Path
    ) -> ProjectIR | None:
        if not projects:
            reported = self.broken_project or self.unknown_broken
            if not reported and not any(d.code == "KILN1303" for d in self.result.diagnostics):
                self.emit(
                    [
                        Diagnostic(
                            display_path(specs_dir / "project.yaml", self.result.root),
                            1,
                            1,
                            "KILN1303",
                            "no valid Project spec found",
                            hint="add specs/project.yaml with kind: Project",
                        )
                    ]
                )
            return None
        first_document, first = projects[0]
        for document, _ in projects[1:]:
            line, col = document.locate(("kind",))
            self.emit(
                [
                    Diagnostic(
                        document.path,
                        line,
                        col,
                        "KILN1303",
                        f"a second Project; the first is in {first_document.path}",
                        hint="keep exactly one Project",
                    )
                ]
            )
        spec = first.spec
        findings: list[Finding] = semantics.check_project_images(spec)
        for field_name, names in (
            ("environments", [e.name for e in spec.environments]),
            ("alert_routes", [r.name for r in spec.alert_routes]),
        ):
            seen: set[str] = set()
            for i, name in enumerate(names):
                if field_name == "environments" and name == gitops.FOLDER:
                    findings.append(
                        Finding(
                            ("spec", field_name, i, "name"),
                            "KILN1314",
                            f"`{name}` is reserved: generated/{name}/ holds the Argo CD objects",
                        )
                    )
                if name in seen:
                    findings.append(
                        Finding(
                            ("spec", field_name, i, "name"),
                            "KILN1302",
                            f"`{name}` is declared twice in {field_name}",
                        )
                    )
                seen.add(name)
        self.emit(_place(findings, first_document.path, document_locator(first_document)))
        self.project_spec = spec
        return ProjectIR(
            name=first.metadata.name,
            git_repo=spec.git.repo,
            git_revision=spec.git.revision,
            git_path=spec.git.path,
            kubernetes_version=spec.kubernetes_version,
            images=spec.images,
            source=Source(first_document.path, first_document.digest),
        )

    def _model(self, document: Document, doc: ModelDoc, project: ProjectIR) -> list[ModelIR]:
        featuresets = self.featuresets
        spec = doc.spec
        locate = document_locator(document)
        name = doc.metadata.name
        findings: list[Finding] = semantics.check_names(name)
        if len(name) > MODEL_NAME_MAX:
            findings.append(
                Finding(
                    ("metadata", "name"),
                    "KILN1312",
                    f"model name {name!r} is {len(name)} characters; the limit is "
                    f"{MODEL_NAME_MAX} so that every derived name fits",
                )
            )
        fs_entry = featuresets.get(spec.features)
        reported = spec.features in self.broken_featuresets or self.unknown_broken
        if fs_entry is None and not reported:
            known = ", ".join(sorted(featuresets)) or "none"
            findings.append(
                Finding(
                    ("spec", "features"),
                    "KILN1304",
                    f"FeatureSet {spec.features} is not defined",
                    f"known: {known}",
                )
            )
        seen_versions: set[int] = set()
        for i, version in enumerate(spec.versions):
            if version.version in seen_versions:
                findings.append(
                    Finding(
                        ("spec", "versions", i, "version"),
                        "KILN1302",
                        f"version {version.version} is declared twice",
                    )
                )
            seen_versions.add(version.version)
        environments = {e.name: e for e in self.project_spec.environments}
        for env_name, overlay in spec.environments.items():
            if env_name not in environments:
                findings.append(
                    Finding(
                        ("spec", "environments", env_name),
                        "KILN1306",
                        f"environment `{env_name}` is not declared in the Project",
                        f"known: {', '.join(environments)}",
                        key=True,
                    )
                )
                continue
            for key in overlay:
                if key not in OVERRIDABLE:
                    findings.append(
                        Finding(
                            ("spec", "environments", env_name, key),
                            "KILN1308",
                            f"`{key}` cannot be overridden per environment",
                            f"override only {', '.join(OVERRIDABLE)}",
                            key=True,
                        )
                    )
        self.emit(_place(findings, document.path, locate))
        if fs_entry is None or any(f.code in ("KILN1308", "KILN1312") for f in findings):
            return []
        fs_document, featureset = fs_entry
        featureset_ir = FeatureSetIR(
            featureset.metadata.name,
            featureset.spec.version,
            featureset.spec,
            Source(fs_document.path, fs_document.digest),
        )
        models = []
        for environment in self.project_spec.environments:
            env_spec, env_locate = self._environment_spec(document, doc, environment.name)
            if env_spec is None:
                continue
            model_ir = self._model_in(
                document, doc, env_spec, env_locate, environment, project, featureset_ir
            )
            if model_ir is not None:
                models.append(model_ir)
        return models

    def _environment_spec(
        self, document: Document, doc: ModelDoc, environment: str
    ) -> tuple[ModelSpec | None, Locator]:
        overlay = doc.spec.environments.get(environment)
        if not overlay:
            return doc.spec, document_locator(document)
        base = {k: v for k, v in document.data["spec"].items() if k != "environments"}
        merged_spec, replaced = deep_merge(base, overlay)
        locate = overlay_locator(document, environment, {("spec", *p) for p in replaced})
        merged = {**document.data, "spec": merged_spec}
        try:
            return ModelDoc.model_validate(merged).spec, locate
        except ValidationError as exc:
            self.emit(translate(exc, merged, ModelDoc, document.path, locate))
            return None, locate

    def _model_in(
        self,
        document: Document,
        doc: ModelDoc,
        spec: ModelSpec,
        locate: Locator,
        environment: Environment,
        project: ProjectIR,
        featureset: FeatureSetIR,
    ) -> ModelIR | None:
        routes = {r.name: r for r in self.project_spec.alert_routes}
        findings = semantics.check_model(spec, featureset.spec, environment, frozenset(routes))
        storage = _storage(self.project_spec, environment)
        versions = tuple(
            ArtifactIR(
                v.version,
                location := artifact_location(v.artifact.uri, storage),
                v.artifact.sha256,
                not signature.is_remote(location),
                tuple(sorted(v.metrics.items())),
            )
            for v in spec.versions
        )
        served = tuple(a for a in versions if a.version == spec.serving.version)
        if not served:
            findings.append(
                Finding(
                    ("spec", "serving", "version"),
                    "KILN1307",
                    f"serving.version {spec.serving.version} is not among the versions "
                    f"({', '.join(str(a.version) for a in versions)})",
                )
            )
            self.emit(_place(findings, document.path, locate))
            return None
        tensors, more = self._signature(spec, served[0], featureset)
        findings.extend(more)
        self.emit(_place(findings, document.path, locate))
        if tensors is None or any(not f.warning for f in findings):
            return None
        return ModelIR(
            name=doc.metadata.name,
            owner=doc.metadata.owner,
            task=spec.task,
            target=spec.target,
            project=project,
            environment=environment,
            namespace=environment.namespace or environment.name,
            storage=storage,
            featureset=featureset,
            inputs=tensors[0],
            outputs=tensors[1],
            served=served,
            versions=versions,
            serving=spec.serving,
            instance_groups=_instance_groups(spec),
            rollout=spec.rollout,
            training=spec.training,
            monitoring=spec.monitoring,
            alerts=tuple(spec.alerts),
            routes=tuple(routes[n] for n in sorted({a.route for a in spec.alerts})),
            source=Source(document.path, document.digest),
        )

    def _signature(
        self, spec: ModelSpec, artifact: ArtifactIR, featureset: FeatureSetIR
    ) -> tuple[tuple[tuple[Tensor, ...], tuple[Tensor, ...]] | None, list[Finding]]:
        index = next(i for i, v in enumerate(spec.versions) if v.version == artifact.version)
        at: Path_ = ("spec", "versions", index, "artifact", "uri")
        findings: list[Finding] = []
        tensors = signature.declared_signature(spec)
        if not artifact.local:
            if tensors is None:
                return None, [
                    Finding(
                        ("spec", "versions", index, "artifact"),
                        "KILN1708",
                        f"version {artifact.version} is remote ({artifact.uri}), so the model "
                        "cannot be read at compile time and spec.signature is required",
                        "declare spec.signature (inputs and outputs)",
                        key=True,
                    )
                ]
        else:
            path = local_path(artifact.uri, self.result.root)
            if not path.is_file():
                return None, [
                    Finding(
                        at,
                        "KILN1701",
                        f"artifact of version {artifact.version} not found at {artifact.uri}",
                        "train the model (make demo) or fix the path",
                    )
                ]
            try:
                model = signature.load_onnx(path)
            except (signature.UnreadableModel, OSError) as exc:
                return None, [Finding(at, "KILN1702", f"cannot read {artifact.uri}: {exc}")]
            if artifact.sha256 is not None and model.sha256 != artifact.sha256:
                findings.append(
                    Finding(
                        ("spec", "versions", index, "artifact", "sha256"),
                        "KILN1703",
                        f"{artifact.uri} has sha256 {model.sha256}, declared {artifact.sha256}",
                    )
                )
            tensors, more = signature.check_against_model(spec, model)
            findings.extend(more)
        if tensors is None:
            return None, findings
        findings.extend(signature.check_batching(spec, *tensors))
        findings.extend(signature.check_features(spec, featureset.spec, tensors[0]))
        return tensors, findings


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


def resolve(specs_dir: Path) -> Resolution:
    """Load, parse and resolve every spec under `specs_dir`, in this process."""
    resolver = Resolver(specs_dir)
    resolution = resolver.run(specs_dir)
    outcomes = [resolver.model_spec(document) for document in resolver.pending]
    kept = resolver.accept(
        [(d, o.name, o.problems) for d, o in zip(resolver.pending, outcomes, strict=True)]
    )
    for outcome, keep in zip(outcomes, kept, strict=True):
        if keep:
            resolution.diagnostics.extend(outcome.diagnostics)
            resolution.models.extend(outcome.models)
    resolution.models.sort(key=lambda m: (m.name, m.environment.name))
    return resolution
