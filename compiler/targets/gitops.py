"""Argo CD: the AppProject and the ApplicationSet that reconcile `generated/`.

One ApplicationSet with a list generator makes one Application per (model,
cluster environment), each syncing `generated/<environment>/<model>/` into the
environment's namespace with automated prune and self-heal. The list is written
out rather than discovered from folders, so the namespace of every environment
is explicit and a plan can show exactly which Applications appear or go.

Deleting a model from specs removes its element: the ApplicationSet deletes the
Application and, because `preserveResourcesOnDeletion` is false, the Application's
resources with it. Git stays the single source of truth, and the PR plan lists
such a removal before it is merged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from compiler.artifact import Artifact
from compiler.ir import ModelPlacement, ProjectIR
from compiler.targets.k8s import Object
from compiler.targets.strategies import MANAGED_ROUTES

FOLDER = "argocd"
IN_CLUSTER = "https://kubernetes.default.svc"
ARGOCD_NAMESPACE = "argocd"

# Kiln renders no sync waves. Argo CD waits for every resource of a wave to be healthy
# before it applies the next one, but only while a later wave remains (gitops-engine,
# pkg/sync/sync_context.go: running tasks are waited on when `tasks.multiStep()`). A
# Rollout is Progressing or Suspended for a whole canary, so any wave after it (or
# after anything it waits on) would hold rules, autoscalers and workflows back, keep
# the sync operation running and make Argo CD skip newer commits, a revert included.
# In one wave everything applies at once and the operation ends; the controllers then
# converge on their own (a Rollout waits for its ConfigMap, an HPA for its target).

# Fields the in-cluster controllers own. Argo Rollouts rewrites the route weights of
# the VirtualService and adds its managed routes (mirror, header) at the top of
# spec.http during a rollout; self-heal would put Kiln's 100/0 back, Rollouts would
# restore its own, over and over, and managed routes would be removed. The jq
# expressions select exactly those fields, by the route names Kiln gives them.
CONTROLLER_OWNED = [
    {
        "group": "networking.istio.io",
        "kind": "VirtualService",
        "jqPathExpressions": [
            ".spec.http[].route[].weight",
            *(f'.spec.http[] | select(.name == "{route}")' for route in MANAGED_ROUTES),
        ],
    }
]


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def _labels(project: ProjectIR) -> dict[str, str]:
    return {"app.kubernetes.io/part-of": project.name, "app.kubernetes.io/managed-by": "kiln"}


def app_project(
    project: ProjectIR, models: Sequence[ModelPlacement], artifacts: list[Artifact]
) -> Object:
    kinds = sorted({(_group(a.kind[0]), a.kind[1]) for a in artifacts if a.kind is not None})
    namespaces = sorted({m.namespace for m in models if not m.is_local})
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {
            "name": project.name,
            "namespace": ARGOCD_NAMESPACE,
            "labels": _labels(project),
        },
        "spec": {
            "description": f"Models compiled by Kiln for {project.name}",
            "sourceRepos": [project.git_repo],
            "destinations": [{"server": IN_CLUSTER, "namespace": ns} for ns in namespaces],
            # Kiln emits only namespaced objects: nothing cluster-wide may be synced.
            "clusterResourceWhitelist": [],
            "namespaceResourceWhitelist": [{"group": g, "kind": k} for g, k in kinds],
        },
    }


def application_set(project: ProjectIR, models: Sequence[ModelPlacement]) -> Object:
    elements: list[dict[str, Any]] = [
        {"model": m.name, "environment": m.environment, "namespace": m.namespace}
        for m in models
        if not m.is_local
    ]
    template_labels = {
        **_labels(project),
        "kiln.dev/model": "{{.model}}",
        "kiln.dev/environment": "{{.environment}}",
    }
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ApplicationSet",
        "metadata": {
            "name": project.name,
            "namespace": ARGOCD_NAMESPACE,
            "labels": _labels(project),
        },
        "spec": {
            "goTemplate": True,
            "goTemplateOptions": ["missingkey=error"],
            "generators": [{"list": {"elements": elements}}],
            "syncPolicy": {"preserveResourcesOnDeletion": False},
            "template": {
                "metadata": {
                    "name": "{{.environment}}-{{.model}}",
                    "labels": template_labels,
                    # Deleting an Application deletes what it synced.
                    "finalizers": ["resources-finalizer.argocd.argoproj.io"],
                },
                "spec": {
                    "project": project.name,
                    "source": {
                        "repoURL": project.git_repo,
                        "targetRevision": project.git_revision,
                        "path": f"{project.git_path}/{{{{.environment}}}}/{{{{.model}}}}",
                        # config.pbtxt and pipeline plans are not manifests.
                        "directory": {"recurse": False, "include": "*.yaml"},
                    },
                    "destination": {"server": IN_CLUSTER, "namespace": "{{.namespace}}"},
                    "syncPolicy": {
                        "automated": {"prune": True, "selfHeal": True, "allowEmpty": False},
                        # Without RespectIgnoreDifferences the ignore rules below only hide
                        # the difference; a sync still writes Kiln's values over them.
                        "syncOptions": [
                            "PruneLast=true",
                            "ApplyOutOfSyncOnly=true",
                            "RespectIgnoreDifferences=true",
                        ],
                        "retry": {
                            "limit": 5,
                            "backoff": {"duration": "10s", "factor": 2, "maxDuration": "5m"},
                        },
                    },
                    # Under an autoscaler the workload carries no `replicas` at all (see
                    # serving.workload), so no ignore rule is needed for it, and a model
                    # without one keeps the count its spec gives.
                    "ignoreDifferences": CONTROLLER_OWNED,
                },
            },
        },
    }
