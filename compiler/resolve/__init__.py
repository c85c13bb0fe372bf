"""Resolve: typed specs -> one complete IR per (model, environment).

Applies environment overlays (deep merge, lists replace), resolves references
between specs, reads local model signatures, and runs the semantic checks.
Every problem becomes a diagnostic placed at the line that caused it, including
lines inside an environment overlay.

The package follows what depends on what: `project.py` resolves the Project and
the FeatureSets into the `ModelContext` that every Model spec is resolved
against; `model.py` resolves one Model spec in every environment (its overlays
merged by `overlay.py`); `resolution.py` holds what they give. The `Resolver`
below runs the first part once and the second wherever a Model spec is rendered.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from compiler.diagnostics import Diagnostic, has_errors
from compiler.load import Document, load_tree
from compiler.parse import parse_document
from compiler.resolve.model import local_path, resolve_model
from compiler.resolve.project import ModelContext, resolve_project
from compiler.resolve.resolution import Resolution, SpecOutcome, UnknownModel
from compiler.spec.documents import ModelDoc

__all__ = [
    "ModelContext",
    "Resolution",
    "Resolver",
    "SpecOutcome",
    "UnknownModel",
    "local_path",
    "resolve",
]


class Resolver:
    """Resolves a spec tree in two parts. `run` loads every spec and resolves all but
    the Model specs, which it leaves in `pending`: each resolves on its own
    (`model_spec`), so that they can be resolved where they are rendered, in
    several processes; `accept` then keeps the first spec of each model name."""

    def __init__(self, specs_dir: Path) -> None:
        self.specs_dir = specs_dir
        self.result = Resolution(root=specs_dir.resolve().parent)
        self.pending: list[Document] = []  # the Model specs, in spec order
        # What the Model specs are resolved against: set by `run`, None without a Project.
        self.context: ModelContext | None = None

    def report(self, diagnostics: Iterable[Diagnostic]) -> None:
        """Add diagnostics to the result, as those of a Model spec resolved elsewhere."""
        self.result.diagnostics.extend(diagnostics)

    def run(self, loaded: tuple[list[Document], list[Diagnostic]] | None = None) -> Resolution:
        """Load every spec (unless given them `loaded`, in spec order, as the
        incremental build does); resolve the Project and the FeatureSets. Model specs
        are left in `pending`. (A Model spec's failure to parse marks nothing broken,
        so nothing here depends on them.)"""
        documents, problems = load_tree(self.specs_dir) if loaded is None else loaded
        self.report(problems)
        others: list[Document] = []  # the Project and the FeatureSets, in spec order
        for document in documents:
            self.result.documents[document.path] = document
            (self.pending if _is_model_spec(document) else others).append(document)
        self.context, found = resolve_project(
            others, has_errors(problems), self.specs_dir, self.result.root
        )
        self.report(found)
        self.result.project = self.context.project if self.context is not None else None
        return self.result

    def model_spec(self, document: Document) -> SpecOutcome:
        """Parse one Model spec and, when the Project resolved, resolve it in every
        environment. Changes nothing in the resolver (its diagnostics are the
        outcome's), so specs can be resolved in any order, in forked processes."""
        parsed, problems = parse_document(document)
        if not isinstance(parsed, ModelDoc):
            return SpecOutcome(None, problems, [], [])
        name = parsed.metadata.name
        if self.context is None:
            return SpecOutcome(name, problems, [], [])
        models, diagnostics = resolve_model(document, parsed, self.context)
        return SpecOutcome(name, problems, diagnostics, models)

    def accept(self, specs: list[tuple[Document, str | None, list[Diagnostic]]]) -> list[bool]:
        """Report what parsing the Model specs found, (document, name, problems) in
        document order, and which of them to keep: the first of each name."""
        first: dict[str, Document] = {}
        kept = []
        for document, name, problems in specs:
            self.report(problems)
            if name is not None and name in first:
                line, col = document.locate(("metadata", "name"))
                message = f"Model {name} is also defined in {first[name].path}"
                self.report([Diagnostic(document.path, line, col, "KILN1301", message)])
            elif name is not None:
                first[name] = document
            kept.append(name is not None and first[name] is document)
        return kept


def _is_model_spec(document: Document) -> bool:
    data = document.data
    return isinstance(data, dict) and data.get("kind") == "Model"


def resolve(specs_dir: Path) -> Resolution:
    """Load, parse and resolve every spec under `specs_dir`, in this process."""
    resolver = Resolver(specs_dir)
    resolution = resolver.run()
    outcomes = [resolver.model_spec(document) for document in resolver.pending]
    kept = resolver.accept(
        [(d, o.name, o.problems) for d, o in zip(resolver.pending, outcomes, strict=True)]
    )
    for outcome, keep in zip(outcomes, kept, strict=True):
        if keep:
            resolver.report(outcome.diagnostics)
            resolution.models.extend(outcome.models)
    resolution.models.sort(key=lambda m: (m.name, m.environment.name))
    return resolution
