"""Run a model's training pipeline on this machine: the same steps Argo runs.

The pipeline plan (`generated/local/<model>/pipeline.json`, or the same plan built
in memory) lists each step's command with tokens for its folders. Here every
token becomes a folder of the run directory, steps run as subprocesses in
dependency order with this Python, and the first failure stops the run with
the tail of the step's log. A variable the cluster fills from a Secret
(`training.secret_env`) is read from this environment's variable of the same name.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

TOKEN = re.compile(r"\{(out|spec|in:[a-z-]+|param:[a-z-]+/[a-z0-9_.-]+|run:[a-z-]+)\}")
LOG_TAIL = 30


class StepFailed(Exception):
    def __init__(self, step: str, code: int, log: Path) -> None:
        super().__init__(f"step {step} failed with exit code {code}; log: {log}")
        self.step, self.code, self.log = step, code, log


class MissingSecret(Exception):
    """A step reads a variable that a Kubernetes Secret fills in the cluster, and this
    environment does not set it. Only names are said, never a value."""

    def __init__(self, step: str, names: list[str]) -> None:
        listed = ", ".join(names)
        super().__init__(
            f"step {step} reads {listed} from a Kubernetes Secret in the cluster; locally it "
            f"comes from the variable of the same name, which is not set: export {names[0]}=... "
            "in this shell (a value kept out of the repository) and run again"
        )
        self.step, self.names = step, names


def check_secrets(steps: list[dict[str, Any]], environ: Mapping[str, str]) -> None:
    """Raise MissingSecret for the first step whose Secret variables are not all set."""
    for step in steps:
        missing = [name for name in step.get("secret_env", ()) if name not in environ]
        if missing:
            raise MissingSecret(step["name"], missing)


def ordered(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Steps in dependency order; ties keep the plan's order."""
    done: set[str] = set()
    result: list[dict[str, Any]] = []
    pending = list(steps)
    while pending:
        ready = [s for s in pending if set(s["depends"]) <= done]
        if not ready:
            cycle = ", ".join(s["name"] for s in pending)
            raise ValueError(f"the pipeline's dependencies form a cycle among: {cycle}")
        step = ready[0]
        result.append(step)
        done.add(step["name"])
        pending.remove(step)
    return result


def substitute(
    text: str, step_dir: Path, run_dir: Path, spec: Path, params: Mapping[str, str]
) -> str:
    def replace(match: re.Match[str]) -> str:
        token = match.group(1)
        if token == "out":  # noqa: S105 a placeholder's name
            return str(step_dir)
        if token == "spec":  # noqa: S105 a placeholder's name
            return str(spec)
        kind, _, rest = token.partition(":")
        if kind == "in":
            return str(run_dir / rest)
        if kind == "param":
            origin, _, file = rest.partition("/")
            return (run_dir / origin / file).read_text(encoding="utf-8").strip()
        return params[rest]

    return TOKEN.sub(replace, text)


def _command(parts: list[str]) -> list[str]:
    # Locally every step runs with this interpreter, whatever image Argo would use.
    return [sys.executable, *parts[1:]] if parts and parts[0] == "python" else parts


def _tail(log: Path) -> str:
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(lines[-LOG_TAIL:])


def run(
    plan: Mapping[str, Any],
    root: Path,
    run_dir: Path,
    params: Mapping[str, str],
    say: Callable[[str], None] = print,
    environ: Mapping[str, str] | None = None,
) -> dict[str, float]:
    """Run every step; returns seconds per step. Raises StepFailed on the first failure.

    The steps see `environ` (default: this process's environment) and their own variables.
    Raises MissingSecret, before any step runs, when a step's Secret variable is unset.
    """
    steps = ordered(list(plan["steps"]))
    check_secrets(steps, os.environ if environ is None else environ)
    spec = root / plan["spec"]
    merged = {**plan["parameters"], **params}
    run_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    for index, step in enumerate(steps, start=1):
        name = step["name"]
        step_dir = run_dir / name
        step_dir.mkdir(parents=True, exist_ok=True)
        args = [substitute(a, step_dir, run_dir, spec, merged) for a in step["command"]]
        env = {**(os.environ if environ is None else environ), "NML_DISABLE_USAGE_LOGGING": "1"}
        env.update(
            {k: substitute(v, step_dir, run_dir, spec, merged) for k, v in step["env"].items()}
        )
        log = run_dir / f"{name}.log"
        say(f"[{index}/{len(steps)}] {name}: {' '.join(args[1:4])} ...")
        started = time.perf_counter()
        with log.open("w", encoding="utf-8") as stream:
            completed = subprocess.run(
                _command(args), cwd=root, env=env, stdout=stream, stderr=subprocess.STDOUT
            )
        timings[name] = time.perf_counter() - started
        if completed.returncode != 0:
            say(f"      failed after {timings[name]:.1f} s; last lines of {log}:")
            say(_tail(log))
            raise StepFailed(name, completed.returncode, log)
        say(f"      ok in {timings[name]:.1f} s")
    return timings
