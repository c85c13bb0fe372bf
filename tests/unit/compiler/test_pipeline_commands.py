"""The pipeline's commands, rendered from runtime/contract/steps.py, parse with the steps' parsers.

Round trip: for every model with training in the example specs and in the every-field
golden tree (optional flags both given and left out), each rendered `python -m
runtime.steps.<step>` command, its tokens filled in as a runner would, is accepted by
that step's `parse_args`, and each value arrives as rendered.
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import pytest

from compiler.api import build
from compiler.ir import ModelIR
from compiler.targets.pipeline import TOKEN, Step, pipeline
from runtime.contract.steps import STEPS, TRAIN, TRAIN_ENV, StepCommand
from tests.tools import REPO_ROOT

TREES = (REPO_ROOT / "specs", REPO_ROOT / "tests/golden/every-field/specs")
BY_MODULE = {step.module: step for step in STEPS}
# What a runner puts in place of a token; numbers where the step parses a number.
TOKEN_VALUES = {"run:seed": "7", "run:version": "4"}


def trained_models(specs: Path) -> list[ModelIR]:
    result = build(specs)
    assert result.ok, [d.text() for d in result.diagnostics]
    return [m for m in result.resolution.models if m.training is not None]


MODELS = [model for tree in TREES for model in trained_models(tree)]


def model_id(model: ModelIR) -> str:
    return f"{model.name}-{model.environment.name}"


def filled(word: str) -> str:
    """`word` with its tokens replaced, as the local runner or Argo would."""
    return TOKEN.sub(lambda m: TOKEN_VALUES.get(m.group(1), f"/kiln/{m.group(1)}"), word)


def contract_steps(model: ModelIR) -> list[tuple[Step, StepCommand]]:
    plan = pipeline(model)
    assert plan is not None
    # Every step runs a step module, but a train step that runs the user's own command.
    return [(s, BY_MODULE[s.command[2]]) for s in plan.steps if not _own_trainer(model, s)]


def _own_trainer(model: ModelIR, step: Step) -> bool:
    assert model.training is not None
    return step.name == "train" and model.training.trainer is None


@pytest.mark.parametrize("model", MODELS, ids=model_id)
def test_every_step_runs_a_module_of_the_contract_but_the_users_own_trainer(
    model: ModelIR,
) -> None:
    plan = pipeline(model)
    assert plan is not None
    ran = [s for s in plan.steps if not _own_trainer(model, s)]
    assert all(s.command[:2] == ("python", "-m") for s in ran)
    expected = [st.module for st in STEPS if st is not TRAIN or model.training.trainer]  # type: ignore[union-attr]
    assert [s.command[2] for s in ran] == expected


def test_both_forms_of_training_are_covered() -> None:
    forms = {m.training.trainer is None for m in MODELS}  # type: ignore[union-attr]
    assert forms == {True, False}


def test_the_trees_cover_optional_flags_given_and_left_out() -> None:
    commands = [s.command for m in MODELS for s, _ in contract_steps(m)]
    for flag in ("--sha256", "--slo-p99-ms"):
        assert any(flag in c for c in commands), flag
    assert any(c[2] == "runtime.steps.features" and "--sha256" not in c for c in commands)


@pytest.mark.parametrize("model", MODELS, ids=model_id)
def test_rendered_commands_parse_with_the_steps_own_parsers(model: ModelIR) -> None:
    for step, contract in contract_steps(model):
        argv = [filled(word) for word in step.command[3:]]
        args = importlib.import_module(contract.module).parse_args(argv)
        given = dict(zip(argv[::2], argv[1::2], strict=True))  # every rendered flag has a value
        for name, text in given.items():
            flag = contract.flag(name)
            value = getattr(args, name.removeprefix("--").replace("-", "_"))
            if name == "--version":  # publish turns from:N into a number and a flag
                assert (value, args.version_from) == (int(text.removeprefix("from:")), True)
            else:
                assert value == (flag.type or str)(text), name


@pytest.mark.parametrize("model", MODELS, ids=model_id)
def test_the_train_step_gets_every_variable_of_the_contract(model: ModelIR) -> None:
    plan = pipeline(model)
    assert plan is not None
    train = next(s for s in plan.steps if s.name == "train")
    assert [name for name, _ in train.env] == list(dataclasses.astuple(TRAIN_ENV))


def _flag(step: Step, name: str) -> str | None:
    command = list(step.command)
    return command[command.index(name) + 1] if name in command else None


@pytest.mark.parametrize("model", MODELS, ids=model_id)
def test_the_features_step_reads_the_featureset_unless_training_data_is_set(
    model: ModelIR,
) -> None:
    plan = pipeline(model)
    assert plan is not None and model.training is not None
    features = plan.steps[0]
    source = model.featureset.spec.source
    data_store = model.storage.data.rstrip("/")
    if model.training.data.format is None:  # the spec names its own training data
        assert _flag(features, "--source") != f"{data_store}/{source.uri}"
        assert _flag(features, "--format") is None
    else:
        assert _flag(features, "--source") == f"{data_store}/{source.uri}"
        assert _flag(features, "--format") == source.format
    # Point in time: the snapshot is cut at the run's as-of parameter, `now` by default.
    assert _flag(features, "--as-of") == "{run:as-of}"
    assert dict(plan.run_parameters)["as-of"] == "now"
