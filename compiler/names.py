"""Names Kiln derives from a model name, and the budget each must fit.

Targets take names from here, and the semantic checks verify every one against
its Kubernetes limit, so a long name fails at compile time, not in the cluster.
"""

from __future__ import annotations

LABEL_MAX = 63
CRONWORKFLOW_MAX = 52  # Argo appends an 11-character suffix to the Workflows it creates

# suffix -> budget of the resulting name
_DERIVED: dict[str, int] = {
    "": LABEL_MAX,  # Rollout, stable Service, label value
    "-canary": LABEL_MAX,
    "-preview": LABEL_MAX,
    "-triton-config": LABEL_MAX,
    "-training": LABEL_MAX,  # WorkflowTemplate
    "-retrain": CRONWORKFLOW_MAX,
    "-monitor": CRONWORKFLOW_MAX,
    "-monitor-config": LABEL_MAX,
    "-dashboard": LABEL_MAX,
    "-analysis": LABEL_MAX,
    "-batch": LABEL_MAX,  # the ServiceAccount of the batch jobs
}
BATCH_JOB = "-batch-"  # + the job's name: its WorkflowTemplate and CronWorkflow


def batch_job(model: str, job: str) -> str:
    """A batch job's workflow name; its budget (CRONWORKFLOW_MAX) is checked per job, by
    compiler/rules/batch.py, since the job name is the spec's."""
    return f"{model}{BATCH_JOB}{job}"


def derived(model: str, suffix: str) -> str:
    if suffix not in _DERIVED:
        raise KeyError(f"undeclared derived name suffix {suffix!r}")
    return model + suffix


def over_budget(model: str) -> list[tuple[str, int]]:
    """Every derived name of `model` that is longer than its budget."""
    return [
        (model + suffix, limit) for suffix, limit in _DERIVED.items() if len(model + suffix) > limit
    ]
