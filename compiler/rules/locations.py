"""Where a cluster environment's jobs may read and send: data under the Project's data
store, artifacts under its model store, secrets over https only.

A job in the cluster runs with mounted Secrets and the cluster's network. A data URI
of `file:///var/run/secrets/...` would have the monitor read a Secret as CSV; an
`http://` one reaches whatever the pod can (docs/security.md, "Trust boundaries").
So in a cluster environment every location must sit under its store, and a store
must use a scheme that names an object store or https; the local environment (this
machine) is the user's own and is not restricted here.
"""

from __future__ import annotations

from urllib.parse import unquote

from compiler.diagnostics import Path_
from compiler.rules.findings import Finding
from compiler.spec.model import ModelSpec
from compiler.spec.project import AlertRoute, Environment, ProjectSpec, Storage

SPEC = ("spec",)
# Schemes of stores a cluster job may read: object stores and https (never file:// on
# the node, nor http://). A relative root (files that travel with the repository and
# the job's image) is allowed too, as long as no '..' step leads out of it.
CLUSTER_SCHEMES = ("s3", "gs", "gcs", "az", "abfs", "https")


def place_under(uri: str, root: str) -> str:
    """A URI in an environment: an absolute one as it is, a relative one under `root`."""
    if "://" in uri:
        return uri
    return f"{root.rstrip('/')}/{uri}"


def inside(location: str, root: str) -> bool:
    """Whether `location` is `root` or below it, with no '.' or '..' step (encoded or not)
    that could lead out."""
    base = root.rstrip("/")
    if location != base and not location.startswith(base + "/"):
        return False
    return _no_step_out(location[len(base) :])


def _no_step_out(path: str) -> bool:
    """Whether a path has no '.' or '..' step, written plainly or percent-encoded."""
    return all(unquote(part) not in (".", "..") for part in path.split("/"))


def check_storage(project: ProjectSpec) -> list[Finding]:
    """Each cluster environment's stores use a scheme allowed there."""
    found: list[Finding] = []
    for i, environment in enumerate(project.environments):
        if environment.kind == "local":
            continue
        own = environment.storage is not None
        storage = environment.storage or project.storage
        at = ("spec", "environments", i, "storage") if own else ("spec", "storage")
        for field in ("models", "data"):
            root: str = getattr(storage, field)
            if "://" in root:
                scheme = root.partition("://")[0]
                allowed = scheme in CLUSTER_SCHEMES
                what = f"uses {scheme}"
            else:
                allowed = not root.startswith("/") and _no_step_out(root)
                what = "leaves the repository with '..'"
            if not allowed:
                message = (
                    f"the {field} store {root!r} of cluster environment `{environment.name}` "
                    f"{what}; its jobs may read only {', '.join(CLUSTER_SCHEMES)} or a "
                    "relative path"
                )
                hint = "use an object store (s3://, gs://, az://) or https://"
                found.append(Finding((*at, field), "KILN1611", message, hint))
    return found


def check_locations(spec: ModelSpec, environment: Environment, storage: Storage) -> list[Finding]:
    """Artifacts under the model store, data under the data store, in a cluster."""
    if environment.kind == "local":
        return []
    wanted: list[tuple[Path_, str, str, str]] = [
        ((*SPEC, "versions", i, "artifact", "uri"), v.artifact.uri, storage.models, "model")
        for i, v in enumerate(spec.versions)
    ]
    if spec.training is not None and spec.training.data is not None:
        training: Path_ = (*SPEC, "training", "data", "uri")
        wanted.append((training, spec.training.data.uri, storage.data, "data"))
    if spec.monitoring is not None:
        for role in ("reference", "analysis"):
            dataset = getattr(spec.monitoring, role)
            if dataset is None:  # the captured traffic, under the data store by definition
                continue
            uri = dataset.uri
            wanted.append(((*SPEC, "monitoring", role, "uri"), uri, storage.data, "data"))
    for i, job in enumerate(spec.batch):
        wanted.append(((*SPEC, "batch", i, "input", "uri"), job.input.uri, storage.data, "data"))
        wanted.append(((*SPEC, "batch", i, "output"), job.output, storage.data, "data"))
    found = []
    for at, uri, root, store in wanted:
        if not inside(place_under(uri, root), root):
            # No environment named: the same problem in several is one line naming them.
            message = (
                f"{uri!r} is outside the {store} store {root!r}; a cluster environment's "
                "jobs read only from there"
            )
            hint = f"write a path relative to the {store} store, or a URI under it"
            found.append(Finding(at, "KILN1610", message, hint))
    return found


def check_routes(
    spec: ModelSpec, environment: Environment, routes: dict[str, AlertRoute]
) -> list[Finding]:
    """A route that sends secrets (a webhook's headers) uses https in a cluster."""
    if environment.kind == "local":
        return []
    found = []
    for i, alert in enumerate(spec.alerts):
        route = routes.get(alert.route)
        if route is None or route.webhook is None or not route.webhook.headers:
            continue
        # A URL kept in a Secret (url_secret) is checked by the job when it sends.
        if route.webhook.url is not None and not route.webhook.url.startswith("https://"):
            message = (
                f"route `{route.name}` sends headers from Secrets to {route.webhook.url!r}; "
                "in a cluster environment that needs https"
            )
            hint = "change the route's webhook.url to https://"
            found.append(Finding((*SPEC, "alerts", i, "route"), "KILN1612", message, hint))
    return found


def check_featureset_source(source_uri: str, project: ProjectSpec) -> list[Finding]:
    """A FeatureSet's source is what the training pipeline reads, in every environment:
    in each cluster environment it must sit under that environment's data store. The
    problem is the FeatureSet's, so it is reported in its file, once, naming the
    environments."""
    outside = [
        environment.name
        for environment in project.environments
        if environment.kind != "local"
        and not inside(
            place_under(source_uri, (environment.storage or project.storage).data),
            (environment.storage or project.storage).data,
        )
    ]
    if not outside:
        return []
    message = (
        f"source {source_uri!r} is outside the data store of cluster environment(s) "
        f"{', '.join(outside)}; their training jobs read only from there"
    )
    hint = "write the source relative to the data store, or as a URI under it"
    return [Finding(("spec", "source", "uri"), "KILN1610", message, hint)]
