"""Plan: what a change to the specs does, in words, per model and environment.

Both sides are compiled in memory with `build()`: the base revision from git
objects (`git ls-tree` + `git cat-file --batch` into a temporary folder; the
working tree, the index and HEAD are never touched) and the head from the spec
folder. Each (model, environment) is then described as an ordered table of
facts, a topic and its value in words ("replicas" -> "2-4"), and the plan is the
difference of the two tables. A change and its revert therefore read as exact
opposites: the same topics with old and new swapped.

What the facts do not name (a warm-up batch size, a training argument) still
shows up, by its spec path, so that no change to a model goes unmentioned.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from compiler.api import CompileResult, build
from compiler.diagnostics import Diagnostic
from compiler.ir import ModelIR
from compiler.spec.documents import ProjectDoc
from compiler.spec.model import (
    Alert,
    Analysis,
    DynamicBatching,
    Monitoring,
    Rollout,
    Threshold,
)
from compiler.spec.project import AlertRoute, ProjectSpec
from compiler.spec.types import Schedule

# ---------------------------------------------------------------------------
# git: the base revision's specs, read from objects only


class GitError(Exception):
    """A git command failed; the message is git's own, for a person to read."""


def git(args: list[str], cwd: Path, stdin: bytes | None = None) -> bytes:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, input=stdin, capture_output=True, check=False
        )
    except FileNotFoundError as exc:
        raise GitError("git is not installed") from exc
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip() or f"git {args[0]} failed"
        raise GitError(message)
    return done.stdout


def repository_root(path: Path) -> Path:
    """The top folder of the git repository that holds `path`."""
    start = path if path.is_dir() else path.parent
    while not start.exists():
        start = start.parent
    try:
        top = git(["rev-parse", "--show-toplevel"], start).decode("utf-8").strip()
    except GitError as exc:
        raise GitError(f"{path.as_posix()} is not inside a git repository") from exc
    return Path(top).resolve()


def resolve_commit(root: Path, ref: str) -> str:
    if ref.startswith("-"):
        raise GitError(f"{ref!r} is not a revision")
    try:
        return git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], root).decode().strip()
    except GitError as exc:
        raise GitError(f"unknown revision {ref!r} (fetch it first?)") from exc


def relative_to_root(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError as exc:
        raise GitError(f"{path.as_posix()} is outside the repository at {root.name}") from exc


def _parse_batch(output: bytes, count: int) -> list[bytes]:
    """Blobs from `git cat-file --batch`: a header line, the bytes, a newline, each."""
    blobs: list[bytes] = []
    at = 0
    for _ in range(count):
        end = output.index(b"\n", at)
        header = output[at:end].split()
        if len(header) != 3 or header[1] != b"blob":
            raise GitError(f"unexpected object in git output: {header!r}")
        size = int(header[2])
        blobs.append(output[end + 1 : end + 1 + size])
        at = end + 1 + size + 1
    return blobs


def export_tree(root: Path, commit: str, relative: str, into: Path) -> int:
    """Write the files under `relative` at `commit` into `into`; return how many.

    Symbolic links and submodules are skipped: a spec tree holds plain files.
    """
    pathspec = [] if relative in ("", ".") else ["--", relative]
    listing = git(["ls-tree", "-r", "-z", "--full-tree", commit, *pathspec], root)
    entries: list[tuple[str, str]] = []
    for record in listing.split(b"\0"):
        if not record:
            continue
        meta, _, raw_name = record.partition(b"\t")
        mode, kind, oid = meta.decode().split()
        if kind == "blob" and mode in ("100644", "100755"):
            entries.append((oid, raw_name.decode("utf-8", "surrogateescape")))
    if not entries:
        return 0
    stdin = "".join(f"{oid}\n" for oid, _ in entries).encode()
    blobs = _parse_batch(git(["cat-file", "--batch"], root, stdin), len(entries))
    prefix = PurePosixPath(relative) if relative not in ("", ".") else PurePosixPath()
    for (_, name), data in zip(entries, blobs, strict=True):
        inner = PurePosixPath(name).relative_to(prefix)
        if any(part in ("", "..") for part in inner.parts):
            continue
        target = into.joinpath(*inner.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return len(entries)


@dataclass(frozen=True)
class BaseTree:
    ref: str
    commit: str
    specs: Path  # the exported spec folder, inside a temporary folder
    files: int  # how many files the revision holds under the spec folder


@contextmanager
def base_specs(specs: Path, ref: str) -> Iterator[BaseTree]:
    """The spec folder as it is at `ref`, exported into a temporary folder.

    The export keeps the spec folder's name, so that display paths (relative to
    its parent) and project-relative artifact paths read the same on both sides.
    """
    root = repository_root(specs)
    commit = resolve_commit(root, ref)
    relative = relative_to_root(specs, root)
    with tempfile.TemporaryDirectory(prefix="kiln-plan-") as temporary:
        name = relative if relative not in ("", ".") else root.name
        folder = Path(temporary).joinpath(*PurePosixPath(name).parts)
        folder.mkdir(parents=True)
        count = export_tree(root, commit, relative, folder)
        yield BaseTree(ref, commit, folder, count)


# ---------------------------------------------------------------------------
# Facts: a model in an environment, described as topics and values in words


def _number(value: float) -> str:
    return f"{value:g}"


def _percent(value: float) -> str:
    return f"{value * 100:g}%"


def _replicas(model: ModelIR) -> str:
    replicas = model.serving.replicas
    return str(replicas.min) if replicas.min == replicas.max else f"{replicas.min}-{replicas.max}"


def _canary_steps(rollout: Rollout) -> list[str]:
    if rollout.steps is None:  # the renderer's default path
        steps = ["20% for 5m"]
        if rollout.analysis is not None:
            steps.append("analysis")
        return [*steps, "50% for 5m"]
    described: list[str] = []
    for step in rollout.steps:
        if step.weight is not None and step.pause is not None:
            described.append(f"{step.weight}% for {step.pause}")
        elif step.weight is not None:
            described.append(f"{step.weight}%")
        elif step.pause is not None:
            described.append(f"pause {step.pause}")
        if step.analysis:
            described.append("analysis")
    return described


def rollout_path(model: ModelIR) -> str:
    """How a new version reaches full traffic, in one line."""
    rollout = model.rollout
    analysed = rollout.analysis is not None
    if rollout.strategy == "recreate":
        return "recreate: every pod replaced at once, with downtime"
    if rollout.strategy == "blue_green":
        settings = rollout.blue_green
        parts = ["preview Service"]
        if analysed:
            parts.append("analysis before promotion")
        auto = settings.auto_promotion if settings else True
        parts.append("automatic promotion" if auto else "promotion by hand")
        parts.append(f"old pods kept {settings.scale_down_delay if settings else '30s'}")
        return "blue-green: " + ", ".join(parts)
    if rollout.strategy == "shadow":
        shadow = rollout.shadow
        percent = shadow.mirror_percent if shadow else 100
        parts = [f"{percent}% of traffic mirrored for {shadow.duration if shadow else '30m'}"]
        if analysed:
            parts.append("analysis")
        return "shadow through Istio: " + ", ".join([*parts, "then 100%"])
    if rollout.strategy == "ab":
        ab = rollout.ab
        if ab is None:
            return "A/B through Istio"
        parts = [f"requests with {ab.header}: {ab.value}"]
        if ab.weight:
            parts.append(f"plus {ab.weight}% of the rest")
        parts.append(f"for {ab.duration}")
        if analysed:
            parts.append("analysis")
        return "A/B through Istio: " + ", ".join([*parts, "then 100%"])
    how = "through Istio" if rollout.traffic == "istio" else "by pod count"
    return f"canary {how}: " + ", ".join([*_canary_steps(rollout), "then 100%"])


def _autoscaling(model: ModelIR) -> str:
    scaling = model.serving.autoscaling
    if scaling is None:
        return "none"
    target = _number(scaling.target)
    return {
        "queue_time_us": f"on queue time, target {target} us",
        "cpu_utilization": f"on CPU utilisation, target {target}%",
        "gpu_utilization": f"on GPU utilisation, target {target}%",
    }[scaling.metric]


def _batching(batching: DynamicBatching | None) -> str:
    if batching is None:
        return "off"
    parts = [f"queue delay up to {batching.max_queue_delay_us} us"]
    if batching.preferred_batch_size:
        parts.append("preferred sizes " + ", ".join(map(str, batching.preferred_batch_size)))
    if batching.preserve_ordering:
        parts.append("ordered responses")
    if batching.priority_levels is not None:
        parts.append(f"{batching.priority_levels} priority levels")
    policy = batching.default_queue_policy
    if policy is not None:
        timeout = f"{policy.timeout_action} after {policy.default_timeout_us} us"
        bound = f"at most {policy.max_queue_size} queued" if policy.max_queue_size else "unbounded"
        parts.append(f"queue policy {timeout}, {bound}")
    return ", ".join(parts)


def _instances(model: ModelIR) -> str:
    if model.is_local:  # the local Triton runs every declared instance on the CPU
        return f"{sum(g.count for g in model.instance_groups)} x CPU"
    groups = []
    for group in model.instance_groups:
        where = f" on GPUs {', '.join(map(str, group.gpus))}" if group.gpus else ""
        groups.append(f"{group.count} x {group.kind.upper()}{where}")
    return "; ".join(groups)


def _schedule(schedule: Schedule | None) -> str:
    return "none" if schedule is None else f"{schedule.cron} ({schedule.timezone})"


def _gates(model: ModelIR) -> str:
    training = model.training
    if training is None or not training.gates:
        return "none"
    described = []
    for gate in training.gates:
        if gate.min is not None:
            described.append(f"{gate.metric} >= {_number(gate.min)}")
        elif gate.max is not None:
            described.append(f"{gate.metric} <= {_number(gate.max)}")
        elif gate.max_regression is not None:
            worse = _number(gate.max_regression)
            described.append(f"{gate.metric} at most {worse} worse than the serving version")
    return "; ".join(described)


def _threshold(threshold: Threshold | None) -> str:
    if threshold is None:
        return "the method's default threshold"
    if threshold.std is not None:
        return f"threshold {_number(threshold.std)} std"
    bounds = threshold.constant
    if bounds is None:  # the spec requires std or constant
        return "no threshold"
    parts = []
    if bounds.lower is not None:
        parts.append(f"below {_number(bounds.lower)}")
    if bounds.upper is not None:
        parts.append(f"above {_number(bounds.upper)}")
    return "alert " + " or ".join(parts) if parts else "no threshold"


def _drift_facts(monitoring: Monitoring | None) -> dict[str, str]:
    drift = monitoring.drift if monitoring else None
    univariate = drift.univariate if drift else None
    multivariate = drift.multivariate if drift else None
    facts = {"univariate drift": "off", "multivariate drift": "off"}
    if univariate is not None:
        facts["univariate drift"] = (
            f"{', '.join(univariate.continuous)} (continuous), "
            f"{', '.join(univariate.categorical)} (categorical), {_threshold(univariate.threshold)}"
        )
    if multivariate is not None:
        rows = f", at most {multivariate.max_rows} rows" if multivariate.max_rows else ""
        facts["multivariate drift"] = (
            f"{multivariate.method}{rows}, {_threshold(multivariate.threshold)}"
        )
    performance = monitoring.performance if monitoring else None
    facts["performance estimation"] = (
        f"{performance.estimator}: {', '.join(performance.metrics)}" if performance else "off"
    )
    return facts


def _analysis_facts(analysis: Analysis | None) -> dict[str, str]:
    if analysis is None:
        return {"analysis": "none"}
    error_rate = analysis.max_error_rate
    latency = analysis.max_latency_p99_ms
    return {
        "analysis": (
            f"every {analysis.interval}, {analysis.count} measurements, "
            f"{analysis.failure_limit} failure(s) tolerated"
        ),
        "analysis error-rate ceiling": "none" if error_rate is None else _percent(error_rate),
        "analysis p99 latency ceiling": "none" if latency is None else f"{_number(latency)} ms",
        "analysis smoke test": "on" if analysis.smoke_test else "off",
    }


def alert_condition(alert: Alert) -> str:
    when = alert.when
    parts: list[str] = [when.signal]
    if when.metric:
        parts.append(when.metric)
    if when.feature:
        parts.append(f"of {when.feature}")
    if when.below is not None:
        parts.append(f"below {_number(when.below)}")
    if when.above is not None:
        parts.append(f"above {_number(when.above)}")
    if when.for_:
        parts.append(f"for {when.for_}")
    return " ".join(parts)


def _alert_facts(model: ModelIR) -> dict[str, str]:
    facts: dict[str, str] = {}
    for alert in sorted(model.alerts, key=lambda a: a.name):
        facts[f"alert {alert.name}"] = (
            f"{alert_condition(alert)}, {alert.severity}, to {alert.route}"
        )
    return facts


# Spec paths the facts above describe; everything else is listed by path.
_DESCRIBED = (
    "serving.version",
    "serving.max_batch_size",
    "serving.dynamic_batching",
    "serving.instance_groups",
    "serving.resources",
    "serving.replicas",
    "serving.autoscaling",
    "serving.slo",
    "rollout",
    "training.image",
    "training.schedule",
    "training.gates",
    "monitoring.schedule",
    "monitoring.drift",
    "monitoring.performance",
)
# Settings that make no difference to the local environment (no cluster there).
_CLUSTER_ONLY = ("rollout", "serving.replicas", "serving.autoscaling", "serving.resources")


def _flatten(value: Any, prefix: str, into: dict[str, str]) -> None:
    if isinstance(value, dict) and value:
        for key in sorted(value):
            _flatten(value[key], f"{prefix}.{key}" if prefix else str(key), into)
    else:
        into[prefix] = "none" if value is None else json.dumps(value, sort_keys=True)


def _covered(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p + ".") for p in prefixes)


def _other_facts(model: ModelIR) -> dict[str, str]:
    """Every other setting, by spec path, for changes the named facts do not cover."""
    dumped: dict[str, Any] = {
        "owner": model.owner,
        "task": model.task,
        "target": model.target,
        "features": f"{model.featureset.name}@{model.featureset.version}",
        "featureset": model.featureset.spec.model_dump(mode="json", by_alias=True),
        "signature": {
            "inputs": [f"{t.name} {t.dtype} {list(t.shape)}" for t in model.inputs],
            "outputs": [f"{t.name} {t.dtype} {list(t.shape)}" for t in model.outputs],
        },
        "storage": model.storage.model_dump(mode="json"),
        "serving": model.serving.model_dump(mode="json", by_alias=True),
        "rollout": model.rollout.model_dump(mode="json", by_alias=True),
        "training": model.training.model_dump(mode="json", by_alias=True)
        if model.training
        else None,
        "monitoring": model.monitoring.model_dump(mode="json", by_alias=True)
        if model.monitoring
        else None,
    }
    flat: dict[str, str] = {}
    _flatten(dumped, "", flat)
    skip = _DESCRIBED + (_CLUSTER_ONLY if model.is_local else ())
    return {path: value for path, value in flat.items() if not _covered(path, skip)}


def model_facts(model: ModelIR) -> dict[str, str]:
    """The model in its environment, in words: an ordered table of topic -> value."""
    facts: dict[str, str] = {"serving version": str(model.serving.version)}
    for artifact in model.versions:
        digest = f", sha256 {artifact.sha256[:12]}" if artifact.sha256 else ""
        metrics = "".join(f", {k} {_number(v)}" for k, v in artifact.metrics)
        facts[f"version {artifact.version}"] = f"{artifact.uri}{digest}{metrics}"
    if not model.is_local:
        facts["namespace"] = model.namespace
        facts["rollout"] = rollout_path(model)
        facts["replicas"] = _replicas(model)
        facts["autoscaling"] = _autoscaling(model)
        resources = model.serving.resources
        facts["GPUs per pod"] = str(resources.gpus)
        facts["CPU per pod"] = str(resources.cpu)
        facts["memory per pod"] = str(resources.memory)
    facts["instances per pod"] = _instances(model)
    facts["max batch size"] = str(model.serving.max_batch_size)
    facts["dynamic batching"] = _batching(model.serving.dynamic_batching)
    slo = model.serving.slo
    facts["SLO p99 latency"] = "none" if slo is None else f"{_number(slo.latency_p99_ms)} ms"
    facts["SLO error rate"] = "none" if slo is None else _percent(slo.error_rate)
    if not model.is_local:
        facts.update(_analysis_facts(model.rollout.analysis))
    training = model.training
    facts["training image"] = training.image if training else "none"
    facts["training schedule"] = _schedule(training.schedule if training else None)
    facts["training gates"] = _gates(model)
    monitoring = model.monitoring
    facts["monitoring schedule"] = _schedule(monitoring.schedule if monitoring else None)
    facts.update(_drift_facts(monitoring))
    facts.update(_alert_facts(model))
    facts.update(_other_facts(model))
    return facts


# Topics shown for a model that appears or disappears (the whole table is too much).
SUMMARY_TOPICS = (
    "serving version",
    "namespace",
    "rollout",
    "replicas",
    "GPUs per pod",
    "max batch size",
    "dynamic batching",
    "training schedule",
    "monitoring schedule",
)


def _route(route: AlertRoute) -> str:
    if route.alertmanager is not None:
        return f"Alertmanager at {route.alertmanager.url}"
    if route.slack is not None:
        secret = route.slack.webhook_secret
        channel = f" to {route.slack.channel}" if route.slack.channel else ""
        return f"Slack webhook from Secret {secret.name}/{secret.key}{channel}"
    if route.webhook is not None:
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
        _flatten(environment.model_dump(mode="json", exclude={"name"}), "", flat)
        for path, value in flat.items():
            facts[f"environment {environment.name}: {path}"] = value
    for route in spec.alert_routes:
        facts[f"alert route {route.name}"] = _route(route)
    return facts


# ---------------------------------------------------------------------------
# The plan


_NAMED = ("alert ", "version ", "environment ")


@dataclass(frozen=True)
class Change:
    """One difference: a topic whose value went from `old` to `new`."""

    topic: str
    old: str | None  # None: the topic is new
    new: str | None  # None: the topic is gone
    note: str = ""  # how the change reaches the running system

    def sentence(self) -> str:
        if self.old is None:
            text = f"{self.topic} added: {self.new}"
        elif self.new is None:
            text = f"{self.topic} removed (was {self.old})"
        else:
            # A named item or a spec path reads better with a colon after it.
            named = self.topic.startswith(_NAMED) or "." in self.topic
            text = f"{self.topic}{':' if named else ''} {self.old} -> {self.new}"
        return f"{text} {self.note}" if self.note else text

    def reversed(self) -> Change:
        return Change(self.topic, self.new, self.old)


def diff_facts(old: dict[str, str], new: dict[str, str]) -> list[Change]:
    changes = [Change(t, old[t], new.get(t)) for t in old if old[t] != new.get(t)]
    removed = [c for c in changes if c.new is None]
    changed = [c for c in changes if c.new is not None]
    added = [Change(t, None, v) for t, v in new.items() if t not in old]
    return changed + added + removed


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


def _removed_lines(model: ModelIR) -> list[str]:
    if model.is_local:
        return ["removed from the local environment (nothing runs in a cluster)"]
    return [
        f"REMOVED: Argo CD deletes the Application {application_name(model)} and every "
        f"resource it synced into namespace {model.namespace} (Rollout, Services, autoscaler, "
        "workflows) when this merges",
        *(f"was {line}" for line in _state_lines(model)),
    ]


def _added_lines(model: ModelIR) -> list[str]:
    where = (
        "on this machine (local)"
        if model.is_local
        else f"as the new Application {application_name(model)} in namespace {model.namespace}"
    )
    return [f"added {where}", *_state_lines(model)]


def _changed(
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


def _file_changes(base: CompileResult | None, head: CompileResult) -> list[FolderChange]:
    before = {a.path: a.content for a in base.artifacts} if base is not None else {}
    after = {a.path: a.content for a in head.artifacts}
    folders: dict[str, FolderChange] = {}

    def entry(path: str) -> FolderChange:
        folder, _, _ = path.rpartition("/")
        key = folder + "/" if folder else "./"
        return folders.setdefault(key, FolderChange(key))

    for path in sorted(before.keys() | after.keys()):
        name = path.rpartition("/")[2]
        if path not in before:
            entry(path).added.append(name)
        elif path not in after:
            entry(path).removed.append(name)
        elif before[path] != after[path]:
            entry(path).changed.append(name)
    return [folders[k] for k in sorted(folders)]


def _project_lines(base: CompileResult | None, head: CompileResult) -> list[str]:
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
    gone = [e for e in _environments(base) if e not in _environments(head)]
    lines += [
        f"REMOVED environment {e}: Argo CD deletes the Applications of every model in it"
        for e in gone
    ]
    return lines


def _environments(result: CompileResult | None) -> list[str]:
    if result is None or result.resolution.project is None:
        return []
    project = result.resolution.project
    data = result.resolution.documents[project.source.file].data
    return [e.name for e in ProjectDoc.model_validate(data).spec.environments]


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
    plan.folders = _file_changes(base, head)
    changed_files = {
        f.folder + name for f in plan.folders for name in (*f.added, *f.removed, *f.changed)
    }
    plan.project = _project_lines(base, head)
    old = {(m.name, m.environment.name): m for m in (base.resolution.models if base else [])}
    new = {(m.name, m.environment.name): m for m in head.resolution.models}
    order = _environments(head) + [e for e in _environments(base) if e not in _environments(head)]
    rank = {name: i for i, name in enumerate(order)}
    per_model: dict[str, list[tuple[str, Group]]] = {}
    for key in sorted(old.keys() | new.keys(), key=lambda k: (k[0], rank.get(k[1], len(rank)))):
        name, environment = key
        before, after = old.get(key), new.get(key)
        if after is None and before is not None:
            group = Group([], "removed", _removed_lines(before), loud=not before.is_local)
            if not before.is_local:
                plan.deleted_applications.append(application_name(before))
        elif before is None and after is not None:
            group = Group([], "added", _added_lines(after))
        else:
            assert before is not None and after is not None
            assert base is not None
            changes, notes = _changed(before, after, base, head, changed_files)
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


# ---------------------------------------------------------------------------
# Rendering: Markdown for a pull request comment, plain text for a terminal

MARKER = "<!-- kiln-plan -->"  # finds the comment to update; first line of the Markdown
# GitHub refuses comments over 65,536 characters; bytes are never fewer than characters.
MARKDOWN_LIMIT = 64_000
TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Limits:
    """How much of a plan to show; None is everything."""

    lines: int | None = None  # sentences per group of environments
    sections: int | None = None  # models
    folders: int | None = None  # rows of the file summary
    names: bool = True  # file names in the file summary
    applications: int | None = None  # names of deleted Applications
    problems: int | None = 20  # diagnostics of a base that does not compile


# Tried in order until the Markdown fits; the last one fits any plan but a pathological one,
# which is cut by hand.
LEVELS = (
    Limits(),
    Limits(names=False, applications=100),
    Limits(lines=40, folders=300, names=False, applications=100),
    Limits(lines=15, sections=150, folders=100, names=False, applications=50, problems=10),
    Limits(lines=5, sections=40, folders=30, names=False, applications=20, problems=5),
    Limits(lines=2, sections=10, folders=10, names=False, applications=10, problems=3),
)


def _cap(items: list[Any], limit: int | None) -> tuple[list[Any], int]:
    if limit is None or len(items) <= limit:
        return items, 0
    return items[:limit], len(items) - limit


def headline(plan: Plan) -> str:
    counts = plan.counts()
    base = f"{plan.ref} ({plan.commit[:12]})"
    models = ", ".join(f"{counts[k]} {k}" for k in ("changed", "added", "removed") if counts[k])
    files = ", ".join(
        f"{counts['files ' + k]} {k}"
        for k in ("changed", "added", "removed")
        if counts["files " + k]
    )
    if not models and not files and not plan.project:
        return f"Compared with {base}: no change to what Kiln generates."
    parts = [f"Compared with {base}:"]
    parts.append(f"model-environments {models or 'unchanged'};")
    parts.append(f"generated files {files or 'unchanged'}.")
    return " ".join(parts)


def _view(plan: Plan, limits: Limits, fmt: str) -> dict[str, Any]:
    sections, hidden_sections = _cap(plan.sections, limits.sections)
    shown_sections = []
    hidden_lines = 0
    for section in sections:
        groups = []
        for group in section.groups:
            lines, more = _cap(group.lines, limits.lines)
            hidden_lines += more * len(group.environments)
            groups.append({"group": group, "lines": lines, "more": more})
        shown_sections.append({"model": section.model, "groups": groups})
    project, hidden_project = _cap(plan.project, limits.lines)
    folders, hidden_folders = _cap(plan.folders, limits.folders)
    applications, hidden_applications = _cap(plan.deleted_applications, limits.applications)
    problems, hidden_problems = _cap(plan.base_problems, limits.problems)
    truncated = bool(
        hidden_sections or hidden_lines or hidden_project or hidden_folders or hidden_applications
    )
    return {
        "fmt": fmt,
        "marker": MARKER,
        "plan": plan,
        "headline": headline(plan),
        "sections": shown_sections,
        "hidden_sections": hidden_sections,
        "project": project,
        "hidden_project": hidden_project,
        "folders": folders,
        "hidden_folders": hidden_folders,
        "names": limits.names,
        "applications": applications,
        "hidden_applications": hidden_applications,
        "problems": [d.text() for d in problems],
        "hidden_problems": hidden_problems,
        "truncated": truncated,
    }


_MARKDOWN_SPECIAL = str.maketrans(
    {
        "\\": "\\\\",
        "`": "\\`",
        "*": "\\*",
        "_": "\\_",
        "[": "\\[",
        "]": "\\]",
        "|": "\\|",
        "~": "\\~",
        "<": "&lt;",  # no HTML (nor a second plan marker); `>` only quotes at a line start
        "&": "&amp;",
        "\n": " ",
    }
)


def markdown_text(value: object) -> str:
    """Text that Markdown shows as it is: no emphasis, links, tables or HTML."""
    return str(value).translate(_MARKDOWN_SPECIAL)


def markdown_code(value: object) -> str:
    """A code span; safe inside a table cell."""
    text = str(value).replace("`", "'").replace("|", "\\|").replace("\n", " ")
    return f"`{text}`"


def _environment() -> SandboxedEnvironment:

    environment = SandboxedEnvironment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=False,  # Markdown and text, not HTML: values are escaped by `md`
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["md"] = markdown_text
    environment.filters["code"] = markdown_code
    return environment


def _render(plan: Plan, limits: Limits, fmt: str) -> str:
    template = _environment().get_template("plan.md.j2" if fmt == "markdown" else "plan.txt.j2")
    text: str = template.render(_view(plan, limits, fmt))
    return text


def _cut(text: str, limit: int, note: str) -> str:
    """The longest run of whole lines that fits with the note; the last resort."""
    budget = limit - len(note.encode("utf-8")) - 2
    kept: list[str] = []
    used = 0
    for line in text.splitlines(keepends=True):
        size = len(line.encode("utf-8"))
        if used + size > budget:
            break
        kept.append(line)
        used += size
    return "".join(kept) + "\n" + note + "\n"


def render_plan(plan: Plan, fmt: str = "markdown", limit: int = MARKDOWN_LIMIT) -> str:
    """The plan as Markdown (always under `limit` bytes) or as plain text (all of it)."""
    if fmt != "markdown":
        return _render(plan, Limits(problems=None), fmt)
    for limits in LEVELS:
        text = _render(plan, limits, fmt)
        if len(text.encode("utf-8")) <= limit:
            return text
    command = markdown_code(f"kiln plan --base {plan.ref} --format text")
    note = f"_The plan is too long for a comment and was cut: run {command} for all of it._"
    return _cut(text, limit, note)


def render_failure(diagnostics: list[Diagnostic], fmt: str, limit: int = MARKDOWN_LIMIT) -> str:
    """What the plan says when the working tree does not compile."""
    errors = [d for d in diagnostics if d.is_error]
    title = f"The specs do not compile ({len(errors)} error(s)): there is nothing to plan."
    if fmt != "markdown":
        return "\n".join(["Kiln plan", title, *(f"  {d.text()}" for d in errors)]) + "\n"
    lines = [MARKER, "## Kiln plan", "", markdown_text(title), ""]
    lines += [f"- {markdown_text(d.text())}" for d in errors]
    text = "\n".join(lines) + "\n"
    if len(text.encode("utf-8")) > limit:
        text = _cut(text, limit, "_(more errors not shown)_")
    return text
