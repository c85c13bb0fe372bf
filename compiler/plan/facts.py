"""Facts: a model in an environment, described as topics and values in words."""

from __future__ import annotations

from compiler.ir import ModelIR
from compiler.ir.monitoring import AlertIR, MonitoringIR, ThresholdIR
from compiler.ir.serving import AnalysisIR, DynamicBatchingIR, QualityIR, RolloutIR
from compiler.ir.training import ScheduleIR
from compiler.plan.spec_paths import other_facts


def _number(value: float) -> str:
    return f"{value:g}"


def _percent(value: float) -> str:
    return f"{value * 100:g}%"


def _replicas(model: ModelIR) -> str:
    replicas = model.serving.replicas
    return str(replicas.min) if replicas.min == replicas.max else f"{replicas.min}-{replicas.max}"


def _canary_steps(rollout: RolloutIR) -> list[str]:
    described: list[str] = []
    for step in rollout.steps:  # the default path when none were written
        if step.weight is not None and step.pause is not None:
            described.append(f"{step.weight}% for {step.pause.text}")
        elif step.weight is not None:
            described.append(f"{step.weight}%")
        elif step.pause is not None:
            described.append(f"pause {step.pause.text}")
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
        parts.append("automatic promotion" if settings.auto_promotion else "promotion by hand")
        parts.append(f"old pods kept {settings.scale_down_delay.text}")
        return "blue-green: " + ", ".join(parts)
    if rollout.strategy == "shadow":
        shadow = rollout.shadow
        parts = [f"{shadow.mirror_percent}% of traffic mirrored for {shadow.duration.text}"]
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
        parts.append(f"for {ab.duration.text}")
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


def _batching(batching: DynamicBatchingIR | None) -> str:
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


def _schedule(schedule: ScheduleIR | None) -> str:
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


def _threshold(threshold: ThresholdIR | None) -> str:
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


def _drift_facts(monitoring: MonitoringIR | None) -> dict[str, str]:
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


def _analysis_facts(analysis: AnalysisIR | None) -> dict[str, str]:
    if analysis is None:
        return {"analysis": "none"}
    error_rate = analysis.max_error_rate
    latency = analysis.max_latency_p99_ms
    return {
        "analysis": (
            f"every {analysis.interval.text}, {analysis.count} measurements, "
            f"{analysis.failure_limit} failure(s) and {analysis.inconclusive_limit} "
            f"inconclusive tolerated, at least {analysis.min_requests} requests per window"
        ),
        "analysis error-rate ceiling": "none" if error_rate is None else _percent(error_rate),
        "analysis p99 latency ceiling": "none" if latency is None else f"{_number(latency)} ms",
        "analysis smoke test": "on" if analysis.smoke_test else "off",
        "analysis quality gate": _quality_gate(analysis.quality),
    }


def _quality_gate(quality: QualityIR | None) -> str:
    if quality is None:
        return "none"
    parts = []
    if quality.max_prediction_shift is not None:
        shift = _number(quality.max_prediction_shift)
        parts.append(f"{quality.distance} shift at most {shift}")
    if quality.min_agreement is not None:
        parts.append(f"agreement at least {_percent(quality.min_agreement)}")
    if quality.max_mean_abs_difference is not None:
        difference = _number(quality.max_mean_abs_difference)
        parts.append(f"mean abs difference at most {difference}")
    return f"{', '.join(parts)}; at least {quality.min_rows} rows per version"


def alert_condition(alert: AlertIR) -> str:
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
    if when.for_ is not None:
        parts.append(f"for {when.for_.text}")
    return " ".join(parts)


def _alert_facts(model: ModelIR) -> dict[str, str]:
    facts: dict[str, str] = {}
    for alert in sorted(model.alerts, key=lambda a: a.name):
        facts[f"alert {alert.name}"] = (
            f"{alert_condition(alert)}, {alert.severity}, to {alert.route}"
        )
    return facts


# The serving version's fact for a model that has none in an environment.
NOT_SERVED = "not served yet"


def model_facts(model: ModelIR) -> dict[str, str]:
    """The model in its environment, in words: an ordered table of topic -> value."""
    facts: dict[str, str] = {"serving version": _serving_version(model)}
    for artifact in model.versions:
        digest = f", sha256 {artifact.sha256[:12]}" if artifact.sha256 else ""
        metrics = "".join(f", {k} {_number(v)}" for k, v in artifact.metrics)
        facts[f"version {artifact.version}"] = f"{artifact.uri}{digest}{metrics}"
    facts.update(_ensemble_facts(model))
    if not model.is_local:
        facts["namespace"] = model.namespace
    if model.is_served or model.ensemble is not None:
        facts.update(_serving_facts(model))
    training = model.training
    facts["training image"] = training.image if training else "none"
    facts["training schedule"] = _schedule(training.schedule if training else None)
    facts["training gates"] = _gates(model)
    monitoring = model.monitoring
    facts["monitoring schedule"] = _schedule(monitoring.schedule if monitoring else None)
    facts.update(_drift_facts(monitoring))
    facts.update(_alert_facts(model))
    facts.update(other_facts(model))
    return facts


def _serving_version(model: ModelIR) -> str:
    if model.ensemble is not None:
        return f"ensemble version {model.ensemble.version}"
    return str(model.serving.version) if model.is_served else NOT_SERVED


def _ensemble_facts(model: ModelIR) -> dict[str, str]:
    """One fact per step, so that a step's new artifact or wiring shows by its name."""
    if model.ensemble is None:
        return {}
    facts = {"ensemble steps": ", ".join(s.name for s in model.ensemble.steps)}
    for step in model.ensemble.steps:
        artifact = step.artifact
        digest = f", sha256 {artifact.sha256[:12]}" if artifact.sha256 else ""
        wiring = ", ".join(f"{k} <- {v}" for k, v in step.input_map)
        wiring += "; " + ", ".join(f"{k} -> {v}" for k, v in step.output_map)
        facts[f"step {step.name}"] = (
            f"{step.format.name} {artifact.uri}{digest}, max batch {step.max_batch_size}, {wiring}"
        )
    return facts


def _serving_facts(model: ModelIR) -> dict[str, str]:
    """How the served version runs and how a new one reaches traffic."""
    facts: dict[str, str] = {}
    if not model.is_local:
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
    return facts


# Topics shown for a model that appears or disappears (the whole table is too much).
SUMMARY_TOPICS = (
    "serving version",
    "ensemble steps",
    "namespace",
    "rollout",
    "replicas",
    "GPUs per pod",
    "max batch size",
    "dynamic batching",
    "training schedule",
    "monitoring schedule",
)
