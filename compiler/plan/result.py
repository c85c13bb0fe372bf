"""What a plan holds: sentences grouped by model and environment, and file changes."""

from __future__ import annotations

from dataclasses import dataclass, field

from compiler.diagnostics import Diagnostic
from compiler.plan.diff import Change


@dataclass
class Group:
    """Environments of one model that change in the same way."""

    environments: list[str]
    status: str  # added | removed | changed
    lines: list[str]  # sentences, in order
    loud: bool = False  # an Application and its resources are deleted


@dataclass
class ModelSection:
    model: str
    groups: list[Group]


@dataclass
class FolderChange:
    folder: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)


@dataclass
class Plan:
    ref: str
    commit: str
    base_problems: list[Diagnostic] = field(default_factory=list)
    base_missing: bool = False  # the revision holds no spec folder
    project: list[str] = field(default_factory=list)
    sections: list[ModelSection] = field(default_factory=list)
    deleted_applications: list[str] = field(default_factory=list)
    folders: list[FolderChange] = field(default_factory=list)
    changes: dict[tuple[str, str], list[Change]] = field(default_factory=dict)

    @property
    def base_failed(self) -> bool:
        return bool(self.base_problems) or self.base_missing

    def sentences(self, model: str, environment: str) -> list[str]:
        """Every line said about one model in one environment (for tests and tools)."""
        for section in self.sections:
            if section.model == model:
                for group in section.groups:
                    if environment in group.environments:
                        return group.lines
        return []

    def counts(self) -> dict[str, int]:
        statuses = [
            g.status
            for s in self.sections
            for g in s.groups
            for _ in g.environments  # one per model-environment
        ]
        return {
            "added": statuses.count("added"),
            "removed": statuses.count("removed"),
            "changed": statuses.count("changed"),
            "files added": sum(len(f.added) for f in self.folders),
            "files removed": sum(len(f.removed) for f in self.folders),
            "files changed": sum(len(f.changed) for f in self.folders),
        }
