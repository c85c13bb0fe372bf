"""Rules that span several fields of one model in one environment.

Each function takes typed spec objects and returns `Finding`s with the path of
the node at fault; `resolve` places them in the file.
"""

from __future__ import annotations

from compiler.names import over_budget
from compiler.rules import gpus, pod_weights
from compiler.rules.classes import check_classes
from compiler.rules.findings import Finding
from compiler.rules.quality import check_quality, check_quality_environment
from compiler.rules.signals import check_alerts, check_metrics
from compiler.spec.featureset import FeatureSetSpec
from compiler.spec.model import ModelSpec, Rollout, Serving
from compiler.spec.project import Environment, Images, ProjectSpec
from compiler.spec.types import INT32_MAX, image_has_digest

SPEC = ("spec",)


SERVING = (*SPEC, "serving")


def check_serving(serving: Serving) -> list[Finding]:
    """Batch sizes and autoscaling, in that order (GPUs are rules/gpus.py's)."""
    return [*_batching(serving), *_autoscaling(serving)]


def _batching(serving: Serving) -> list[Finding]:
    at = SERVING
    found: list[Finding] = []
    limit = serving.max_batch_size
    batching = serving.dynamic_batching
    if batching is not None:
        if limit == 0:
            found.append(
                Finding(
                    (*at, "dynamic_batching"),
                    "KILN1403",
                    "dynamic_batching needs max_batch_size > 0",
                    "set serving.max_batch_size, or remove dynamic_batching",
                    key=True,
                )
            )
        for i, size in enumerate(batching.preferred_batch_size):
            if limit and size > limit:
                found.append(
                    Finding(
                        (*at, "dynamic_batching", "preferred_batch_size", i),
                        "KILN1404",
                        f"preferred batch size {size} is above max_batch_size {limit}",
                    )
                )
    if serving.warmup is not None:
        for i, size in enumerate(serving.warmup.batch_sizes):
            if size > max(limit, 1):
                found.append(
                    Finding(
                        (*at, "warmup", "batch_sizes", i),
                        "KILN1404",
                        f"warm-up batch size {size} is above max_batch_size {limit}",
                        "without batching (max_batch_size 0) warm up with batch size 1"
                        if limit == 0
                        else "lower it or raise max_batch_size",
                    )
                )
    return found


def _autoscaling(serving: Serving) -> list[Finding]:
    found: list[Finding] = []
    scaling = serving.autoscaling
    if scaling is not None and scaling.metric == "cpu_utilization":
        target = scaling.target
        if not target.is_integer() or target > INT32_MAX:
            found.append(
                Finding(
                    (*SERVING, "autoscaling", "target"),
                    "KILN1105",
                    f"a cpu_utilization target is a whole percentage that Kubernetes keeps "
                    f"in an int32 (averageUtilization); {target:g} is not one",
                    f"write a whole number from 1 to {INT32_MAX}, such as 70",
                )
            )
    if serving.autoscaling is not None and serving.replicas.min >= serving.replicas.max:
        found.append(
            Finding(
                (*SERVING, "autoscaling"),
                "KILN1411",
                f"autoscaling has no room: replicas min {serving.replicas.min} "
                f"and max {serving.replicas.max}",
                "raise replicas.max or remove autoscaling",
                key=True,
            )
        )
    return found


ROLLOUT = (*SPEC, "rollout")


def check_rollout(spec: ModelSpec) -> list[Finding]:
    """Fields that belong to another strategy, then what the analysis would check."""
    return [
        *_strategy_fields(spec.rollout),
        *_canary_weights(spec.rollout),
        *_weights_by_pod_count(spec),
        *_analysis(spec),
        *check_quality(spec),
    ]


def _canary_weights(rollout: Rollout) -> list[Finding]:
    """Weights only go up: a lower weight after a higher one moves live traffic back to
    the old version in the middle of a rollout, which no one means to ask for."""
    found: list[Finding] = []
    highest, at_step = 0, 0
    for i, step in enumerate(rollout.steps or ()):
        if step.weight is None:
            continue
        if step.weight < highest:
            found.append(
                Finding(
                    (*ROLLOUT, "steps", i, "weight"),
                    "KILN1414",
                    f"canary weight {step.weight}% comes after {highest}% (step {at_step + 1}): "
                    "traffic would move back to the old version mid-rollout",
                    "order the steps by rising weight; to stop a rollout, abort it",
                )
            )
        else:
            highest, at_step = step.weight, i
    return found


def _weights_by_pod_count(spec: ModelSpec) -> list[Finding]:
    """Without traffic routing a weight is a share of pods: one that the replica count
    cannot give would silently become another (20% of 2 pods is 1 pod of 3, 33%)."""
    rollout, replicas = spec.rollout, spec.serving.replicas.min
    if rollout.strategy != "canary" or rollout.traffic != "replicas" or replicas < 1:
        return []  # with no pods at rest there is nothing to split
    found: list[Finding] = []
    for i, step in enumerate(rollout.steps or ()):
        if step.weight is None or pod_weights.expressible(replicas, step.weight):
            continue
        canary, total = pod_weights.pod_split(replicas, step.weight)
        choices = " or ".join(f"{w}%" for w in pod_weights.nearest(replicas, step.weight))
        found.append(
            Finding(
                (*ROLLOUT, "steps", i, "weight"),
                "KILN1421",
                f"with traffic split by pod count and {replicas} replica(s), weight "
                f"{step.weight}% would be {canary} canary pod(s) of {total}, "
                f"{pod_weights.share(replicas, step.weight):.0f}% of the traffic",
                f"use {choices}, change replicas.min, or set rollout.traffic: istio "
                "to split by request",
            )
        )
    return found


def _strategy_fields(rollout: Rollout) -> list[Finding]:
    at = ROLLOUT
    found: list[Finding] = []
    owned = {"steps": "canary", "shadow": "shadow", "ab": "ab", "blue_green": "blue_green"}
    for field, strategy in owned.items():
        if getattr(rollout, field) is not None and rollout.strategy != strategy:
            found.append(
                Finding(
                    (*at, field),
                    "KILN1405",
                    f"`{field}` applies to the {strategy} strategy, not {rollout.strategy}",
                    key=True,
                )
            )
    if rollout.strategy in ("shadow", "ab") and rollout.traffic == "replicas":
        found.append(
            Finding(
                (*at, "traffic"),
                "KILN1406",
                f"the {rollout.strategy} strategy needs request routing, which "
                "`traffic: replicas` cannot do",
                "set rollout.traffic: istio",
            )
        )
    if rollout.strategy == "recreate" and rollout.analysis is not None:
        found.append(
            Finding(
                (*at, "analysis"),
                "KILN1405",
                "`analysis` applies to canary, blue_green, shadow and ab; recreate replaces "
                "every pod at once and runs none",
                "remove rollout.analysis or choose another strategy",
                key=True,
            )
        )
    if rollout.strategy == "ab" and rollout.ab is None:
        found.append(
            Finding(
                (*at, "strategy"),
                "KILN1413",
                "the ab strategy needs rollout.ab (header, value, weight)",
                "add rollout.ab: {header: x-cohort, value: beta}",
            )
        )
    return found


def _analysis(spec: ModelSpec) -> list[Finding]:
    rollout = spec.rollout
    at = ROLLOUT
    found: list[Finding] = []
    analysis = rollout.analysis
    if analysis is not None and not analysis.smoke_test:
        slo = spec.serving.slo
        quality = (
            analysis.max_prediction_shift,
            analysis.min_agreement,
            analysis.max_mean_abs_difference,
        )
        operational = (analysis.max_error_rate, analysis.max_latency_p99_ms, slo)
        if all(t is None for t in (*operational, *quality)):
            found.append(
                Finding(
                    (*at, "analysis"),
                    "KILN1412",
                    "the analysis checks nothing: no error-rate, latency or quality "
                    "threshold, no serving.slo, and smoke_test is off",
                    key=True,
                )
            )
    if (
        analysis is not None
        and analysis.failure_limit + analysis.inconclusive_limit >= analysis.count
    ):
        # Argo Rollouts calls a metric Successful once `count` measurements are taken and
        # neither limit is exceeded, whatever the others were: with limits this wide, a run
        # of failed and empty measurements would pass.
        found.append(
            Finding(
                (*at, "analysis", "count"),
                "KILN1418",
                f"count {analysis.count} is not above failure_limit "
                f"{analysis.failure_limit} plus inconclusive_limit "
                f"{analysis.inconclusive_limit}, so the analysis could pass without one "
                "good measurement",
                f"raise count to at least "
                f"{analysis.failure_limit + analysis.inconclusive_limit + 1}, or lower the limits",
            )
        )
    if rollout.analysis is None:
        for i, step in enumerate(rollout.steps or ()):
            if step.analysis:
                found.append(
                    Finding(
                        (*at, "steps", i, "analysis"),
                        "KILN1410",
                        "this step runs the analysis, but rollout.analysis is not set",
                    )
                )
    return found


def check_columns(spec: ModelSpec, features: FeatureSetSpec) -> list[Finding]:
    names = {f.name for f in features.features}
    found: list[Finding] = []
    if spec.target in names:
        found.append(
            Finding((*SPEC, "target"), "KILN1310", f"target `{spec.target}` is also a feature")
        )
    if spec.monitoring is not None:
        columns = spec.monitoring.columns
        for field in ("prediction", "timestamp", "target"):
            value = getattr(columns, field)
            if value is not None and value in names and field != "timestamp":
                found.append(
                    Finding(
                        (*SPEC, "monitoring", "columns", field),
                        "KILN1310",
                        f"monitoring column `{value}` is also a feature",
                    )
                )
    return found


def peak_gpus(spec: ModelSpec) -> int:
    """GPUs in use at the busiest moment of a rollout."""
    replicas = spec.serving.replicas.max
    strategy = spec.rollout.strategy
    if strategy == "recreate":
        pods = replicas
    elif strategy == "canary" and spec.rollout.traffic == "replicas":
        pods = replicas + 1  # Kiln renders maxSurge 1 for a canary by pod count
    else:
        # With traffic routing (and for blue-green) the stable ReplicaSet stays at full
        # size while the new one grows to full size before the switch.
        pods = 2 * replicas
    return pods * spec.serving.resources.gpus


def check_signatures(spec: ModelSpec, environment: Environment) -> list[Finding]:
    """Under require_signatures the served version must name its signature bundle (in a
    local environment too: `kiln serve` verifies it as the serving pod does)."""
    if not environment.policy.require_signatures:
        return []
    return [
        Finding(
            (*SPEC, "versions", i, "artifact"),
            "KILN1608",
            f"environment {environment.name} requires signatures; version {version.version} "
            "names no artifact.signature",
            key=True,
        )
        for i, version in enumerate(spec.versions)
        if version.version == spec.serving.version and version.artifact.signature is None
    ]


def check_publish_signing(spec: ModelSpec, environment: Environment) -> list[Finding]:
    """A cluster environment that requires signatures should give the training workflow's
    publish step a way to sign: a key Secret, or a keyless identity it trusts. A warning,
    not an error: a version can still be signed after publishing, before it is served."""
    signing = environment.signing
    if (
        spec.training is None
        or environment.kind == "local"
        or not environment.policy.require_signatures
        or signing.key_secret is not None
        or signing.identities
    ):
        return []
    return [
        Finding(
            (*SPEC, "training"),
            "KILN1631",
            f"environment {environment.name} requires signatures, but its publish step has "
            "no signing.key_secret and the environment trusts no keyless identity: what this "
            "training publishes there is unsigned, and cannot be served",
            "give the environment `signing: {key_secret: {name: SECRET, key: KEY}}`, a Secret "
            "holding the private half of one of its public_keys",
            key=True,
            warning=True,
        )
    ]


def check_environment(spec: ModelSpec, environment: Environment) -> list[Finding]:
    signatures = check_signatures(spec, environment) + check_publish_signing(spec, environment)
    signatures += check_quality_environment(spec, environment)
    if environment.kind == "local":
        return signatures  # the other policies and quotas govern cluster environments
    found: list[Finding] = signatures + _step_digests(spec, environment)
    policy = environment.policy
    name = environment.name
    if policy.require_digests:
        # The built-in trainer runs in the runtime image, whose pin is checked with the
        # project's images.
        image = spec.training.image if spec.training is not None else None
        if image is not None and not image_has_digest(image):
            found.append(
                Finding(
                    (*SPEC, "training", "image"),
                    "KILN1601",
                    f"environment {name} requires digests; pin the training image by digest",
                )
            )
        for i, version in enumerate(spec.versions):
            if version.version == spec.serving.version and version.artifact.sha256 is None:
                found.append(
                    Finding(
                        (*SPEC, "versions", i, "artifact"),
                        "KILN1602",
                        f"environment {name} requires digests; version {version.version} "
                        "has no artifact.sha256",
                        key=True,
                    )
                )
    if spec.serving.replicas.min < policy.min_replicas:
        found.append(
            Finding(
                (*SPEC, "serving", "replicas", "min"),
                "KILN1603",
                f"environment {name} requires at least {policy.min_replicas} replicas, "
                f"found {spec.serving.replicas.min}",
            )
        )
    if policy.require_analysis and not _has_analysis(spec):
        found.append(
            Finding(
                (*SPEC, "rollout"),
                "KILN1604",
                f"environment {name} requires an analysis before full traffic",
                "add rollout.analysis (and an `analysis: true` step for canary)",
                key=True,
            )
        )
    quota = environment.gpu.quota
    if quota is not None and peak_gpus(spec) > quota:
        found.append(
            Finding(
                (*SPEC, "serving", "resources", "gpus"),
                "KILN1407",
                f"a {spec.rollout.strategy} rollout needs up to {peak_gpus(spec)} GPUs in "
                f"{name}, above its quota of {quota}",
                "lower replicas.max or GPUs per replica, or raise the quota",
            )
        )
    return found


def _has_analysis(spec: ModelSpec) -> bool:
    rollout = spec.rollout
    if rollout.analysis is None or rollout.strategy == "recreate":
        return False
    if rollout.strategy == "canary":
        return any(step.analysis for step in rollout.steps or ())
    return True


def check_names(model: str) -> list[Finding]:
    return [
        Finding(
            ("metadata", "name"),
            "KILN1501",
            f"derived name {name!r} is {len(name)} characters, over its limit of {limit}",
            "shorten the model name",
        )
        for name, limit in over_budget(model)
    ]


def check_model(
    spec: ModelSpec,
    features: FeatureSetSpec,
    environment: Environment,
    routes: frozenset[str],
) -> list[Finding]:
    """Every rule of one model in one environment."""
    return [
        *gpus.check_gpus(spec, environment),
        *check_serving(spec.serving),
        *check_rollout(spec),
        *check_columns(spec, features),
        *check_classes(spec),
        *check_metrics(spec),
        *check_alerts(spec, features, routes),
        *check_environment(spec, environment),
    ]


def check_project_signing(project: ProjectSpec) -> list[Finding]:
    """An environment that requires signatures must trust someone to make them."""
    return [
        Finding(
            ("spec", "environments", i, "policy", "require_signatures"),
            "KILN1609",
            f"environment {environment.name} requires signatures but its signing section "
            "trusts no public key or identity, so no version could ever be served",
        )
        for i, environment in enumerate(project.environments)
        if environment.policy.require_signatures
        and environment.kind != "local"  # `kiln serve` trusts this machine's own key
        and not (environment.signing.public_keys or environment.signing.identities)
    ]


def check_local_signing_keys(project: ProjectSpec) -> list[Finding]:
    """`kiln run --local` signs with this machine's key pair; a key Secret there would be
    read by nothing, so it is refused rather than ignored."""
    return [
        Finding(
            ("spec", "environments", i, "signing", "key_secret"),
            "KILN1632",
            f"environment {environment.name} has kind local: its runs sign with this machine's key "
            "pair (or $KILN_SIGNING_KEY), and no pod reads a Secret",
            "remove key_secret; declare it in a cluster environment",
            key=True,
        )
        for i, environment in enumerate(project.environments)
        if environment.kind == "local" and environment.signing.key_secret is not None
    ]


def check_project_images(project: ProjectSpec) -> list[Finding]:
    """Images must carry digests where an environment requires them."""
    strict = [e.name for e in project.environments if e.policy.require_digests]
    if not strict:
        return []
    images: Images = project.images
    return [
        Finding(
            ("spec", "images", label),
            "KILN1601",
            f"environment {strict[0]} requires digests, and the {label} image {image!r} has none",
            "pin it as image@sha256:...",
        )
        for label, image in (("runtime", images.runtime), ("triton", images.triton))
        if not image_has_digest(image)
    ]


def _step_digests(spec: ModelSpec, environment: Environment) -> list[Finding]:
    """An ensemble step's artifact needs a sha256 where the environment requires digests,
    as a version's does; and a python step needs one wherever signatures are verified:
    the rollout's smoke Job fetches each step again and runs a python step's model.py in
    process, checking its digest but not its signature."""
    if spec.ensemble is None:
        return []
    signing = environment.signing
    trusts = bool(signing.public_keys or signing.identities)
    verified = trusts or environment.policy.require_signatures
    found = []
    for i, step in enumerate(spec.ensemble.steps):
        if step.artifact.sha256 is not None:
            continue
        if environment.policy.require_digests:
            why = f"environment {environment.name} requires digests"
        elif verified and step.format == "python":
            why = (
                f"environment {environment.name} verifies signatures, and the smoke Job runs "
                "a python step's code after checking only its digest"
            )
        else:
            continue
        found.append(
            Finding(
                (*SPEC, "ensemble", "steps", i, "artifact"),
                "KILN1602",
                f"{why}; step {step.name} has no artifact.sha256",
                key=True,
            )
        )
    return found
