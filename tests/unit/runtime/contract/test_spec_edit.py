"""Tests for runtime/contract/spec_edit.py: the in-place edit of `kiln promote` and publish."""

from __future__ import annotations

import difflib
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from runtime.contract.spec_edit import SpecEditError, VersionEntry, add_version, promote
from runtime.steps.publish import unified_diff
from tests.tools import REPO_ROOT

LOAN = (REPO_ROOT / "specs/models/car-loan-default.yaml").read_text(encoding="utf-8")
ENTRY = VersionEntry(2, "car-loan-default/2/model.onnx", "f" * 64, {"roc_auc": 0.97, "f1": 0.9})
ADDED = [
    "    - version: 2",
    "      artifact:",
    "        uri: car-loan-default/2/model.onnx",
    f"        sha256: {'f' * 64}",
    "      metrics: {f1: 0.9, roc_auc: 0.97}",
]


def changes(old: str, new: str) -> list[tuple[str, list[str], list[str]]]:
    """Every line-level change from `old` to `new`: (kind, old lines, new lines)."""
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    return [
        (tag, [x.rstrip("\n") for x in a[i1:i2]], [x.rstrip("\n") for x in b[j1:j2]])
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    ]


def load(text: str) -> dict:
    return YAML(typ="safe").load(text)


def test_base_promotion_touches_only_the_added_lines_and_the_version() -> None:
    new = promote(LOAN, "m.yaml", ENTRY, serve_in=(None,))
    assert changes(LOAN, new) == [
        ("insert", [], ADDED),
        ("replace", ["    version: 1"], ["    version: 2"]),
    ]
    # Every comment is still there, each on its own line as before.
    comments = [line for line in LOAN.splitlines() if "#" in line]
    assert [line for line in new.splitlines() if "#" in line] == comments
    spec = load(new)["spec"]
    assert spec["serving"]["version"] == 2
    assert spec["versions"][-1] == ENTRY.data()


@pytest.mark.parametrize(
    ("environment", "before", "after"),
    [
        # an overlay whose serving is a flow mapping: the key goes first in it
        (
            "local",
            "      serving: {resources: {gpus: 0}, instance_groups: [{kind: cpu, count: 2}]}",
            "      serving: {version: 2, resources: {gpus: 0}, instance_groups: "
            "[{kind: cpu, count: 2}]}",
        ),
        (
            "staging",
            "      serving: {replicas: {min: 1, max: 2}}",
            "      serving: {version: 2, replicas: {min: 1, max: 2}}",
        ),
    ],
)
def test_overlay_promotion_edits_that_environment_only(
    environment: str, before: str, after: str
) -> None:
    new = promote(LOAN, "m.yaml", ENTRY, serve_in=(environment,))
    assert changes(LOAN, new) == [("insert", [], ADDED), ("replace", [before], [after])]
    spec = load(new)["spec"]
    assert spec["serving"]["version"] == 1  # the base is untouched
    assert spec["environments"][environment]["serving"]["version"] == 2


def test_an_environment_without_an_overlay_gets_one_at_the_end_of_the_block() -> None:
    new = promote(LOAN, "m.yaml", ENTRY, serve_in=("production",))
    assert changes(LOAN, new) == [
        ("insert", [], ADDED),
        ("insert", [], ["    production:", "      serving: {version: 2}"]),
    ]
    assert load(new)["spec"]["environments"]["production"] == {"serving": {"version": 2}}


SCAFFOLDED = """\
# a model as `kiln new` writes it: no version yet
apiVersion: kiln/v1alpha1
kind: Model
spec:
  task: multiclass_classification
  signature:
    inputs:
      - {name: x, dtype: fp32, shape: [-1, 1]}
  # No version yet: `kiln run` trains one, `kiln promote` adds it here.
  serving:
    max_batch_size: 64
    slo: {latency_p99_ms: 50}   # a trailing comment

  # The monitor compares served traffic with the reference rows.
  monitoring:
    chunking: {size: 5000}
"""


def test_a_first_version_goes_before_serving_and_its_comment() -> None:
    entry = VersionEntry(1, "m/1/model.onnx", "a" * 64, {"f1": 0.5})
    new = promote(SCAFFOLDED, "m.yaml", entry, serve_in=(None,))
    assert changes(SCAFFOLDED, new) == [
        (
            "insert",
            [],
            [
                "  versions:",
                "    - version: 1",
                "      artifact:",
                "        uri: m/1/model.onnx",
                f"        sha256: {'a' * 64}",
                "      metrics: {f1: 0.5}",
            ],
        ),
        ("insert", [], ["    version: 1"]),
    ]
    # serving.version goes last in the serving block, before its blank line and comment.
    lines = new.splitlines()
    assert lines[lines.index("    version: 1") - 1].startswith("    slo:")


def test_crlf_line_endings_are_kept() -> None:
    text = SCAFFOLDED.replace("\n", "\r\n")
    new = promote(text, "m.yaml", VersionEntry(1, "m/1/model.onnx", "a" * 64), (None,))
    assert new.count("\r\n") == new.count("\n")
    assert load(new)["spec"]["serving"]["version"] == 1


def test_the_same_version_with_the_same_digest_is_not_added_twice() -> None:
    once = promote(LOAN, "m.yaml", ENTRY, serve_in=(None,))
    assert promote(once, "m.yaml", ENTRY, serve_in=(None,)) == once
    # Version 1 is listed with this digest already: only the overlay changes.
    digest = load(LOAN)["spec"]["versions"][0]["artifact"]["sha256"]
    listed = VersionEntry(1, "car-loan-default/1/model.onnx", digest)
    assert len(changes(LOAN, promote(LOAN, "m.yaml", listed, serve_in=("staging",)))) == 1


INDENTLESS = """\
spec:
  task: regression  # a comment
  versions:
  - version: 1
    artifact: {uri: m/1/model.onnx}
    # a trailing comment inside the list stays where it is

  serving: {version: 1}
"""

LAST_WITHOUT_NEWLINE = """\
spec:
  versions:
    - {version: 1, artifact: {uri: m/1/model.onnx}}"""

EMPTY_FLOW = """\
spec:
  task: regression
  versions: []   # nothing trained yet
  serving: {version: 1}
"""


@pytest.mark.parametrize("text", [INDENTLESS, LAST_WITHOUT_NEWLINE, EMPTY_FLOW])
def test_add_version_keeps_the_rest_of_the_file(text: str, tmp_path: Path) -> None:
    entry = VersionEntry(2, "m/2/model.onnx", "f" * 64, {"mae": 849.34})
    new = add_version(text, "m.yaml", entry)
    assert load(new)["spec"]["versions"][-1] == entry.data()
    # Every original line survives (the empty flow list loses only its brackets).
    kept = [line for line in text.splitlines() if "[]" not in line]
    assert all(line in new.splitlines() for line in kept)
    # And it applies as a patch with git, "no newline at end of file" included.
    (tmp_path / "m.yaml").write_text(text)
    (tmp_path / "p.patch").write_text(unified_diff(text, new, "m.yaml"))
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "apply", "p.patch"], check=True)
    assert (tmp_path / "m.yaml").read_text() == new


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("spec:\n  versions: [{version: 1}]\n", "is a flow list"),
        ("spec: [1]\n", "has no spec mapping"),
        ("spec:\n  versions: 3\n", "spec.versions is not a list"),
        (
            "spec:\n  versions:\n    - version: 2\n      artifact: {sha256: abc}\n",
            r"m.yaml:3:7: spec.versions already lists version 2 with sha256 abc",
        ),
        ("spec:\n  serving: [1]\n", "spec.serving is not a mapping"),
        ("spec: {a: [\n", "is not valid YAML"),
        # A quoted version is a string: replacing it would change its type.
        ("spec:\n  serving: {version: '1'}\n", "m.yaml:2:22: expected a plain integer here"),
    ],
)
def test_refusals(text: str, message: str) -> None:
    with pytest.raises(SpecEditError, match=message):
        promote(text, "m.yaml", VersionEntry(2, "m/2/model.onnx", "f" * 64), serve_in=(None,))


def test_a_native_version_lists_its_format_and_fil_settings_as_data() -> None:
    """A tree model's entry carries format and fil; every text value is quoted, so a value
    such as `x}, y: {` stays one string and true stays a boolean, read back as written."""
    fil = {"model_type": "xgboost_json", "output_class": True, "predict_proba": True}
    entry = VersionEntry(
        2, "car-loan-default/2/xgboost.json", "f" * 64, {}, format="xgboost", fil=fil
    )
    assert entry.lines()[:2] == [
        "version: 2",
        "format: xgboost",
    ]
    assert entry.lines()[2] == (
        'fil: {model_type: "xgboost_json", output_class: true, predict_proba: true}'
    )
    assert load("\n".join(entry.lines())) == entry.data()
    odd = VersionEntry(2, "m/2/model.txt", "f" * 64, {}, format="lightgbm", fil={"k": "x}, y: {"})
    assert load("\n".join(odd.lines()))["fil"] == {"k": "x}, y: {"}
    new = promote(LOAN, "car-loan-default.yaml", entry, serve_in=())
    versions = load(new)["spec"]["versions"]
    assert versions[-1]["format"] == "xgboost" and versions[-1]["fil"] == fil
    # An ONNX entry is written as it always was: no format, no fil.
    assert not any(line.startswith(("format", "fil")) for line in ENTRY.lines())
