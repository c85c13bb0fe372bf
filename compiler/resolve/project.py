"""The Project and the FeatureSets: parsed, checked, and gathered into what every
Model spec is resolved against (`ModelContext`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from compiler.diagnostics import Diagnostic
from compiler.ir import FeatureSetIR, ProjectIR, Source
from compiler.load import Document, display_path
from compiler.lowering import lower_featureset, lower_images
from compiler.parse import document_locator, parse_document
from compiler.resolve.resolution import place
from compiler.rules import cluster, gpus, locations, network, semantics
from compiler.rules.findings import Finding
from compiler.spec.documents import FeatureSetDoc, ProjectDoc
from compiler.spec.featureset import FeatureSetSpec
from compiler.spec.project import ProjectSpec
from compiler.targets import gitops

FeatureSets = dict[str, tuple[Document, FeatureSetDoc]]  # by name@version


@dataclass
class Broken:
    """The specs that failed to load or parse. They have been reported already, so
    what refers to them is not reported again as missing."""

    project: bool = False
    featuresets: set[str] = field(default_factory=set)  # name@version
    unknown: bool = False  # a spec failed whose kind (or FeatureSet) cannot be told

    def note(self, data: dict[str, Any]) -> None:
        """Note a spec that did not parse, as what its data says it is."""
        kind = data.get("kind")
        if kind == "Project":
            self.project = True
        elif kind == "FeatureSet":
            ref = _featureset_ref(data)
            if ref is None:
                self.unknown = True
            else:
                self.featuresets.add(ref)
        elif kind != "Model":
            self.unknown = True


def _featureset_ref(data: dict[str, Any]) -> str | None:
    """The name@version a FeatureSet's data names, if it names one."""
    metadata, spec = data.get("metadata"), data.get("spec")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    version = spec.get("version") if isinstance(spec, dict) else None
    if isinstance(name, str) and isinstance(version, int):
        return f"{name}@{version}"
    return None


class ResolvedFeatureSet(NamedTuple):
    """A FeatureSet a Model spec refers to: its spec for the spec rules, which read
    specs, and its IR for the model."""

    spec: FeatureSetSpec
    ir: FeatureSetIR


@dataclass(frozen=True)
class ModelContext:
    """What every Model spec is resolved against: the Project, the FeatureSets, and
    which specs failed. Built once in the parent; forked workers inherit it."""

    root: Path  # the project root: local artifact paths are relative to it
    project: ProjectIR
    spec: ProjectSpec
    featuresets: FeatureSets
    broken: Broken

    def featureset(self, ref: str) -> ResolvedFeatureSet | None:
        """The FeatureSet `ref` (name@version), if it resolved."""
        entry = self.featuresets.get(ref)
        if entry is None:
            return None
        document, featureset = entry
        ir = FeatureSetIR(
            featureset.metadata.name,
            featureset.spec.version,
            lower_featureset(featureset.spec),
            Source(document.path, document.digest),
        )
        return ResolvedFeatureSet(featureset.spec, ir)


def resolve_project(
    documents: list[Document], load_failed: bool, specs_dir: Path, root: Path
) -> tuple[ModelContext | None, list[Diagnostic]]:
    """Parse and check the Project and the FeatureSets among `documents` (no Model
    spec is among them). Returns what the Model specs are resolved against, None
    without a Project, and every problem found, in spec order."""
    broken = Broken(unknown=load_failed)
    projects, featuresets, diagnostics = _parse(documents, broken)
    for document, featureset in featuresets.values():
        diagnostics.extend(_featureset_problems(document, featureset))
    if not projects:
        if not (broken.project or broken.unknown):
            diagnostics.append(_no_project(specs_dir, root))
        return None, diagnostics
    document, project = projects[0]
    diagnostics.extend(_more_projects(projects))
    locate = document_locator(document)
    diagnostics.extend(place(_project_findings(project.spec), document.path, locate))
    for fs_document, featureset in featuresets.values():
        found = locations.check_featureset_source(featureset.spec.source.uri, project.spec)
        diagnostics.extend(place(found, fs_document.path, document_locator(fs_document)))
    context = ModelContext(root, _project_ir(document, project), project.spec, featuresets, broken)
    return context, diagnostics


def _parse(
    documents: list[Document], broken: Broken
) -> tuple[list[tuple[Document, ProjectDoc]], FeatureSets, list[Diagnostic]]:
    """The Projects and the FeatureSets (the first of each name@version), with what
    parsing them found; a spec that does not parse is noted in `broken`."""
    projects: list[tuple[Document, ProjectDoc]] = []
    featuresets: FeatureSets = {}
    diagnostics: list[Diagnostic] = []
    for document in documents:
        parsed, problems = parse_document(document)
        diagnostics.extend(problems)
        if parsed is None:
            broken.note(document.data)
        elif isinstance(parsed, ProjectDoc):
            projects.append((document, parsed))
        elif isinstance(parsed, FeatureSetDoc):
            ref = f"{parsed.metadata.name}@{parsed.spec.version}"
            if ref in featuresets:
                diagnostics.append(_defined_twice(document, ref, featuresets[ref][0]))
            else:
                featuresets[ref] = (document, parsed)
    return projects, featuresets, diagnostics


def _defined_twice(document: Document, ref: str, first: Document) -> Diagnostic:
    line, col = document.locate(("metadata", "name"))
    message = f"FeatureSet {ref} is also defined in {first.path}"
    return Diagnostic(document.path, line, col, "KILN1301", message)


def _featureset_problems(document: Document, doc: FeatureSetDoc) -> list[Diagnostic]:
    """Features declared twice, or named like the entity or timestamp column."""
    findings: list[Finding] = []
    seen: set[str] = set()
    reserved = {doc.spec.entity, doc.spec.timestamp}
    for i, feature in enumerate(doc.spec.features):
        at = ("spec", "features", i, "name")
        if feature.name in seen:
            findings.append(Finding(at, "KILN1302", f"feature `{feature.name}` is declared twice"))
        elif feature.name in reserved:
            findings.append(
                Finding(at, "KILN1310", f"`{feature.name}` is the entity or timestamp column")
            )
        seen.add(feature.name)
    return place(findings, document.path, document_locator(document))


def _no_project(specs_dir: Path, root: Path) -> Diagnostic:
    return Diagnostic(
        display_path(specs_dir / "project.yaml", root),
        1,
        1,
        "KILN1303",
        "no valid Project spec found",
        hint="add specs/project.yaml with kind: Project",
    )


def _more_projects(projects: list[tuple[Document, ProjectDoc]]) -> list[Diagnostic]:
    """One diagnostic for each Project after the first."""
    first = projects[0][0]
    diagnostics = []
    for document, _ in projects[1:]:
        line, col = document.locate(("kind",))
        diagnostics.append(
            Diagnostic(
                document.path,
                line,
                col,
                "KILN1303",
                f"a second Project; the first is in {first.path}",
                hint="keep exactly one Project",
            )
        )
    return diagnostics


def _project_findings(spec: ProjectSpec) -> list[Finding]:
    """The images, and the names of environments and alert routes: each once, and no
    environment named like the Argo CD folder."""
    findings: list[Finding] = semantics.check_project_images(spec)
    findings += cluster.check_cluster(spec)
    findings += network.check_network(spec)
    findings += semantics.check_project_signing(spec)
    findings += semantics.check_local_signing_keys(spec)
    findings.extend(locations.check_storage(spec))
    findings.extend(gpus.check_local_gpus(spec.environments))
    for field_name, names in (
        ("environments", [e.name for e in spec.environments]),
        ("alert_routes", [r.name for r in spec.alert_routes]),
    ):
        seen: set[str] = set()
        for i, name in enumerate(names):
            at = ("spec", field_name, i, "name")
            if field_name == "environments" and name == gitops.FOLDER:
                message = f"`{name}` is reserved: generated/{name}/ holds the Argo CD objects"
                findings.append(Finding(at, "KILN1314", message))
            if name in seen:
                message = f"`{name}` is declared twice in {field_name}"
                findings.append(Finding(at, "KILN1302", message))
            seen.add(name)
    return findings


def _project_ir(document: Document, doc: ProjectDoc) -> ProjectIR:
    spec = doc.spec
    return ProjectIR(
        name=doc.metadata.name,
        git_repo=spec.git.repo,
        git_revision=spec.git.revision,
        git_path=spec.git.path,
        kubernetes_version=spec.kubernetes_version,
        images=lower_images(spec.images),
        source=Source(document.path, document.digest),
        istio_native_sidecars=spec.cluster.istio_native_sidecars,
        artifact_repository=(
            None
            if spec.cluster.artifact_repository is None
            else (spec.cluster.artifact_repository.config_map, spec.cluster.artifact_repository.key)
        ),
    )
