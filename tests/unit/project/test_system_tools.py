"""`.ci/system-tools`, which `make test` runs first: silent when the tools are there,
installs what is missing with apt-get, or says how to and fails.

Each test runs the script with a PATH of fakes (apt-get, sudo, id and the tools),
which record their calls, so nothing is installed and no system package is needed.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.tools import REPO_ROOT

SCRIPT = REPO_ROOT / ".ci" / "system-tools"
BASH = shutil.which("bash") or "bash"
ALL = ("promtool", "prometheus", "prometheus-alertmanager", "prometheus-pushgateway")


class Machine:
    """A folder of fake commands that is the script's whole PATH."""

    def __init__(self, folder: Path) -> None:
        self.bin = folder / "bin"
        self.bin.mkdir()
        self.calls = folder / "calls.log"
        # Real: sudo runs `true` and `env` (which then finds apt-get on this PATH); the
        # fake apt-get makes what it installs executable with chmod.
        for real in ("env", "true", "chmod"):
            (self.bin / real).symlink_to(shutil.which(real) or real)
        self.uid(1000)

    def add(self, name: str, body: str = "exit 0") -> None:
        path = self.bin / name
        path.write_text(f"#!{BASH}\n{body}\n", encoding="utf-8")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)

    def recorder(self, name: str, then: str = "exit 0") -> None:
        """A fake that appends its name, its arguments and DEBIAN_FRONTEND to the log."""
        self.add(name, f'echo "{name} $* [${{DEBIAN_FRONTEND:-}}]" >> {self.calls}\n{then}')

    def uid(self, value: int) -> None:
        self.add("id", f"echo {value}")

    def run(self) -> subprocess.CompletedProcess[str]:
        env = {"PATH": str(self.bin), "HOME": os.environ.get("HOME", "/")}
        return subprocess.run([BASH, str(SCRIPT)], env=env, capture_output=True, text=True)

    def log(self) -> list[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []


# A fake apt-get that "installs" a package by putting its binaries on the PATH.
INSTALLS = f"""
if [ "$3" = install ]; then
  for package in "$@"; do
    case $package in
      prometheus) names="promtool prometheus" ;;
      prometheus-alertmanager) names="prometheus-alertmanager" ;;
      prometheus-pushgateway) names="prometheus-pushgateway" ;;
      *) names="" ;;
    esac
    for name in $names; do printf '#!{BASH}\\nexit 0\\n' > "${{0%/*}}/$name"
      chmod +x "${{0%/*}}/$name"; done
  done
fi
exit 0"""
LOCK = "-o DPkg::Lock::Timeout=300"


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    fake = Machine(tmp_path)
    fake.recorder("apt-get", INSTALLS)
    # A sudo that lets this user run anything without a password.
    fake.recorder("sudo", 'if [ "$1" = -n ]; then shift; fi\nexec "$@"')
    return fake


def test_silent_when_every_tool_is_there(machine: Machine) -> None:
    for tool in ALL:
        machine.add(tool)
    result = machine.run()
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert machine.log() == []


def test_upstream_alertmanager_name_counts(machine: Machine) -> None:
    for tool in ("promtool", "prometheus", "alertmanager", "prometheus-pushgateway"):
        machine.add(tool)
    assert machine.run().returncode == 0
    assert machine.log() == []


def test_root_installs_each_missing_package_once_with_apt_get(machine: Machine) -> None:
    machine.uid(0)
    result = machine.run()
    assert result.returncode == 0, result.stderr
    assert "installing prometheus prometheus-alertmanager prometheus-pushgateway" in result.stdout
    assert machine.log() == [
        f"apt-get {LOCK} update -qq [noninteractive]",
        f"apt-get {LOCK} install -y -qq --no-install-recommends"
        " prometheus prometheus-alertmanager prometheus-pushgateway [noninteractive]",
    ]
    assert {p.name for p in machine.bin.iterdir()} >= set(ALL)


def test_an_install_that_brings_no_binaries_fails(machine: Machine) -> None:
    machine.uid(0)
    machine.recorder("apt-get")  # succeeds, installs nothing
    result = machine.run()
    assert result.returncode == 1
    assert "binaries are still not on the PATH" in result.stderr


def test_other_users_install_through_non_interactive_sudo(machine: Machine) -> None:
    machine.add("promtool")
    machine.add("prometheus")
    machine.add("prometheus-pushgateway")
    assert machine.run().returncode == 0
    log = machine.log()
    assert log[0] == "sudo -n true []"
    assert log[-2:] == [
        f"sudo -n env DEBIAN_FRONTEND=noninteractive apt-get {LOCK} install -y -qq"
        " --no-install-recommends prometheus-alertmanager []",
        f"apt-get {LOCK} install -y -qq --no-install-recommends"
        " prometheus-alertmanager [noninteractive]",
    ]


def test_without_root_or_sudo_it_says_what_to_run_and_fails(machine: Machine) -> None:
    machine.recorder("sudo", "exit 1")  # sudo -n: a password would be needed
    result = machine.run()
    assert result.returncode == 1
    assert "asks for a password" in result.stderr
    assert (
        "sudo apt-get install -y prometheus prometheus-alertmanager prometheus-pushgateway"
        in result.stderr
    )
    assert machine.log() == ["sudo -n true []"]


def test_without_apt_get_it_says_what_to_install_and_fails(machine: Machine) -> None:
    (machine.bin / "apt-get").unlink()
    result = machine.run()
    assert result.returncode == 1
    assert "apt-get is not available here" in result.stderr
    assert "promtool, prometheus and alertmanager" in result.stderr


def test_a_failed_install_fails(machine: Machine) -> None:
    machine.uid(0)
    machine.recorder("apt-get", "exit 100")
    result = machine.run()
    assert result.returncode == 1
    assert "apt-get update failed" in result.stderr


def test_make_test_and_make_unit_run_it_before_the_checks() -> None:
    for target in ("test", "unit"):
        dry = subprocess.run(
            ["make", "-n", target], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        )
        commands = dry.stdout.splitlines()
        first = commands.index("bash .ci/system-tools")
        checks = [i for i, c in enumerate(commands) if re.search(r"/bin/(ruff|mypy|pytest) ", c)]
        assert checks, commands
        assert first < min(checks), commands
