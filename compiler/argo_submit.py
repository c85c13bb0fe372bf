"""Submit a run of a training WorkflowTemplate through the Argo Server API."""

from __future__ import annotations

import json
from typing import Any

from compiler import names
from compiler.ir import ModelIR


class SubmitError(Exception):
    pass


def submit_request(model: ModelIR, parameters: list[str]) -> dict[str, Any]:
    """The body of POST /api/v1/workflows/{namespace}/submit."""
    template = names.derived(model.name, "-training")
    return {
        "namespace": model.namespace,
        "resourceKind": "WorkflowTemplate",
        "resourceName": template,
        "submitOptions": {
            "generateName": f"{template}-",
            "labels": f"app.kubernetes.io/name={model.name},kiln.dev/submitted-by=kiln",
            "parameters": parameters,
        },
    }


def submit(model: ModelIR, server: str, token: str, parameters: list[str], verify: bool) -> str:
    """Submit; returns the name of the new Workflow."""
    import argo_workflows
    from argo_workflows.api import workflow_service_api
    from argo_workflows.model.io_argoproj_workflow_v1alpha1_submit_opts import (
        IoArgoprojWorkflowV1alpha1SubmitOpts,
    )
    from argo_workflows.model.io_argoproj_workflow_v1alpha1_workflow_submit_request import (
        IoArgoprojWorkflowV1alpha1WorkflowSubmitRequest,
    )

    request = submit_request(model, parameters)
    options = request["submitOptions"]
    configuration = argo_workflows.Configuration(host=server.rstrip("/"))
    configuration.verify_ssl = verify
    client = argo_workflows.ApiClient(configuration)
    if token:
        bearer = token if token.lower().startswith("bearer ") else f"Bearer {token}"
        client.set_default_header("Authorization", bearer)
    api = workflow_service_api.WorkflowServiceApi(client)
    body = IoArgoprojWorkflowV1alpha1WorkflowSubmitRequest(
        namespace=request["namespace"],
        resource_kind=request["resourceKind"],
        resource_name=request["resourceName"],
        submit_options=IoArgoprojWorkflowV1alpha1SubmitOpts(
            generate_name=options["generateName"],
            labels=options["labels"],
            parameters=options["parameters"],
        ),
    )
    try:
        # The raw answer: the client's models insist on fields a server may leave out.
        response = api.submit_workflow(model.namespace, body, _preload_content=False)
    except argo_workflows.ApiException as exc:
        raise SubmitError(f"Argo Server answered {exc.status}: {exc.reason}; {exc.body}") from exc
    except Exception as exc:  # urllib3 connection errors and the like
        raise SubmitError(f"cannot reach the Argo Server at {server}: {exc}") from exc
    try:
        return str(json.loads(response.data)["metadata"]["name"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SubmitError(
            f"unexpected answer from the Argo Server: {response.data[:200]!r}"
        ) from exc
