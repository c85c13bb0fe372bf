"""Lowering spec blocks to IR values: seconds for durations, tuples for lists, defaults applied."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from compiler.api import build
from compiler.diagnostics import render
from compiler.ir import ModelIR
from compiler.ir.secret import SecretRefIR
from compiler.ir.serving import (
    CanaryStepIR,
    DurationIR,
    OptimizationIR,
    ReplicasIR,
    ResourcesIR,
    TensorRTIR,
    WarmupIR,
)
from compiler.ir.training import DataIR, GateIR, ScheduleIR, TrainerIR, TrainingResourcesIR
from compiler.lowering import lower_duration, lower_rollout, lower_serving, lower_training
from compiler.plan.spec_paths import flatten, other_facts
from compiler.spec.featureset import FeatureSetSpec
from compiler.spec.model import Rollout, Serving, Training

SpecFiles = Callable[..., dict[str, str]]
WriteTree = Callable[..., Path]

EVERY_SERVING_FIELD = Serving.model_validate(
    {
        "version": 2,
        "max_batch_size": 16,
        "dynamic_batching": {
            "max_queue_delay_us": 250,
            "preferred_batch_size": [4, 8],
            "default_queue_policy": {"timeout_action": "delay", "default_timeout_us": 7},
        },
        "instance_groups": [{"kind": "gpu", "count": 2}],
        "resources": {"gpus": 1, "cpu": "2", "memory": "4Gi"},
        "replicas": {"min": 2, "max": 5},
        "autoscaling": {"metric": "queue_time_us", "target": 500},
        "optimization": {"tensorrt": {"precision": "int8", "max_workspace_size_bytes": 1024}},
        "warmup": {"batch_sizes": [1, 16], "data": "random"},
        "slo": {"latency_p99_ms": 40, "error_rate": 0.01},
    }
)

EVERY_TRAINING_FIELD = Training.model_validate(
    {
        "image": "ghcr.io/acme/train:1.0",
        "command": ["python", "-m", "train"],
        "args": ["--epochs", "3"],
        "secret_env": {"DB_PASSWORD": {"name": "warehouse", "key": "password"}},
        "data": {"uri": "loans/2024.parquet", "sha256": "a" * 64},
        "resources": {"cpu": "4", "memory": "8Gi", "gpus": 1},
        "seed": 7,
        "holdout": 0.25,
        "schedule": {"cron": "0 3 * * 1", "timezone": "Europe/Paris"},
        "gates": [{"metric": "roc_auc", "min": 0.8}, {"metric": "log_loss", "max_regression": 0.1}],
    }
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("90s", 90), ("10m", 600), ("1h30m", 5400), ("7d", 604800)],
)
def test_a_duration_is_seconds_and_keeps_its_text(text: str, seconds: float) -> None:
    assert lower_duration(text) == DurationIR(seconds, text)


def test_serving_defaults_are_applied() -> None:
    serving = lower_serving(Serving(version=3))
    assert serving.version == 3
    assert serving.max_batch_size == 0
    assert serving.resources == ResourcesIR(gpus=0, cpu="1", memory="2Gi")
    assert serving.replicas == ReplicasIR(1, 1)
    optional = (serving.dynamic_batching, serving.autoscaling, serving.optimization)
    assert optional == (None, None, None)
    assert (serving.warmup, serving.slo) == (None, None)


def test_serving_lists_become_tuples() -> None:
    serving = lower_serving(EVERY_SERVING_FIELD)
    batching = serving.dynamic_batching
    assert batching is not None
    assert batching.preferred_batch_size == (4, 8)
    assert batching.default_queue_policy is not None
    assert batching.default_queue_policy.timeout_action == "delay"
    assert batching.default_queue_policy.max_queue_size == 0  # the spec's default
    assert serving.warmup == WarmupIR((1, 16), "random")
    assert serving.optimization == OptimizationIR(TensorRTIR("int8", 1024))
    hash(serving)  # frozen all the way down: no list or dict is left in it


def test_an_unwritten_rollout_gets_the_default_canary_and_settings() -> None:
    rollout = lower_rollout(Rollout(), 4, "binary_classification")
    five_minutes = DurationIR(300, "5m")
    assert (rollout.strategy, rollout.traffic) == ("canary", "replicas")
    assert rollout.steps == (
        CanaryStepIR(20, five_minutes, False),
        CanaryStepIR(50, five_minutes, False),
    )
    assert rollout.analysis is None
    assert (rollout.shadow.mirror_percent, rollout.shadow.duration) == (
        100,
        DurationIR(1800, "30m"),
    )
    assert rollout.blue_green.auto_promotion is True
    assert rollout.blue_green.scale_down_delay == DurationIR(30, "30s")
    assert rollout.ab is None
    hash(rollout)


def test_the_default_canary_analyses_after_its_first_step() -> None:
    rollout = lower_rollout(
        Rollout.model_validate({"analysis": {"count": 3}}), 4, "binary_classification"
    )
    assert [(s.weight, s.analysis) for s in rollout.steps] == [
        (20, False),
        (None, True),
        (50, False),
    ]
    assert rollout.analysis is not None
    assert rollout.analysis.interval == DurationIR(60, "1m")
    assert (rollout.analysis.count, rollout.analysis.failure_limit) == (3, 1)


@pytest.mark.parametrize(
    ("traffic", "replicas", "weights"),
    [
        ("replicas", 2, [33, None, 50]),  # 20% of 2 pods is 1 of 3: 33%
        ("replicas", 1, [50, None]),  # 1 pod: only half and half, once
        ("replicas", 0, [20, None, 50]),  # no pods at rest: nothing to round to
        ("istio", 2, [20, None, 50]),  # routed by request: any weight
    ],
)
def test_default_canary_weights_are_ones_the_traffic_split_can_give(
    traffic: str, replicas: int, weights: list[int | None]
) -> None:
    spec = Rollout.model_validate({"traffic": traffic, "analysis": {}})
    rollout = lower_rollout(spec, replicas, "binary_classification")
    assert [s.weight for s in rollout.steps] == weights


def test_written_steps_and_settings_are_in_seconds() -> None:
    rollout = lower_rollout(
        Rollout.model_validate(
            {
                "strategy": "ab",
                "traffic": "istio",
                "steps": [{"weight": 10, "pause": "1h30m"}, {"analysis": True}, {"pause": "1500s"}],
                "analysis": {"interval": "2m", "max_error_rate": 0.05},
                "ab": {"header": "x-cohort", "value": "beta", "weight": 5, "duration": "2h"},
                "blue_green": {"auto_promotion": False, "scale_down_delay": "10m"},
            }
        ),
        2,
        "binary_classification",
    )
    assert rollout.steps == (
        CanaryStepIR(10, DurationIR(5400, "1h30m"), False),
        CanaryStepIR(None, None, True),
        CanaryStepIR(None, DurationIR(1500, "1500s"), False),
    )
    assert rollout.analysis is not None
    assert rollout.analysis.interval.seconds == 120
    assert rollout.analysis.max_error_rate == 0.05
    assert rollout.ab is not None
    assert (rollout.ab.weight, rollout.ab.duration.seconds) == (5, 7200)
    assert rollout.blue_green.scale_down_delay.seconds == 600


FEATURES = FeatureSetSpec.model_validate(
    {
        "version": 1,
        "entity": "id",
        "timestamp": "ts",
        "source": {"uri": "rows/", "format": "csv"},
        "features": [{"name": "x", "dtype": "float32", "kind": "continuous"}],
    }
)


RUNTIME_IMAGE = "ghcr.io/acme/kiln-runtime:1.0"


def test_the_builtin_trainer_runs_in_the_runtime_image_with_its_params_sorted() -> None:
    spec = Training.model_validate(
        {
            "trainer": {
                "library": "sklearn",
                "estimator": "ridge",
                "params": {"tol": 0.1, "alpha": 2},
            }
        }
    )
    training = lower_training(spec, FEATURES, RUNTIME_IMAGE)
    assert training is not None
    assert (training.image, training.command) == (RUNTIME_IMAGE, ())
    assert training.trainer == TrainerIR("sklearn", "ridge", (("alpha", 2), ("tol", 0.1)))


def test_no_training_stays_none() -> None:
    assert lower_training(None, FEATURES, RUNTIME_IMAGE) is None


def test_training_reads_the_featureset_source_unless_it_names_data() -> None:
    plain = Training.model_validate({"image": "ghcr.io/acme/train:1.0", "command": ["train"]})
    training = lower_training(plain, FEATURES, RUNTIME_IMAGE)
    assert training is not None and training.data == DataIR("rows/", None, "csv")


def test_training_defaults_are_applied() -> None:
    minimal = Training.model_validate(
        {"image": "ghcr.io/acme/train:1.0", "command": ["train"], "data": {"uri": "d.parquet"}}
    )
    training = lower_training(minimal, FEATURES, RUNTIME_IMAGE)
    assert training is not None
    assert training.args == ()
    assert training.data == DataIR("d.parquet", None)
    assert training.resources == TrainingResourcesIR(cpu="1", memory="2Gi", gpus=0)
    assert (training.seed, training.holdout) == (0, 0.2)
    assert (training.schedule, training.gates) == (None, ())


def test_training_lists_become_tuples() -> None:
    training = lower_training(EVERY_TRAINING_FIELD, FEATURES, RUNTIME_IMAGE)
    assert training is not None
    assert (training.command, training.args) == (("python", "-m", "train"), ("--epochs", "3"))
    assert training.secret_env == (("DB_PASSWORD", SecretRefIR("warehouse", "password")),)
    assert training.schedule == ScheduleIR("0 3 * * 1", "Europe/Paris")
    assert training.gates == (
        GateIR("roc_auc", 0.8, None, None),
        GateIR("log_loss", None, None, 0.1),
    )
    hash(training)


@pytest.fixture(scope="module")
def model(
    tmp_path_factory: pytest.TempPathFactory, spec_files: SpecFiles, write_tree: WriteTree
) -> ModelIR:
    specs = write_tree(tmp_path_factory.mktemp("tree") / "specs", spec_files(["alpha"]))
    result = build(specs)
    assert result.ok, render(result.diagnostics, "text")
    return next(m for m in result.resolution.models if m.environment.name == "staging")


@pytest.mark.parametrize(
    ("serving", "listed"),
    [
        (Serving(version=1), {"serving.optimization", "serving.warmup"}),
        (
            EVERY_SERVING_FIELD,
            {
                "serving.optimization.tensorrt.max_workspace_size_bytes",
                "serving.optimization.tensorrt.precision",
                "serving.warmup.batch_sizes",
                "serving.warmup.data",
            },
        ),
    ],
)
def test_the_plan_lists_lowered_serving_settings_by_their_spec_paths(
    model: ModelIR, serving: Serving, listed: set[str]
) -> None:
    """The plan lists what it does not describe by name; the lowered block keeps the paths."""
    facts = other_facts(dataclasses.replace(model, serving=lower_serving(serving)))
    shown = {path: text for path, text in facts.items() if path.startswith("serving")}
    assert set(shown) == listed
    as_the_spec_wrote_it: dict[str, str] = {}
    flatten({"serving": serving.model_dump(mode="json", by_alias=True)}, "", as_the_spec_wrote_it)
    assert shown.items() <= as_the_spec_wrote_it.items()


def test_the_plan_lists_lowered_training_settings_by_their_spec_paths(model: ModelIR) -> None:
    training = EVERY_TRAINING_FIELD
    facts = other_facts(
        dataclasses.replace(model, training=lower_training(training, FEATURES, RUNTIME_IMAGE))
    )
    shown = {path: text for path, text in facts.items() if path.startswith("training")}
    assert set(shown) == {
        "training.args",
        "training.command",
        "training.data.sha256",
        "training.data.uri",
        "training.holdout",
        "training.resources.cpu",
        "training.resources.gpus",
        "training.resources.memory",
        "training.secret_env.DB_PASSWORD.key",
        "training.secret_env.DB_PASSWORD.name",
        "training.seed",
    }
    as_the_spec_wrote_it: dict[str, str] = {}
    flatten({"training": training.model_dump(mode="json", by_alias=True)}, "", as_the_spec_wrote_it)
    assert shown.items() <= as_the_spec_wrote_it.items()
