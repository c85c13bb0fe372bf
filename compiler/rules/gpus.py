"""Rules about GPUs: what a model asks for, what its instance groups use, and what
its environment has.

A GPU setting that Triton or Kubernetes would silently not use is an error, as is
a model that needs GPUs in an environment without them: there the pods would wait
for a node that never comes (or, locally, run on the CPU without a word).
"""

from __future__ import annotations

from compiler.diagnostics import Path_
from compiler.rules.findings import Finding
from compiler.spec.model import ModelSpec, Serving
from compiler.spec.project import Environment

SERVING = ("spec", "serving")


def has_gpus(environment: Environment) -> bool:
    """Whether pods in `environment` may ask for GPUs: as the Project declares, else a
    cluster has them and the local environment (Triton on this machine's CPU) does not."""
    declared = environment.gpu.available
    return environment.kind == "cluster" if declared is None else declared


def check_gpus(spec: ModelSpec, environment: Environment) -> list[Finding]:
    """GPU instance groups against the GPUs asked for, then against the environment."""
    serving = spec.serving
    found = [*_gpu_groups(serving), *_settings_without_gpus(serving), *_gpu_metric(serving)]
    if not has_gpus(environment):
        found.extend(_needs_gpus(spec, environment))
    return found


def _gpu_groups(serving: Serving) -> list[Finding]:
    found: list[Finding] = []
    gpus = serving.resources.gpus
    for i, group in enumerate(serving.instance_groups or ()):
        if group.kind == "gpu" and gpus < 1:
            found.append(
                Finding(
                    (*SERVING, "instance_groups", i, "kind"),
                    "KILN1401",
                    "a gpu instance group needs GPUs, but serving.resources.gpus is 0",
                    "set serving.resources.gpus to 1 or more, or use kind: cpu",
                )
            )
        for j, index in enumerate(group.gpus or ()):
            if group.kind == "gpu" and gpus >= 1 and index >= gpus:
                found.append(
                    Finding(
                        (*SERVING, "instance_groups", i, "gpus", j),
                        "KILN1402",
                        f"GPU index {index} is out of range: a replica has {gpus} GPU(s)",
                        f"use indices 0 to {gpus - 1}",
                    )
                )
    return found


def _settings_without_gpus(serving: Serving) -> list[Finding]:
    """GPU settings Triton or Kubernetes would silently not use."""
    found: list[Finding] = []
    groups = serving.instance_groups or ()
    for i, group in enumerate(groups):
        if group.kind == "cpu" and group.gpus:
            found.append(
                Finding(
                    (*SERVING, "instance_groups", i, "gpus"),
                    "KILN1416",
                    "a cpu instance group runs on no GPU; its GPU indices would be ignored",
                    "remove `gpus`, or make the group `kind: gpu`",
                    key=True,
                )
            )
    gpus = serving.resources.gpus
    if gpus and groups and all(group.kind == "cpu" for group in groups):
        found.append(
            Finding(
                (*SERVING, "resources", "gpus"),
                "KILN1417",
                f"each replica asks for {gpus} GPU(s), but every instance group runs on "
                "CPU: the GPUs would be reserved and sit idle",
                "set resources.gpus: 0, or add an instance group of kind gpu",
            )
        )
    return found


def _gpu_metric(serving: Serving) -> list[Finding]:
    """Triton reports GPU utilisation only of GPUs it runs on: without, the query is
    empty and the autoscaler would never scale."""
    scaling = serving.autoscaling
    if scaling is None or scaling.metric != "gpu_utilization" or serving.resources.gpus:
        return []
    return [
        Finding(
            (*SERVING, "autoscaling", "metric"),
            "KILN1420",
            "gpu_utilization is measured on GPUs, and this model runs on CPU "
            "(serving.resources.gpus is 0)",
            "scale on queue_time_us or cpu_utilization, or give the model GPUs",
        )
    ]


def _needs_gpus(spec: ModelSpec, environment: Environment) -> list[Finding]:
    """Every place the model asks for GPUs, in an environment that has none."""
    name = environment.name
    where = (
        f"the local environment `{name}` has no GPUs: it runs on this machine's CPU"
        if environment.kind == "local"
        else f"environment `{name}` has no GPUs: its gpu.available is false in the Project"
    )
    to_cpu = (
        f"move the model to CPU in spec.environments.{name}: serving: {{resources: "
        "{gpus: 0}, instance_groups: [{kind: cpu}]}"
    )
    found: list[Finding] = []
    path: Path_
    if spec.serving.resources.gpus:
        path = (*SERVING, "resources", "gpus")
        found.append(Finding(path, "KILN1419", f"serving asks for GPUs, but {where}", to_cpu))
    for i, group in enumerate(spec.serving.instance_groups or ()):
        if group.kind == "gpu":
            path = (*SERVING, "instance_groups", i, "kind")
            message = f"a gpu instance group, but {where}"
            found.append(Finding(path, "KILN1419", message, to_cpu))
    if spec.training is not None and spec.training.resources.gpus:
        path = ("spec", "training", "resources", "gpus")
        hint = f"in spec.environments.{name}, set training: {{resources: {{gpus: 0}}}}"
        found.append(Finding(path, "KILN1419", f"training asks for GPUs, but {where}", hint))
    return found


def check_local_gpus(environments: list[Environment]) -> list[Finding]:
    """A local environment cannot promise GPUs: its Triton runs on the CPU."""
    return [
        Finding(
            ("spec", "environments", i, "gpu", "available"),
            "KILN1419",
            f"the local environment `{environment.name}` runs Triton on this machine's "
            "CPU; it has no GPUs to offer",
            "remove gpu.available, or set it to false",
        )
        for i, environment in enumerate(environments)
        if environment.kind == "local" and environment.gpu.available
    ]
