"""Argo Rollouts strategies: how traffic moves from the stable version to the new one.

canary     weighted steps with pauses and analysis, through Istio or by pod counts;
blue_green a preview Service, pre-promotion analysis, then the switch;
shadow     mirror a share of live traffic to the new version, analyse, then promote;
ab         route a header-selected cohort (and a share of the rest), analyse, promote.
"""

from __future__ import annotations

from compiler import names
from compiler.ir import ModelIR
from compiler.ir.serving import DurationIR
from compiler.targets.k8s import Object

MIRROR_ROUTE = "mirror"
COHORT_ROUTE = "ab-cohort"
# The routes Argo Rollouts adds to the VirtualService and removes again by itself.
MANAGED_ROUTES = (MIRROR_ROUTE, COHORT_ROUTE)
PRIMARY_ROUTE = "primary"


def analysis_step(model: ModelIR) -> Object:
    return {"analysis": {"templates": [{"templateName": names.derived(model.name, "-analysis")}]}}


def _pause(duration: DurationIR) -> Object:
    # Whole seconds, at least one: a shorter pause would be no pause at all.
    return {"pause": {"duration": f"{max(1, int(duration.seconds))}s"}}


def _traffic_routing(model: ModelIR, managed: list[str]) -> Object:
    routing: Object = {}
    if managed:
        routing["managedRoutes"] = [{"name": route} for route in managed]
    # One route for HTTP and gRPC: Rollouts copies the first route's destination port
    # into every managed route, so the route names no port (see traffic.virtual_service).
    routing["istio"] = {"virtualService": {"name": model.name, "routes": [PRIMARY_ROUTE]}}
    return routing


def _services(model: ModelIR) -> Object:
    return {"canaryService": names.derived(model.name, "-canary"), "stableService": model.name}


def _canary_steps(model: ModelIR) -> list[Object]:
    rendered: list[Object] = []
    for step in model.rollout.steps:  # the default path when none were written
        if step.weight is not None:
            rendered.append({"setWeight": step.weight})
        if step.pause is not None:
            rendered.append(_pause(step.pause))
        if step.analysis:
            rendered.append(analysis_step(model))
    return rendered


def _canary(model: ModelIR) -> Object:
    if model.rollout.traffic == "istio":
        return {
            **_services(model),
            "steps": _canary_steps(model),
            "trafficRouting": _traffic_routing(model, []),
        }
    # Without a mesh the weight is the share of pods behind `<model>`, which must keep
    # selecting both ReplicaSets: a stableService would narrow it to the old pods only.
    # The canary Service still reaches the new pods alone, for the smoke test.
    return {
        "canaryService": names.derived(model.name, "-canary"),
        "steps": _canary_steps(model),
        "maxSurge": 1,
        "maxUnavailable": 0,
    }


def _shadow(model: ModelIR) -> Object:
    shadow = model.rollout.shadow
    percent = shadow.mirror_percent
    steps: list[Object] = [
        # Mirrored traffic needs capacity although the canary takes no live traffic.
        {"setCanaryScale": {"weight": percent}},
        {
            "setMirrorRoute": {
                "name": MIRROR_ROUTE,
                "percentage": percent,
                "match": [{"path": {"prefix": "/"}}],
            }
        },
        _pause(shadow.duration),
    ]
    if model.rollout.analysis is not None:
        steps.append(analysis_step(model))
    steps += [
        {"setMirrorRoute": {"name": MIRROR_ROUTE}},
        {"setCanaryScale": {"matchTrafficWeight": True}},
    ]
    return {
        **_services(model),
        "trafficRouting": _traffic_routing(model, [MIRROR_ROUTE]),
        "steps": steps,
    }


def _ab(model: ModelIR) -> Object:
    ab = model.rollout.ab
    if ab is None:  # the spec requires settings for ab; guard for type checkers
        raise ValueError("ab strategy without rollout.ab settings")
    steps: list[Object] = [
        {"setCanaryScale": {"weight": max(ab.weight, 10)}},
        {
            "setHeaderRoute": {
                "name": COHORT_ROUTE,
                "match": [{"headerName": ab.header, "headerValue": {"exact": ab.value}}],
            }
        },
    ]
    if ab.weight:
        steps.append({"setWeight": ab.weight})
    steps.append(_pause(ab.duration))
    if model.rollout.analysis is not None:
        steps.append(analysis_step(model))
    steps += [
        {"setHeaderRoute": {"name": COHORT_ROUTE}},
        {"setCanaryScale": {"matchTrafficWeight": True}},
    ]
    return {
        **_services(model),
        "trafficRouting": _traffic_routing(model, [COHORT_ROUTE]),
        "steps": steps,
    }


def _blue_green(model: ModelIR) -> Object:
    settings = model.rollout.blue_green
    blue_green: Object = {
        "activeService": model.name,
        "previewService": names.derived(model.name, "-preview"),
        "autoPromotionEnabled": settings.auto_promotion,
        "scaleDownDelaySeconds": int(settings.scale_down_delay.seconds),
    }
    if model.serving.autoscaling is not None:
        # The preview would otherwise start at the autoscaler's current count (up to
        # replicas.max GPU pods) for a version that takes no live traffic yet. Rollouts
        # scales it to full size on promotion, before the switch.
        blue_green["previewReplicaCount"] = max(1, model.serving.replicas.min)
    if model.rollout.analysis is not None:
        blue_green["prePromotionAnalysis"] = {
            "templates": [{"templateName": names.derived(model.name, "-analysis")}]
        }
    return blue_green


def strategy(model: ModelIR) -> Object:
    kind = model.rollout.strategy
    if kind == "blue_green":
        return {"blueGreen": _blue_green(model)}
    if kind == "shadow":
        return {"canary": _shadow(model)}
    if kind == "ab":
        return {"canary": _ab(model)}
    return {"canary": _canary(model)}


def canary_service(model: ModelIR) -> str | None:
    """The Service that reaches the new version during a rollout, if there is one."""
    kind = model.rollout.strategy
    if kind == "recreate":
        return None
    if kind == "blue_green":
        return names.derived(model.name, "-preview")
    return names.derived(model.name, "-canary")
