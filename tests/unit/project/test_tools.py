"""`require_tool`'s policy: a missing tool skips a test on a workstation, fails it in CI."""

from __future__ import annotations

import pytest

from tests import tools
from tests.tools import require_tool

INSTALLED = {"alertmanager": "/opt/bin/alertmanager", "promtool": "/opt/bin/promtool"}


@pytest.fixture(autouse=True)
def installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools.shutil, "which", INSTALLED.get)


def test_an_installed_tool_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert require_tool("promtool", "prometheus") == INSTALLED["promtool"]


def test_an_alias_stands_in_for_the_name() -> None:
    found = require_tool("prometheus-alertmanager", "x", aliases=("alertmanager",))
    assert found == INSTALLED["alertmanager"]


def test_a_missing_tool_fails_the_test_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must provide it: `prometheus`"):
        require_tool("prometheus", "prometheus")


def test_a_missing_tool_skips_the_test_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Debian package `prometheus`"):
        require_tool("prometheus", "prometheus")
