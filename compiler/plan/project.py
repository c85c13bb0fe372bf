"""The project file in words: its facts, and the lines for what changes in it."""

from __future__ import annotations

from compiler.api import CompileResult
from compiler.plan.diff import diff_facts
from compiler.plan.spec_paths import flatten
from compiler.spec.documents import ProjectDoc
from compiler.spec.project import AlertRoute, ProjectSpec


def _route(route: AlertRoute) -> str:
    if route.alertmanager is not None:
        return f"Alertmanager at {route.alertmanager.url}"
    if route.slack is not None:
        secret = route.slack.webhook_secret
        channel = f" to {route.slack.channel}" if route.slack.channel else ""
        return f"Slack webhook from Secret {secret.name}/{secret.key}{channel}"
    if route.webhook is not None:
        url_secret = route.webhook.url_secret
        if url_secret is not None:
            return f"webhook with its URL from Secret {url_secret.name}/{url_secret.key}"
        return f"webhook {route.webhook.url}"
    return "none"


def project_facts(spec: ProjectSpec, name: str) -> dict[str, str]:
    facts = {
        "project": name,
        "git repository": spec.git.repo,
        "git revision": spec.git.revision,
        "git path": spec.git.path,
        "Kubernetes version": spec.kubernetes_version,
        "runtime image": spec.images.runtime,
        "Triton image": spec.images.triton,
        "model store": spec.storage.models,
        "data store": spec.storage.data,
        "environment order": ", ".join(e.name for e in spec.environments),
    }
    for environment in spec.environments:
        flat: dict[str, str] = {}
        flatten(environment.model_dump(mode="json", exclude={"name"}), "", flat)
        for path, value in flat.items():
            facts[f"environment {environment.name}: {path}"] = value
    for route in spec.alert_routes:
        facts[f"alert route {route.name}"] = _route(route)
    return facts


def project_lines(base: CompileResult | None, head: CompileResult) -> list[str]:
    def facts(result: CompileResult | None) -> dict[str, str]:
        if result is None or result.resolution.project is None:
            return {}
        project = result.resolution.project
        document = result.resolution.documents[project.source.file]
        spec = ProjectDoc.model_validate(document.data).spec
        return project_facts(spec, project.name)

    before, after = facts(base), facts(head)
    if not before:
        return []
    lines = [c.sentence() for c in diff_facts(before, after)]
    gone = [e for e in environments(base) if e not in environments(head)]
    lines += [
        f"REMOVED environment {e}: Argo CD deletes the Applications of every model in it"
        for e in gone
    ]
    return lines


def environments(result: CompileResult | None) -> list[str]:
    if result is None or result.resolution.project is None:
        return []
    project = result.resolution.project
    data = result.resolution.documents[project.source.file].data
    return [e.name for e in ProjectDoc.model_validate(data).spec.environments]
