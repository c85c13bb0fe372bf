"""The incremental build writes exactly what a full compile writes, and reports the
same diagnostics: checked after each of a seeded random sequence of edits."""

from __future__ import annotations

import os
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.synthetic import ENVIRONMENTS, MODEL, generate
from compiler import build_state, cache, fingerprint, forking
from compiler.api import CompileResult, compile_tree
from compiler.emit import WriteBack

MODELS = 12
SEEDS = (7, 2024)
STEPS = 30
EXAMPLE_SPECS = Path(__file__).resolve().parents[3] / "specs"

Edit = Callable[[Path, random.Random], str]  # makes a change, says which kind


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _models(specs: Path) -> list[Path]:
    return sorted((specs / "models").glob("*.yaml"))


def _replace(path: Path, pattern: str, replacement: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert re.search(pattern, text), f"{pattern!r} not in {path.name}"
    path.write_text(re.sub(pattern, replacement, text, count=1), encoding="utf-8")


# --- edits: each returns its kind (the test checks which kinds may be incremental) ---------


def change_model_field(specs: Path, rng: random.Random) -> str:
    model = rng.choice(_models(specs))
    _replace(model, r"max_queue_delay_us: \d+", f"max_queue_delay_us: {rng.randrange(1, 9999)}")
    return "model"


def change_model_comment(specs: Path, rng: random.Random) -> str:
    model = rng.choice(_models(specs))
    with model.open("a", encoding="utf-8") as stream:
        stream.write(f"# note {rng.random()}\n")
    return "model"


def change_featureset(specs: Path, rng: random.Random) -> str:
    featureset = rng.choice(sorted((specs / "featuresets").glob("*.yaml")))
    _replace(featureset, r"source: \{uri: [^}]*\}", f"source: {{uri: data-{rng.randrange(999)}/}}")
    return "featureset"


def switch_featureset(specs: Path, rng: random.Random) -> str:
    model = rng.choice(_models(specs))
    count = len(list((specs / "featuresets").glob("*.yaml")))
    _replace(model, r"features: features-\d+@1", f"features: features-{rng.randrange(count)}@1")
    return "model"


def add_model(specs: Path, rng: random.Random) -> str:
    index = rng.randrange(100, 100_000)
    text = MODEL.format(index=index, team=1, featureset=0, batch=16, minute=index % 60)
    (specs / "models" / f"added-{index}.yaml").write_text(text, encoding="utf-8")
    return "model"


def delete_model(specs: Path, rng: random.Random) -> str:
    models = _models(specs)
    if len(models) > 2:
        rng.choice(models).unlink()
    return "model"


def rename_model_file(specs: Path, rng: random.Random) -> str:
    model = rng.choice(_models(specs))
    model.rename(model.with_name(f"renamed-{rng.randrange(10**6)}.yaml"))
    return "model"


def touch_without_change(specs: Path, rng: random.Random) -> str:
    model = rng.choice(_models(specs))
    os.utime(model, ns=(model.stat().st_atime_ns, model.stat().st_mtime_ns + 10**9))
    return "none"


def change_project(specs: Path, rng: random.Random) -> str:
    _replace(specs / "project.yaml", r"quota: \d+", f"quota: {rng.randrange(1, 500)}")
    return "project"


EDITS: list[Edit] = [
    change_model_field,
    change_model_comment,
    change_featureset,
    switch_featureset,
    add_model,
    delete_model,
    rename_model_file,
    touch_without_change,
    change_project,
]


def break_model(specs: Path, rng: random.Random) -> Callable[[], None]:
    """An error in one Model spec (a serving version it does not declare, or YAML that
    does not parse); returns what puts the spec back."""
    model = rng.choice(_models(specs))
    before = model.read_bytes()
    if rng.random() < 0.5:
        _replace(model, r"serving:\n    version: 2", "serving:\n    version: 9")
    else:
        model.write_bytes(before + b"spec: [unclosed\n")
    return lambda: model.write_bytes(before)


# --- the comparison ------------------------------------------------------------------------


def assert_same_as_full(specs: Path, out: Path, full: Path) -> CompileResult:
    result = compile_tree(specs, out)
    reference = compile_tree(specs, full, force=True)
    assert result.diagnostics == reference.diagnostics
    assert result.ok == reference.ok
    if result.ok:
        assert read_tree(out) == read_tree(full)
    if result.ok and not result.up_to_date:  # which reports no counts
        assert result.model_environments == reference.model_environments
        assert result.unchecked_kinds == reference.unchecked_kinds
    return result


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KILN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(forking.JOBS_ENV, "1")  # the workers are tested in test_parallel


@pytest.mark.parametrize("seed", SEEDS)
def test_random_edits_compile_as_a_full_compile_does(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    specs, out, full = tmp_path / "specs", tmp_path / "out", tmp_path / "full"
    generate(specs, MODELS)
    assert compile_tree(specs, out).ok
    taken: dict[str, int] = {}
    for _ in range(STEPS):
        if rng.random() < 0.15:  # an error, then its fix
            written = read_tree(out)
            restore = break_model(specs, rng)
            failed = assert_same_as_full(specs, out, full)
            assert not failed.ok and read_tree(out) == written, "a failed compile wrote"
            restore()
            kind = "fix"
        else:
            kind = rng.choice(EDITS)(specs, rng)
        result = assert_same_as_full(specs, out, full)
        assert result.ok
        if kind == "none":
            assert result.up_to_date
        if kind == "project":
            assert not result.incremental, "a Project change is compiled in full"
        if kind == "model" and result.incremental:
            assert result.rebuilt <= 2 * len(ENVIRONMENTS)  # a renamed file: two specs
        if result.incremental:
            taken[kind] = taken.get(kind, 0) + 1
            assert result.rebuilt < result.model_environments
    # An implementation that always compiled in full would pass all of the above.
    assert taken.get("model", 0) >= 5 and taken.get("featureset", 0) >= 1, taken


def test_one_model_changed_renders_its_environments_only(tmp_path: Path) -> None:
    specs, out = tmp_path / "specs", tmp_path / "out"
    generate(specs, MODELS)
    assert compile_tree(specs, out).ok
    _replace(specs / "models" / "model-00003.yaml", "roc_auc: 0.91", "roc_auc: 0.93")
    result = compile_tree(specs, out)
    assert result.ok and result.incremental
    assert result.rebuilt == len(ENVIRONMENTS)
    assert result.model_environments == MODELS * len(ENVIRONMENTS)
    assert result.report is not None and result.report.removed == []
    assert {p.split("/")[1] for p in result.report.written} == {"model-00003"}
    assert compile_tree(specs, out).up_to_date  # recorded: the next compile is a no-op


def test_a_featureset_change_renders_the_models_using_it(tmp_path: Path) -> None:
    specs, out = tmp_path / "specs", tmp_path / "out"
    generate(specs, MODELS)  # features-0 serves models 0 to 9
    assert compile_tree(specs, out).ok
    change_featureset_0 = specs / "featuresets" / "features-0.yaml"
    _replace(change_featureset_0, r"uri: features-0/", "uri: moved/")
    result = compile_tree(specs, out)
    assert result.ok and result.incremental and result.rebuilt == 10 * len(ENVIRONMENTS)


@pytest.mark.parametrize("mode", [WriteBack.CHECK, WriteBack.DIFF])
def test_check_diff_and_force_never_take_the_incremental_path(
    tmp_path: Path, mode: WriteBack
) -> None:
    specs, out = tmp_path / "specs", tmp_path / "out"
    generate(specs, MODELS)
    assert compile_tree(specs, out).ok
    _replace(specs / "models" / "model-00001.yaml", "roc_auc: 0.91", "roc_auc: 0.92")
    checked = compile_tree(specs, out, mode)
    assert not checked.incremental and checked.rebuilt == MODELS * len(ENVIRONMENTS)
    forced = compile_tree(specs, out, force=True)
    assert forced.ok and not forced.incremental


def test_a_damaged_or_missing_state_means_a_full_compile(tmp_path: Path) -> None:
    specs, out = tmp_path / "specs", tmp_path / "out"
    generate(specs, MODELS)
    assert compile_tree(specs, out).ok
    (state,) = (tmp_path / "cache" / cache.SIGNED / build_state.STATES).iterdir()
    model = specs / "models" / "model-00002.yaml"
    for damage in (b"", b"not marshal", state.read_bytes()[:-9], None):
        if damage is None:
            state.unlink()
        else:
            state.write_bytes(damage)
        _replace(model, r"max_queue_delay_us: \d+", f"max_queue_delay_us: {len(damage or b'')}")
        result = compile_tree(specs, out)
        assert result.ok and not result.incremental
        (state,) = (
            tmp_path / "cache" / cache.SIGNED / build_state.STATES
        ).iterdir()  # recorded anew
    _replace(model, r"max_queue_delay_us: \d+", "max_queue_delay_us: 1")
    assert compile_tree(specs, out).incremental


def test_an_output_changed_by_hand_means_a_full_compile(tmp_path: Path) -> None:
    specs, out, full = tmp_path / "specs", tmp_path / "out", tmp_path / "full"
    generate(specs, MODELS)
    assert compile_tree(specs, out).ok
    edited = out / "dev" / "model-00005" / "triton" / "config.pbtxt"
    edited.write_text("edited by hand\n", encoding="utf-8")
    _replace(specs / "models" / "model-00001.yaml", "roc_auc: 0.91", "roc_auc: 0.92")
    result = assert_same_as_full(specs, out, full)
    assert result.ok and not result.incremental


def test_a_file_in_the_way_is_reported_as_a_full_compile_reports_it(tmp_path: Path) -> None:
    specs, out = tmp_path / "specs", tmp_path / "out"
    generate(specs, MODELS)
    assert compile_tree(specs, out).ok
    text = MODEL.format(index=777, team=1, featureset=0, batch=16, minute=7)
    (specs / "models" / "new.yaml").write_text(text, encoding="utf-8")
    (out / "dev" / "model-00777").mkdir()
    (out / "dev" / "model-00777" / "triton").write_text("mine\n", encoding="utf-8")
    result = compile_tree(specs, out)
    assert not result.ok and [d.code for d in result.diagnostics] == ["KILN1901"]
    assert not result.incremental


def test_the_example_specs_compile_incrementally(tmp_path: Path) -> None:
    """The real example: a local environment, local model files, warnings if any."""
    root = tmp_path / "project"
    shutil.copytree(EXAMPLE_SPECS, root / "specs")
    specs, out, full = root / "specs", root / "generated", root / "full"
    assert compile_tree(specs, out).ok
    _replace(specs / "models" / "car-price.yaml", r"owner: [^\n]*", "owner: other@acme.example")
    result = assert_same_as_full(specs, out, full)
    assert result.ok and result.incremental
    _replace(specs / "featuresets" / "car-listing.yaml", r"uri: car-price/", "uri: cars/")
    result = assert_same_as_full(specs, out, full)
    assert result.ok and result.incremental
    assert fingerprint.unchanged(out, fingerprint.inputs(specs, None) or "") is not None
