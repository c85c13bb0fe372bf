"""Argo Workflows for batch scoring: a WorkflowTemplate per job, a CronWorkflow for a
scheduled one, and the jobs' least-privilege account.

The job runs `runtime.serving.batch` in Kiln's runtime image with the flags of
`runtime.contract.batch.BATCH`: the artifact of the job's version with its digest and
signature bundle (checked as the serving pod checks them), the environment's trust,
the signature, the columns the monitor reads, and the input and output placed under
the data store. Spec values reach the command as literals (`$` doubled for Kubernetes;
`{{` is refused in specs), and Argo substitutes only Kiln's own `{{workflow.name}}`,
the run's name in the output folder.
"""

from __future__ import annotations

import json

from compiler import names
from compiler.ir import ArtifactIR, ModelIR
from compiler.ir.batch import BatchJobIR
from compiler.targets import k8s, serving, workflows
from compiler.targets.k8s import Object
from compiler.targets.pipeline import data_uri
from runtime.contract.batch import ARGO_RUN, BATCH
from runtime.contract.durations import duration_seconds

COMPONENT = "batch"
ACCOUNT_SUFFIX = "-batch"
DEADLINE = 6 * 3600  # a run that has not finished by then is stuck, not slow
STARTING_DEADLINE = 600


def _artifact(model: ModelIR, version: int) -> ArtifactIR:
    # compiler/rules/batch.py refused a job whose version is not declared.
    return next(a for a in model.versions if a.version == version)


def flags(model: ModelIR, job: BatchJobIR, run: str) -> dict[str, str | None]:
    """The scorer's flags for a job in this environment; `kiln predict` runs the same
    ones on this machine, with its own files in place of the job's locations."""
    artifact = _artifact(model, job.version)
    columns = model.batch_columns
    assert columns is not None  # set for every resolved model
    checks_signatures = serving.verifies_signatures(model)
    document = serving.signature(model).document()
    return {
        "--model": artifact.uri,
        "--sha256": artifact.sha256,
        "--bundle": artifact.signature if checks_signatures else None,
        "--trust": model.environment.trust.to_json() if checks_signatures else None,
        "--signature": json.dumps(document, sort_keys=True, separators=(",", ":")),
        "--task": model.task,
        "--columns": columns.to_json(),
        "--input": data_uri(model, job.input),
        "--format": job.format,
        "--output": data_uri(model, job.output),
        "--run": run,
        "--chunk-rows": str(job.chunk_rows),
    }


def _template(model: ModelIR, job: BatchJobIR) -> Object:
    resources = {"cpu": job.cpu, "memory": job.memory}
    return {
        "name": "score",
        "container": {
            "image": model.project.images.runtime,
            "command": k8s.literals(BATCH.command(flags(model, job, ARGO_RUN))),
            "resources": {"requests": resources, "limits": dict(resources)},
            "securityContext": k8s.container_security(),
            "volumeMounts": [k8s.SCRATCH_MOUNT],
        },
        "activeDeadlineSeconds": str(DEADLINE),
        # Retry a lost pod, never a run that found the rows or the model unusable.
        "retryStrategy": {"limit": "2", "retryPolicy": "OnError"},
    }


def workflow_template(model: ModelIR, job: BatchJobIR) -> Object:
    spec: Object = {
        "entrypoint": "score",
        "serviceAccountName": names.derived(model.name, ACCOUNT_SUFFIX),
        "activeDeadlineSeconds": DEADLINE,
        "podGC": {"strategy": "OnPodSuccess"},
        "ttlStrategy": {
            "secondsAfterSuccess": int(duration_seconds("3d")),
            "secondsAfterFailure": int(duration_seconds("7d")),
        },
        "securityContext": k8s.pod_security(),
        **workflows.pod_settings(model),
        "volumes": [k8s.SCRATCH],
        "templates": [_template(model, job)],
    }
    name = names.batch_job(model.name, job.name)
    return k8s.resource(
        "argoproj.io/v1alpha1",
        "WorkflowTemplate",
        k8s.metadata(model, name, COMPONENT),
        spec=spec,
    )


def cron_workflow(model: ModelIR, job: BatchJobIR) -> Object | None:
    """The schedule of a scheduled job: runs of its WorkflowTemplate, never two at once."""
    if job.schedule is None:
        return None
    name = names.batch_job(model.name, job.name)
    template = {"workflowTemplateRef": {"name": name}}
    return workflows.cron(model, name, COMPONENT, job.schedule, template, STARTING_DEADLINE)


def rbac(model: ModelIR) -> list[Object]:
    return workflows.rbac(model, ACCOUNT_SUFFIX, COMPONENT)
