"""Argo Workflows: the training WorkflowTemplate, its CronWorkflow, and least-privilege RBAC.

The DAG comes from `pipeline.py`; here each step becomes a container template
whose output folder is an Argo artifact and whose small outputs (digests) are
output parameters. Argo CD applies only named objects, so Kiln emits templates
and schedules, never bare Workflows.
"""

from __future__ import annotations

from compiler import names
from compiler.ir import ModelIR
from compiler.ir.secret import SecretRefIR
from compiler.ir.training import ScheduleIR
from compiler.targets import k8s
from compiler.targets.k8s import Object
from compiler.targets.pipeline import TOKEN, Pipeline, Step
from runtime.contract.durations import duration_seconds

WORK = "/tmp/kiln"
OUT = f"{WORK}/out"
REPO = f"{WORK}/repo"
STEP_DEADLINE = {"train": 6 * 3600}
DEFAULT_DEADLINE = 3600
WORKFLOW_DEADLINE = 8 * 3600
# Owner and group may read (the pod's fsGroup makes the group the step's user); no write.
SECRET_FILE_MODE = 0o440
# The one file of a Secret mounted for a variable: a name of Kiln's rather than the
# Secret's key, which may be a name a volume path does not allow (such as `..key`).
SECRET_FILE = "value"  # noqa: S105 a file name, not a password


def _param_name(step: str, file: str) -> str:
    return f"{step}-{file.replace('.', '-').replace('_', '-')}"


# Every model's steps run the same commands: each (text, spec file) is worked out once.
_ARGO_TEXTS: dict[tuple[str, str], str] = {}
_ARGO_TEXTS_MAX = 50_000


def _argo(text: str, model: ModelIR) -> str:
    """Replace pipeline tokens with the paths and expressions of an Argo pod."""
    if "{" not in text:
        return text
    key = (text, model.source.file)
    done = _ARGO_TEXTS.get(key)
    if done is None:
        done = _replace_tokens(text, model.source.file)
        if len(_ARGO_TEXTS) < _ARGO_TEXTS_MAX:
            _ARGO_TEXTS[key] = done
    return done


def _replace_tokens(text: str, spec_file: str) -> str:
    def replace(match: object) -> str:
        token: str = match.group(1)  # type: ignore[attr-defined]
        if token == "out":  # noqa: S105 a placeholder's name
            return OUT
        if token == "spec":  # noqa: S105 a placeholder's name
            return f"{REPO}/{spec_file}"
        kind, _, rest = token.partition(":")
        if kind == "in":
            return f"{WORK}/in/{rest}"
        if kind == "param":
            step, _, file = rest.partition("/")
            return f"{{{{inputs.parameters.{_param_name(step, file)}}}}}"
        return f"{{{{workflow.parameters.{rest}}}}}"

    return TOKEN.sub(replace, text)


def _outputs(step: Step, pipeline: Pipeline) -> Object:
    files = sorted(
        {f for s in pipeline.steps for (origin, f) in s.parameters() if origin == step.name}
    )
    outputs: Object = {"artifacts": [{"name": "out", "path": OUT}]}
    if files:
        outputs["parameters"] = [
            {"name": _param_name(step.name, f), "valueFrom": {"path": f"{OUT}/{f}"}} for f in files
        ]
    return outputs


def _inputs(step: Step, model: ModelIR) -> Object:
    inputs: Object = {}
    artifacts: list[Object] = [
        {"name": origin, "path": f"{WORK}/in/{origin}"} for origin in step.inputs()
    ]
    if any(t == "spec" for t in step.tokens()):
        artifacts.append(
            {
                "name": "repository",
                "path": REPO,
                "git": {
                    "repo": model.project.git_repo,
                    "revision": "{{workflow.parameters.git-revision}}",
                    "depth": 1,
                },
            }
        )
    if artifacts:
        inputs["artifacts"] = artifacts
    if step.parameters():
        inputs["parameters"] = [{"name": _param_name(s, f)} for s, f in step.parameters()]
    return inputs


def _container(step: Step, model: ModelIR) -> Object:
    requests: Object = {"cpu": step.cpu, "memory": step.memory}
    limits: Object = dict(requests)
    if step.gpus:
        limits[model.environment.gpu.resource] = str(step.gpus)
    container: Object = {
        "image": step.image,
        "command": k8s.literals(_argo(part, model) for part in step.command),
        "resources": {"requests": requests, "limits": limits},
        "securityContext": k8s.container_security(),
        "volumeMounts": [k8s.SCRATCH_MOUNT],
    }
    env = [{"name": k, "value": k8s.literal(_argo(v, model))} for k, v in step.env]
    env += [_secret_variable(name, ref) for name, ref in step.secret_env]
    env += [{"name": name, "value": _secret_file(name)} for name, _ in step.secret_files]
    if env:
        container["env"] = env
    container["volumeMounts"] += [
        {"name": _secret_volume(name), "mountPath": _secret_folder(name), "readOnly": True}
        for name, _ in step.secret_files
    ]
    return container


def _secret_variable(name: str, ref: SecretRefIR) -> Object:
    # Not optional: a train step started without the value it needs would fail later,
    # and less clearly, than a pod that waits for its Secret.
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}


def _secret_volume(variable: str) -> str:
    return "secret-" + variable.lower().replace("_", "-")


def _secret_folder(variable: str) -> str:
    return f"{k8s.SECRETS_MOUNT}/{_secret_volume(variable)}"


def _secret_file(variable: str) -> str:
    return f"{_secret_folder(variable)}/{SECRET_FILE}"


def _secret_volumes(step: Step) -> list[Object]:
    """The Secret keys a step reads as files: only the key named, read-only. Not optional:
    a publish step that cannot read its key must not publish versions unsigned."""
    return [
        {
            "name": _secret_volume(name),
            "secret": {
                "secretName": ref.name,
                "items": [{"key": ref.key, "path": SECRET_FILE}],
                "defaultMode": SECRET_FILE_MODE,
                "optional": False,
            },
        }
        for name, ref in step.secret_files
    ]


def _template(step: Step, pipeline: Pipeline, model: ModelIR) -> Object:
    template: Object = {"name": step.name}
    inputs = _inputs(step, model)
    if inputs:
        template["inputs"] = inputs
    template["outputs"] = _outputs(step, pipeline)
    template["container"] = _container(step, model)
    if step.secret_files:
        template["volumes"] = _secret_volumes(step)
    # IntOrString in Argo's schema: a string is valid for every version.
    template["activeDeadlineSeconds"] = str(STEP_DEADLINE.get(step.name, DEFAULT_DEADLINE))
    template["retryStrategy"] = {
        "limit": "2",
        # Retry infrastructure failures, never a failed gate or a bad model.
        "retryPolicy": "OnError",
        # No maxDuration: Argo Workflows counts it from the first attempt's start, not
        # per wait, so a train pod lost after it would never be retried. The limit and
        # the factor bound the waits (30 s, then 60 s).
        "backoff": {"duration": "30s", "factor": "2"},
    }
    template.update(k8s.gpu_placement(model, step.gpus))
    return template


def _task(step: Step) -> Object:
    task: Object = {"name": step.name, "template": step.name}
    if step.depends:
        task["dependencies"] = list(step.depends)
    arguments: Object = {}
    if step.inputs():
        arguments["artifacts"] = [
            {"name": origin, "from": f"{{{{tasks.{origin}.outputs.artifacts.out}}}}"}
            for origin in step.inputs()
        ]
    if step.parameters():
        arguments["parameters"] = [
            {
                "name": _param_name(s, f),
                "value": f"{{{{tasks.{s}.outputs.parameters.{_param_name(s, f)}}}}}",
            }
            for s, f in step.parameters()
        ]
    if arguments:
        task["arguments"] = arguments
    return task


def pod_settings(model: ModelIR) -> Object:
    """Workflow-wide settings from the Project's cluster: pod labels, artifact store."""
    settings: Object = {}
    labels = k8s.job_pod_labels(model)
    if labels:
        settings["podMetadata"] = {"labels": labels}
    repository = model.project.artifact_repository
    if repository is not None:
        settings["artifactRepositoryRef"] = {"configMap": repository[0], "key": repository[1]}
    return settings


def workflow_template(model: ModelIR, pipeline: Pipeline) -> Object:
    account = names.derived(model.name, "-training")
    spec: Object = {
        "entrypoint": "pipeline",
        "serviceAccountName": account,
        "arguments": {"parameters": [{"name": n, "value": v} for n, v in pipeline.run_parameters]},
        "activeDeadlineSeconds": WORKFLOW_DEADLINE,
        "podGC": {"strategy": "OnPodSuccess"},
        "ttlStrategy": {
            "secondsAfterSuccess": int(duration_seconds("7d")),
            "secondsAfterFailure": int(duration_seconds("14d")),
        },
        "securityContext": k8s.pod_security(),
        **pod_settings(model),
        "volumes": [k8s.SCRATCH],
        "templates": [
            {"name": "pipeline", "dag": {"tasks": [_task(s) for s in pipeline.steps]}},
            *(_template(s, pipeline, model) for s in pipeline.steps),
        ],
    }
    return k8s.resource(
        "argoproj.io/v1alpha1",
        "WorkflowTemplate",
        k8s.metadata(model, account, "training"),
        spec=spec,
    )


def schedule(
    model: ModelIR,
    suffix: str,
    component: str,
    when: ScheduleIR,
    workflow_spec: Object,
    starting_deadline: int,
) -> Object:
    """A CronWorkflow named after the model and `suffix` (see `cron`)."""
    name = names.derived(model.name, suffix)
    return cron(model, name, component, when, workflow_spec, starting_deadline)


def cron(
    model: ModelIR,
    name: str,
    component: str,
    when: ScheduleIR,
    workflow_spec: Object,
    starting_deadline: int,
) -> Object:
    """A CronWorkflow: never two runs at once, a bounded history, missed runs dropped late."""
    return k8s.resource(
        "argoproj.io/v1alpha1",
        "CronWorkflow",
        k8s.metadata(model, name, component),
        spec={
            "schedules": [when.cron],
            "timezone": when.timezone,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": starting_deadline,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "workflowSpec": workflow_spec,
        },
    )


def cron_workflow(model: ModelIR) -> Object | None:
    training = model.training
    if training is None or training.schedule is None:
        return None
    template = {"workflowTemplateRef": {"name": names.derived(model.name, "-training")}}
    return schedule(model, "-retrain", "training", training.schedule, template, 600)


def rbac(model: ModelIR, suffix: str = "-training", component: str = "training") -> list[Object]:
    """A workflow's account may only report its task results, as Argo's executor needs."""
    name = names.derived(model.name, suffix)
    meta = k8s.metadata(model, name, component)
    return [
        k8s.resource("v1", "ServiceAccount", meta),
        k8s.resource(
            "rbac.authorization.k8s.io/v1",
            "Role",
            meta,
            rules=[
                {
                    "apiGroups": ["argoproj.io"],
                    "resources": ["workflowtaskresults"],
                    "verbs": ["create", "patch"],
                }
            ],
        ),
        k8s.resource(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            meta,
            roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            subjects=[{"kind": "ServiceAccount", "name": name, "namespace": model.namespace}],
        ),
    ]
