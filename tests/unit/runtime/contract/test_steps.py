"""runtime/contract/steps.py: step flags as the steps parse them and the compiler renders them."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Mapping
from types import ModuleType

import pytest

from runtime.contract.steps import (
    EVALUATE,
    FEATURE_FORMATS,
    FEATURES,
    PUBLISH,
    STEPS,
    TRAIN,
    VALIDATE,
    CommandError,
    Flag,
    StepCommand,
)

# Values the steps' own checks after parsing accept (publish wants a version number).
SAMPLES = {"--version": "3", "--repeats": "5"}


def step_module(step: StepCommand) -> ModuleType:
    return importlib.import_module(step.module)


def sample(flag: Flag) -> str | bool:
    if flag.switch:
        return True
    if flag.name in SAMPLES:
        return SAMPLES[flag.name]
    if flag.choices:
        return flag.choices[0]
    if flag.type in (int, float):
        return "1"
    return f"value-of{flag.name}"


def arguments(step: StepCommand, values: Mapping[str, str | bool | None]) -> list[str]:
    """The rendered command without `python -m MODULE`: what the step's main receives."""
    return list(step.command(values)[3:])


def required_values(step: StepCommand) -> dict[str, str | bool | None]:
    return {f.name: sample(f) for f in step.flags if f.required}


def dest(flag: Flag) -> str:
    return flag.name.removeprefix("--").replace("-", "_")


FLAGS = [(step, flag) for step in STEPS for flag in step.flags]
REQUIRED = [(step, flag) for step, flag in FLAGS if flag.required]


def flag_id(value: object) -> str:
    if isinstance(value, StepCommand):
        return value.module.rsplit(".", 1)[1]
    return value.name if isinstance(value, Flag) else str(value)


@pytest.mark.parametrize("step", STEPS, ids=flag_id)
def test_the_step_accepts_every_flag_of_its_definition(step: StepCommand) -> None:
    values = {flag.name: sample(flag) for flag in step.flags}
    args = step_module(step).parse_args(arguments(step, values))
    for flag in step.flags:
        assert getattr(args, dest(flag)) not in (None, False), flag.name


@pytest.mark.parametrize("step", STEPS, ids=flag_id)
def test_the_required_flags_are_enough_and_optional_ones_take_their_default(
    step: StepCommand,
) -> None:
    args = step_module(step).parse_args(arguments(step, required_values(step)))
    for flag in step.flags:
        if not flag.required:
            assert getattr(args, dest(flag)) == (False if flag.switch else flag.default)


@pytest.mark.parametrize(("step", "flag"), REQUIRED, ids=flag_id)
def test_the_step_refuses_a_command_without_a_required_flag(
    step: StepCommand, flag: Flag, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = arguments(step, required_values(step))
    at = argv.index(flag.name)
    del argv[at : at + 2]
    with pytest.raises(SystemExit) as exit_:
        step_module(step).parse_args(argv)
    assert exit_.value.code == 2
    assert f"required: {flag.name}" in capsys.readouterr().err


@pytest.mark.parametrize("step", STEPS, ids=flag_id)
def test_help_shows_each_flag_with_its_help_text(
    step: StepCommand, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        step_module(step).parse_args(["--help"])
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps lines at will
    assert shown.startswith(f"usage: python -m {step.module} ")
    for flag in step.flags:
        assert (flag.name in shown) != flag.hidden, flag.name
        if flag.help and not flag.hidden:
            assert " ".join(flag.help.split()) in shown, flag.name


def test_the_features_step_reads_every_format_the_contract_names() -> None:
    features = step_module(FEATURES)
    assert sorted(features.SUFFIXES) == sorted(FEATURE_FORMATS)


def test_flags_are_unique_and_spelled_as_on_a_command_line() -> None:
    for step in STEPS:
        names = [flag.name for flag in step.flags]
        assert len(names) == len(set(names)), step.module
        assert all(n.startswith("--") and n == n.lower() and "_" not in n for n in names)
        # The train step writes where KILN_OUTPUT_DIR says, as a user's own trainer does.
        if step is not TRAIN:
            assert step.flag("--out").required


# ------------------------------------------------------------------- rendering


def test_command_lists_flags_in_the_definitions_order_whatever_the_mapping_order() -> None:
    values = {"--out": "o", "--columns": "a,b", "--target": "y", "--timestamp": "t"}
    values |= {"--entity": "id", "--source": "s3://b/x"}
    assert FEATURES.command(values) == (
        *("python", "-m", "runtime.steps.features"),
        *("--source", "s3://b/x", "--entity", "id", "--timestamp", "t"),
        *("--columns", "a,b", "--target", "y", "--out", "o"),
    )


def test_an_optional_flag_without_a_value_is_left_out() -> None:
    values = required_values(VALIDATE)
    without = VALIDATE.command({**values, "--slo-p99-ms": None})
    with_slo = VALIDATE.command({**values, "--slo-p99-ms": "50"})
    assert "--slo-p99-ms" not in without
    assert with_slo[with_slo.index("--slo-p99-ms") + 1] == "50"


def test_an_unknown_flag_is_refused() -> None:
    values = {**required_values(EVALUATE), "--holdout-share": "0.2", "--gate": "[]"}
    with pytest.raises(CommandError, match=r"evaluate has no flag --gate, --holdout-share$"):
        EVALUATE.command(values)


def test_a_missing_required_flag_is_refused() -> None:
    values = required_values(PUBLISH)
    del values["--data-sha256"], values["--seed"]
    with pytest.raises(CommandError, match=r"publish needs --data-sha256, --seed$"):
        PUBLISH.command(values)
    with pytest.raises(CommandError, match="needs --name"):
        PUBLISH.command({**required_values(PUBLISH), "--name": None})


def test_a_switch_takes_true_or_false_and_other_flags_take_text() -> None:
    values = required_values(PUBLISH)
    assert "--open-pr" in PUBLISH.command({**values, "--open-pr": True})
    assert "--open-pr" not in PUBLISH.command({**values, "--open-pr": False})
    with pytest.raises(CommandError, match="--open-pr takes True or False"):
        PUBLISH.command({**values, "--open-pr": "yes"})
    with pytest.raises(CommandError, match="--name takes text"):
        PUBLISH.command({**values, "--name": True})


def test_flag_lookup_names_the_step_on_an_unknown_flag() -> None:
    assert FEATURES.flag("--format").choices == FEATURE_FORMATS
    with pytest.raises(CommandError, match=r"runtime\.steps\.features has no flag --fromat"):
        FEATURES.flag("--fromat")


def test_the_parser_is_plain_argparse() -> None:
    parser = VALIDATE.parser()
    assert isinstance(parser, argparse.ArgumentParser)
    assert parser.prog == "python -m runtime.steps.validate_model"
