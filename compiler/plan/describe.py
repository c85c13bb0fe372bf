"""Sentences for one model in one environment: added, removed or changed."""

from __future__ import annotations

import json

from compiler.api import CompileResult
from compiler.ir import ModelIR
from compiler.plan.diff import Change, diff_facts
from compiler.plan.facts import SUMMARY_TOPICS, model_facts, rollout_path


def application_name(model: ModelIR) -> str:
    """The Argo CD Application the ApplicationSet makes for a model (see targets.gitops)."""
    return f"{model.environment.name}-{model.name}"


def _workload_template(result: CompileResult, model: ModelIR) -> str | None:
    folder = f"{model.environment.name}/{model.name}/"
    for artifact in result.artifacts:
        document = artifact.document
        if (
            artifact.path.startswith(folder)
            and document is not None
            and document.get("kind") in ("Rollout", "Deployment")
        ):
            return json.dumps(document["spec"]["template"], sort_keys=True)
    return None


def _state_lines(model: ModelIR) -> list[str]:
    facts = model_facts(model)
    lines = [f"{topic}: {facts[topic]}" for topic in SUMMARY_TOPICS if topic in facts]
    alerts = sorted(a.name for a in model.alerts)
    if alerts:
        lines.append(f"alerts: {', '.join(alerts)}")
    return lines


def removed_lines(model: ModelIR) -> list[str]:
    if model.is_local:
        return ["removed from the local environment (nothing runs in a cluster)"]
    return [
        f"REMOVED: Argo CD deletes the Application {application_name(model)} and every "
        f"resource it synced into namespace {model.namespace} (Rollout, Services, autoscaler, "
        "workflows) when this merges",
        *(f"was {line}" for line in _state_lines(model)),
    ]


def added_lines(model: ModelIR) -> list[str]:
    where = (
        "on this machine (local)"
        if model.is_local
        else f"as the new Application {application_name(model)} in namespace {model.namespace}"
    )
    return [f"added {where}", *_state_lines(model)]


def describe_change(
    old: ModelIR, new: ModelIR, base: CompileResult, head: CompileResult, files: set[str]
) -> tuple[list[Change], list[str]]:
    changes = diff_facts(model_facts(old), model_facts(new))
    notes: list[str] = []
    path = rollout_path(new)
    for index, change in enumerate(changes):
        if change.topic == "serving version" and not new.is_local:
            changes[index] = Change(change.topic, change.old, change.new, f"via {path}")
        if change.topic == "namespace":
            changes[index] = Change(
                change.topic,
                change.old,
                change.new,
                f"(Argo CD deletes the resources in {change.old} and creates them in {change.new})",
            )
    version_changed = any(c.topic == "serving version" for c in changes)
    if not new.is_local and not version_changed:
        before, after = _workload_template(base, old), _workload_template(head, new)
        if before is not None and after is not None and before != after:
            notes.append(f"the serving pods are replaced via {path}")
    folder = f"{new.environment.name}/{new.name}/"
    if not changes and not notes and any(f.startswith(folder) for f in files):
        notes.append("its generated files change (listed under Generated files)")
    return changes, notes
