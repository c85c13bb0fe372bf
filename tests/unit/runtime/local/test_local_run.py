"""The local pipeline runner: order, tokens, parameters, and stopping at a failure."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from runtime.local import local_run

WRITE = "import pathlib,sys; pathlib.Path(sys.argv[1]).write_text(sys.argv[2])"
COPY_ENV = "import os,pathlib; pathlib.Path(os.environ['OUT']).write_text(os.environ['IN'])"


def _plan(steps: list[dict[str, object]]) -> dict[str, object]:
    return {
        "model": "m",
        "environment": "local",
        "spec": "specs/m.yaml",
        "parameters": {"seed": "3"},
        "steps": steps,
    }


def _step(
    name: str, command: list[str], depends: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> dict[str, object]:
    return {
        "name": name,
        "image": "x",
        "command": command,
        "env": env or {},
        "depends": list(depends),
    }


def test_steps_run_in_dependency_order_with_tokens(tmp_path: Path) -> None:
    plan = _plan(
        [
            _step(
                "second",
                ["python", "-c", WRITE, "{out}/result", "{param:first/digest}-{run:seed}"],
                depends=("first",),
            ),
            _step("first", ["python", "-c", WRITE, "{out}/digest", "abc"]),
            _step(
                "third",
                [
                    "python",
                    "-c",
                    COPY_ENV,
                ],
                depends=("second",),
                env={"OUT": "{out}/env", "IN": "{in:second}/result"},
            ),
        ]
    )
    said: list[str] = []
    timings = local_run.run(plan, tmp_path, tmp_path / "run", {"seed": "9"}, said.append)
    assert list(timings) == ["first", "second", "third"]
    assert (tmp_path / "run/second/result").read_text() == "abc-9"
    assert (tmp_path / "run/third/env").read_text() == str(tmp_path / "run/second/result")
    assert said[0].startswith("[1/3] first")


def test_a_failing_step_stops_the_run_with_its_log(tmp_path: Path) -> None:
    plan = _plan(
        [
            _step(
                "boom",
                [
                    "python",
                    "-c",
                    "print('gate failed: roc_auc 0.7 is below 0.85'); raise SystemExit(1)",
                ],
            ),
            _step("after", ["python", "-c", "raise SystemExit(0)"], depends=("boom",)),
        ]
    )
    said: list[str] = []
    with pytest.raises(local_run.StepFailed) as failure:
        local_run.run(plan, tmp_path, tmp_path / "run", {}, said.append)
    assert failure.value.step == "boom"
    assert any("gate failed: roc_auc 0.7 is below 0.85" in line for line in said)
    assert not (tmp_path / "run/after").exists()


def test_python_steps_use_this_interpreter() -> None:
    assert local_run._command(["python", "-m", "x"])[0] == sys.executable


def test_cycles_are_refused() -> None:
    with pytest.raises(ValueError, match="cycle"):
        local_run.ordered([_step("a", [], ("b",)), _step("b", [], ("a",))])
