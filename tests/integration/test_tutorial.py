"""docs/your-model.md as a test: its tutorial's commands, run as written.

The section between `<!-- tutorial: ... -->` and `<!-- /tutorial -->` holds a ```python
block that writes the data file and ```console blocks whose `$ ` lines are the
commands (a trailing backslash continues a line; a trailing `&` runs the command in
the background, as `kiln serve` is shown, until the tutorial ends). They run in
order, in a copy of the example platform, with this interpreter for `.venv/bin/kiln`
and `python`; each must exit 0, and each step's wall time is printed.
"""

from __future__ import annotations

import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.local_serve import serving
from tests.tools import REPO_ROOT

pytestmark = pytest.mark.slow
PAGE = REPO_ROOT / "docs" / "your-model.md"
SECTION = re.compile(r"<!-- tutorial[:\s][^>]*-->(.*?)<!-- /tutorial -->", re.S)
BLOCK = re.compile(r"^```(python|console)\n(.*?)^```$", re.S | re.M)
KILN = ".venv/bin/kiln"
SERVE_PORTS = (8000, 8001, 8002)  # `kiln serve`'s defaults, which the page uses


@dataclass(frozen=True)
class Step:
    kind: str  # "python" (a script) or "console" (one command line)
    text: str

    @property
    def words(self) -> list[str]:
        return shlex.split(self.text)


def tutorial_steps(page: str) -> list[Step]:
    """The tutorial's steps, in the page's order, taken literally from its blocks."""
    found = SECTION.search(page)
    assert found, f"{PAGE} has no <!-- tutorial --> section"
    steps: list[Step] = []
    for kind, body in BLOCK.findall(found.group(1)):
        if kind == "python":
            steps.append(Step("python", body))
            continue
        pending = ""
        for line in body.splitlines():
            if pending or line.startswith("$ "):
                text = pending + (line[2:] if not pending else line.strip())
                pending = text[:-1] + " " if text.endswith("\\") else ""
                if not pending:
                    steps.append(Step("console", text))
    return steps


def test_the_page_holds_the_six_commands_in_order() -> None:
    steps = tutorial_steps(PAGE.read_text(encoding="utf-8"))
    assert [s.kind for s in steps] == ["python", *["console"] * 6]
    commands = [s.words[1] for s in steps[1:]]
    assert commands == ["new", "run", "promote", "serve", "smoke", "monitor"]
    assert all(s.words[0] == KILN for s in steps[1:])


def command_line(step: Step) -> tuple[list[str], bool]:
    words = step.words
    background = words[-1] == "&"
    words = words[:-1] if background else words
    assert words[0] == KILN, f"the tutorial runs kiln only: {step.text}"
    return [sys.executable, "-m", "compiler", *words[1:]], background


def free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "platform"
    shutil.copytree(REPO_ROOT / "specs", root / "specs")
    return root


def test_the_tutorial_runs(project: Path) -> None:
    timings: list[tuple[str, float]] = []
    with ExitStack() as background:
        for step in tutorial_steps(PAGE.read_text(encoding="utf-8")):
            started = time.perf_counter()
            if step.kind == "python":
                done = subprocess.run(
                    [sys.executable, "-c", step.text], cwd=project, capture_output=True, text=True
                )
                assert done.returncode == 0, done.stderr
                continue
            command, in_background = command_line(step)
            if in_background:
                busy = [port for port in SERVE_PORTS if not free(port)]
                assert not busy, f"the tutorial serves on ports {SERVE_PORTS}; {busy} in use"
                log = project / "serve.log"
                background.enter_context(serving(command, project, log))
            else:
                done = subprocess.run(command, cwd=project, capture_output=True, text=True)
                assert done.returncode == 0, f"$ {step.text}\n{done.stdout}\n{done.stderr}"
            timings.append((step.words[1], time.perf_counter() - started))
    print("tutorial steps (s): " + ", ".join(f"{name} {s:.1f}" for name, s in timings))
