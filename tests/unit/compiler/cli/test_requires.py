"""compiler/cli/requires.py: what commands need before they start, written once."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from compiler.cli import cli, requires
from compiler.resolve import UnknownModel
from tests.tools import REPO_ROOT

SPECS = REPO_ROOT / "specs"


def test_the_unchecked_note_is_shown_once_per_project_unless_verbose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KILN_CACHE_DIR", str(tmp_path / "cache"))

    def note(*flags: str) -> bool:
        result = CliRunner().invoke(cli, ["validate", "--specs", str(SPECS), *flags])
        assert result.exit_code == 0, result.output
        return "custom resources not schema-checked" in result.stderr

    assert note() is True
    assert note() is False
    assert note("--verbose") is True
    assert note() is False


def test_the_note_is_repeated_when_the_cache_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KILN_CACHE_DIR", "off")
    shown: list[str] = []
    monkeypatch.setattr(click, "echo", lambda text, err=False: shown.append(text))
    requires.note_unchecked(["example.com/v1 Thing"], SPECS)
    requires.note_unchecked(["example.com/v1 Thing"], SPECS)
    assert len(shown) == 2


def test_a_model_is_found_by_name_and_environment() -> None:
    result = requires.built(SPECS)
    model = requires.find_model(result, "car-price", "staging")
    assert (model.name, model.environment.name) == ("car-price", "staging")


@pytest.mark.parametrize(
    ("name", "environment", "message"),
    [
        (
            "nope",
            "local",
            "no model 'nope' in environment 'local'; known: car-loan-default (local)",
        ),
        ("car-price", "qa", "model 'car-price' has no environment 'qa'; known: local, production"),
    ],
)
def test_an_unknown_model_lists_what_exists(name: str, environment: str, message: str) -> None:
    result = requires.built(SPECS)
    with pytest.raises(UnknownModel, match="^" + re.escape(message)):
        result.resolution.find(name, environment)
    with pytest.raises(click.UsageError):
        requires.find_model(result, name, environment)


def test_a_failed_build_prints_its_diagnostics_and_exits_1(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "project.yaml").write_text("apiVersion: kiln/v1\nkind: Project\nspec: {}\n")
    result = CliRunner().invoke(cli, ["run", "m", "--local", "--specs", str(specs)])
    assert result.exit_code == 1
    assert "project.yaml" in result.output


def test_the_count_is_of_the_lines_shown() -> None:
    from compiler.diagnostics import Diagnostic, render, summary

    same = Diagnostic("specs/m.yaml", 3, 5, "KILN1401", "a problem in every environment")
    other = Diagnostic("specs/m.yaml", 4, 1, "KILN1402", "another")
    shown = render([same, same, same, other], "text").splitlines()
    assert len(shown) == 2
    assert summary([same, same, same, other]) == "2 error(s), 0 warning(s)"


def test_a_problem_in_several_environments_is_one_line_naming_them_in_every_format() -> None:
    from compiler.diagnostics import Diagnostic, render, summary

    def found_in(environment: str) -> Diagnostic:
        return Diagnostic("specs/m.yaml", 3, 5, "KILN1401", "same", environments=(environment,))

    staging_only = Diagnostic("specs/m.yaml", 4, 1, "KILN1603", "other", environments=("staging",))
    found = [found_in("staging"), found_in("local"), found_in("production"), staging_only]
    text = render(found, "text").splitlines()
    assert text == [
        "specs/m.yaml:3:5: error[KILN1401]: same [environments: local, production, staging]",
        "specs/m.yaml:4:1: error[KILN1603]: other [environments: staging]",
    ]
    assert summary(found) == "2 error(s), 0 warning(s)"
    records = json.loads(render(found, "json"))["diagnostics"]
    assert [r["environments"] for r in records] == [["local", "production", "staging"], ["staging"]]
    github = render(found, "github").splitlines()
    assert len(github) == 2
    assert github[0].endswith("::same [environments: local, production, staging]")
