"""`kiln schema`: the JSON Schema editors use accepts the example specs and flags typos."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from compiler.cli import cli
from tests.tools import REPO_ROOT

ROOT = REPO_ROOT
KINDS = {"Project": "project", "FeatureSet": "featureset", "Model": "model"}


@pytest.fixture(scope="module")
def schemas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("schemas")
    result = CliRunner().invoke(cli, ["schema", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _load(path: Path) -> dict[str, object]:
    document: dict[str, object] = YAML(typ="safe", pure=True).load(path.read_text("utf-8"))
    return document


def test_writes_one_schema_per_kind_and_a_combined_one(schemas: Path) -> None:
    names = sorted(p.name for p in schemas.iterdir())
    assert names == [
        "featureset.schema.json",
        "kiln.schema.json",
        "model.schema.json",
        "project.schema.json",
    ]
    combined = json.loads((schemas / "kiln.schema.json").read_text())
    assert [ref["$ref"] for ref in combined["oneOf"]] == [
        "project.schema.json",
        "featureset.schema.json",
        "model.schema.json",
    ]


@pytest.mark.parametrize("spec", sorted((ROOT / "specs").rglob("*.yaml")), ids=lambda p: p.name)
def test_every_example_spec_is_valid(schemas: Path, spec: Path) -> None:
    document = _load(spec)
    schema = json.loads((schemas / f"{KINDS[str(document['kind'])]}.schema.json").read_text())
    jsonschema.validate(document, schema)


def test_a_misspelled_field_is_flagged(schemas: Path) -> None:
    document = _load(ROOT / "specs/models/car-loan-default.yaml")
    spec = document["spec"]
    assert isinstance(spec, dict)
    spec["serving"]["max_batch_sise"] = 64
    schema = json.loads((schemas / "model.schema.json").read_text())
    with pytest.raises(jsonschema.ValidationError, match="max_batch_sise"):
        jsonschema.validate(document, schema)


def test_stdout_bundle_without_out() -> None:
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0
    assert set(json.loads(result.output)) == {
        "featureset.schema.json",
        "kiln.schema.json",
        "model.schema.json",
        "project.schema.json",
    }
