"""The plan: the base revision and the spec folder, compiled and compared."""

from __future__ import annotations

from pathlib import Path

from compiler.api import CompileResult, build
from compiler.plan.describe import added_lines, application_name, describe_change, removed_lines
from compiler.plan.files import file_changes
from compiler.plan.project import environments, project_lines
from compiler.plan.result import Group, ModelSection, Plan
from compiler.plan.revision import base_specs


def _group(model: str, entries: list[tuple[str, Group]]) -> ModelSection:
    groups: list[Group] = []
    for environment, group in entries:
        for existing in groups:
            same = (existing.status, existing.lines) == (group.status, group.lines)
            if same:
                existing.environments.append(environment)
                break
        else:
            groups.append(Group([environment], group.status, group.lines, group.loud))
    return ModelSection(model, groups)


def make_plan(
    base: CompileResult | None, head: CompileResult, ref: str, commit: str, base_missing: bool
) -> Plan:
    """Compare two compiled trees. A base that failed is treated as empty."""
    plan = Plan(ref, commit, base_missing=base_missing)
    if base is not None and not base.ok:
        plan.base_problems = [d for d in base.diagnostics if d.is_error]
        base = None
    plan.folders = file_changes(base, head)
    changed_files = {
        f.folder + name for f in plan.folders for name in (*f.added, *f.removed, *f.changed)
    }
    plan.project = project_lines(base, head)
    old = {(m.name, m.environment.name): m for m in (base.resolution.models if base else [])}
    new = {(m.name, m.environment.name): m for m in head.resolution.models}
    order = environments(head) + [e for e in environments(base) if e not in environments(head)]
    rank = {name: i for i, name in enumerate(order)}
    per_model: dict[str, list[tuple[str, Group]]] = {}
    for key in sorted(old.keys() | new.keys(), key=lambda k: (k[0], rank.get(k[1], len(rank)))):
        name, environment = key
        before, after = old.get(key), new.get(key)
        if after is None and before is not None:
            group = Group([], "removed", removed_lines(before), loud=not before.is_local)
            if not before.is_local:
                plan.deleted_applications.append(application_name(before))
        elif before is None and after is not None:
            group = Group([], "added", added_lines(after))
        else:
            assert before is not None and after is not None
            assert base is not None
            changes, notes = describe_change(before, after, base, head, changed_files)
            if not changes and not notes:
                continue
            plan.changes[key] = changes
            group = Group([], "changed", [c.sentence() for c in changes] + notes)
        per_model.setdefault(name, []).append((environment, group))
    plan.sections = [_group(name, entries) for name, entries in sorted(per_model.items())]
    return plan


def plan_change(specs: Path, ref: str, head: CompileResult | None = None) -> Plan:
    """Compile `ref`'s specs and the spec folder, and compare them."""
    if head is None:
        head = build(specs)
    with base_specs(specs, ref) as tree:
        missing = tree.files == 0
        base = None if missing else build(tree.specs)
        return make_plan(base, head, tree.ref, tree.commit, missing)
