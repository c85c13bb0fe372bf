"""Rendering in worker processes gives exactly what one process gives."""

from __future__ import annotations

import multiprocessing
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from benchmarks.synthetic import ENVIRONMENTS, generate
from compiler import cache, fingerprint, forking, parallel
from compiler.api import build, compile_tree
from compiler.checks import manifests
from compiler.diagnostics import render
from compiler.emit import MANIFEST, WriteBack
from compiler.emit import files as emit_files

MODELS = 20  # x 3 environments: above parallel.MIN_PARALLEL
assert MODELS * len(ENVIRONMENTS) >= parallel.MIN_PARALLEL


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("parallel") / "specs"
    generate(folder, MODELS)
    return folder


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the worker pools started, so a test knows the parallel path ran."""
    started: list[int] = []
    real = multiprocessing.get_context

    def spy(method: str | None = None) -> Any:
        started.append(1)
        return real(method)

    monkeypatch.setattr(forking.multiprocessing, "get_context", spy)
    return started


def test_workers_write_the_same_bytes_as_one_process(
    specs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forks: list[int]
) -> None:
    monkeypatch.setenv(forking.JOBS_ENV, "1")
    alone = compile_tree(specs, tmp_path / "alone", force=True)
    assert alone.ok and not forks
    monkeypatch.setenv(forking.JOBS_ENV, "2")
    shared = compile_tree(specs, tmp_path / "shared", force=True)
    assert shared.ok and forks, "the parallel path did not run"
    one, two = read_tree(tmp_path / "alone"), read_tree(tmp_path / "shared")
    assert len(one) == MODELS * len(ENVIRONMENTS) * 26 + 3  # 26 files each, Argo CD, manifest
    assert one == two
    assert [a.path for a in alone.artifacts] == [a.path for a in shared.artifacts]


def test_workers_keep_objects_for_callers_that_need_them(
    specs: Path, monkeypatch: pytest.MonkeyPatch, forks: list[int]
) -> None:
    monkeypatch.setenv(forking.JOBS_ENV, "2")
    result = build(specs)  # what `kiln plan` uses: each artifact keeps its object
    assert result.ok and forks
    rollouts = [a for a in result.artifacts if a.kind == ("argoproj.io/v1alpha1", "Rollout")]
    assert len(rollouts) == MODELS * len(ENVIRONMENTS)
    assert all(a.document is not None and a.document["kind"] == "Rollout" for a in rollouts)


def test_specs_resolved_in_workers_give_what_resolving_first_gives(
    specs: Path, monkeypatch: pytest.MonkeyPatch, forks: list[int]
) -> None:
    """A compile resolves each Model spec in the worker that renders it; `kiln plan`
    resolves them all first: the same files, and the same count."""
    monkeypatch.setenv(forking.JOBS_ENV, "2")
    first = build(specs)
    inside = build(specs, keep_documents=False)
    assert first.ok and inside.ok and forks
    assert [(a.path, a.data) for a in first.artifacts] == [
        (a.path, a.data) for a in inside.artifacts
    ]
    assert inside.resolution.models == []  # left in the workers
    assert first.model_environments == inside.model_environments == MODELS * len(ENVIRONMENTS)


def test_spec_problems_found_in_workers_are_reported_as_when_resolving_first(
    specs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forks: list[int]
) -> None:
    """A model defined twice (in specs far apart, so in different workers), a spec that
    does not parse and one that does not resolve: each way of resolving, in one
    process or several, reports the same."""
    broken = tmp_path / "specs"
    shutil.copytree(specs, broken)
    models = broken / "models"
    first = (models / "model-00001.yaml").read_text()
    (models / "model-00018.yaml").write_text(first)  # model-00001 again
    spec = models / "model-00004.yaml"
    spec.write_text(spec.read_text().replace("owner:", "ownr:"))  # does not parse
    spec = models / "model-00009.yaml"
    spec.write_text(spec.read_text().replace("@1", "@7"))  # an undefined FeatureSet
    reports = []
    for jobs in ("1", "2"):
        monkeypatch.setenv(forking.JOBS_ENV, jobs)
        for keep in (True, False):
            result = build(broken, keep_documents=keep)
            assert not result.ok and result.artifacts == []
            reports.append(render(result.diagnostics, "text"))
    assert forks
    assert reports == [reports[0]] * 4
    lines = reports[0].splitlines()
    assert [line.split(": error")[0].split(":")[0] for line in lines] == [
        "specs/models/model-00004.yaml",
        "specs/models/model-00009.yaml",
        "specs/models/model-00018.yaml",
    ], lines
    assert "KILN1301" in lines[2] and "model-00001.yaml" in lines[2]


def test_problems_found_in_workers_are_reported_as_in_one_process(
    specs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forks: list[int]
) -> None:
    """A check failing in models that land in different workers: the same diagnostics,
    and nothing written."""
    real = manifests._names_and_labels

    def strict(artifact: Any, document: dict[str, Any], scan: Any) -> list[Any]:
        found = real(artifact, document, scan)
        name = document["metadata"]["name"]
        if document["kind"] == "PodDisruptionBudget" and name in ("model-00000", "model-00019"):
            found.append(manifests.ManifestProblem(artifact, "metadata.name", "refused here"))
        return found

    # Set before forking, so the workers inherit it.
    monkeypatch.setattr(manifests, "_names_and_labels", strict)
    outputs = []
    for jobs in ("1", "2"):
        monkeypatch.setenv(forking.JOBS_ENV, jobs)
        out = tmp_path / f"out-{jobs}"
        result = compile_tree(specs, out, force=True)
        assert not result.ok and not out.exists()
        assert not [p for p in tmp_path.iterdir() if "kiln-tmp" in p.name]  # nor its stage
        outputs.append(render(result.diagnostics, "text"))
    assert forks
    assert outputs[0] == outputs[1]
    assert outputs[0].count("refused here") == 2 * len(ENVIRONMENTS)
    assert "models/model-00019.yaml" in outputs[0]


def test_a_worker_that_cannot_write_leaves_nothing_behind(
    specs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forks: list[int]
) -> None:
    """Workers write a first compile's model folders into its stage: one failing to
    write is reported once, and neither the output nor the stage is left."""
    real = emit_files.write_new

    def full_disk(path: str, data: bytes) -> tuple[int, int]:
        if "/model-00017/" in path:  # a model the parent does not render itself
            raise OSError(28, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(emit_files, "write_new", full_disk)
    monkeypatch.setenv(forking.JOBS_ENV, "2")
    out = tmp_path / "out"
    result = compile_tree(specs, out)
    assert forks
    assert [d.code for d in result.diagnostics] == ["KILN1903"]
    assert "No space left on device" in result.diagnostics[0].message
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(emit_files, "write_new", real)
    assert compile_tree(specs, out).ok
    assert sorted(os.listdir(tmp_path)) == ["out"]
    assert compile_tree(specs, out, WriteBack.CHECK).ok


def test_jobs_follow_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(forking.JOBS_ENV, "3")
    assert forking.jobs_wanted() == 3
    monkeypatch.setenv(forking.JOBS_ENV, "0")
    assert forking.jobs_wanted() == 1
    monkeypatch.setenv(forking.JOBS_ENV, "many")
    assert forking.jobs_wanted() == 1
    monkeypatch.delenv(forking.JOBS_ENV)
    assert forking.jobs_wanted() == len(os.sched_getaffinity(0))


def test_forked_shares_do_every_item_and_answer_in_order(tmp_path: Path) -> None:
    items = [str(i) for i in range(9)]
    answers = forking.forked_each(items, lambda name: (name, os.getpid()), 3)
    assert [name for name, _ in answers] == items
    assert len({pid for _, pid in answers}) == 3  # this process and two forked ones
    forking.forked_each(items, lambda name: (tmp_path / name).write_text(name), 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(items)


def test_a_failing_share_fails_the_whole(tmp_path: Path) -> None:
    def write(name: str) -> None:
        if name == "4":  # in the share of a forked process (4 % 3 == 1)
            raise OSError("disk full")
        (tmp_path / name).write_text(name)

    with pytest.raises(OSError, match="disk full"):
        forking.forked_each([str(i) for i in range(6)], write, 3)


def test_a_first_compile_renames_whole_folders_into_place(
    specs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New folders are filled under a temporary name, by several processes: none of the
    temporary folders is left, and a second compile finds everything up to date."""
    monkeypatch.setenv(forking.JOBS_ENV, "2")
    out = tmp_path / "out"
    (out / "staging").mkdir(parents=True)  # one environment's folder exists already
    assert compile_tree(specs, out).ok  # out is new: no shortcut; the stats are recorded
    leftovers = [p for p in out.rglob("*") if "kiln-tmp" in p.name]
    assert leftovers == []
    assert sorted(p.name for p in out.iterdir()) == sorted([*ENVIRONMENTS, "argocd", MANIFEST])
    check = compile_tree(specs, out, force=True)
    assert check.ok and check.report is not None and check.report.written == []
    # The stats taken while writing are those the file system reports: the next
    # compile takes the no-change shortcut.
    assert compile_tree(specs, out).up_to_date


def test_a_damaged_fingerprint_record_means_a_full_compile(
    specs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The no-change shortcut trusts only a record it can read, of the same inputs."""
    monkeypatch.setenv("KILN_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    assert compile_tree(specs, out).ok
    assert compile_tree(specs, out).up_to_date
    (record,) = (tmp_path / "cache" / cache.SIGNED / fingerprint.RECORDS).iterdir()
    for damage in (b"", b'{"inputs": "x", "files": {}}', record.read_bytes()[:-7]):
        record.write_bytes(damage)
        again = compile_tree(specs, out)
        assert again.ok and not again.up_to_date
        assert again.report is not None and again.report.written == []
        assert compile_tree(specs, out).up_to_date  # the full compile recorded anew
        record = next((tmp_path / "cache" / cache.SIGNED / fingerprint.RECORDS).iterdir())
    (out / "staging" / "notes.txt").write_text("not Kiln's\n")  # not a file Kiln owns
    assert compile_tree(specs, out).up_to_date
    touched = next((out / "staging").rglob("*.yaml"))
    touched.write_bytes(touched.read_bytes())  # same bytes, new mtime: compiled again
    assert not compile_tree(specs, out).up_to_date


def test_specs_parsed_in_workers_equal_those_parsed_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forks: list[int]
) -> None:
    """A first compile of many files parses them in several processes: the same
    documents, source maps and diagnostics, in the same order, as one process."""
    from compiler.load import PARALLEL_PARSE, load_tree

    specs = tmp_path / "specs"
    generate(specs, PARALLEL_PARSE + 8)
    broken = specs / "models" / "model-00003.yaml"
    broken.write_text(broken.read_text() + "kind: Model\n")  # a duplicate key
    dated = specs / "models" / "model-00005.yaml"  # a date: parsed again in the parent
    dated.write_text(dated.read_text().replace("owner: team-5@example.com", "owner: 2024-01-01"))
    monkeypatch.setenv("KILN_CACHE_DIR", "off")  # nothing cached: every file is parsed
    loads = []
    for jobs in ("1", "2"):
        monkeypatch.setenv(forking.JOBS_ENV, jobs)
        documents, problems = load_tree(specs)
        loads.append(([(d.path, d.data, d.values, d.keys, d.digest) for d in documents], problems))
    assert forks
    assert loads[0] == loads[1]
    documents, problems = loads[1]
    models, featuresets = PARALLEL_PARSE + 8, (PARALLEL_PARSE + 8 + 9) // 10
    assert len(documents) == models - 1 + featuresets + 1  # the broken one out, the Project in
    assert [p.code for p in problems] == ["KILN1007"]  # duplicate key
    assert (
        str(
            documents[[d[0] for d in documents].index("specs/models/model-00005.yaml")][1][
                "metadata"
            ]["owner"]
        )
        == "2024-01-01"
    )


def test_specs_parsed_in_workers_are_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forks: list[int]
) -> None:
    from compiler.load import PARALLEL_PARSE, _cached, load_tree

    specs = tmp_path / "specs"
    generate(specs, PARALLEL_PARSE)
    monkeypatch.setenv("KILN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(forking.JOBS_ENV, "2")
    documents, _ = load_tree(specs)
    assert forks
    model = specs / "models" / "model-00007.yaml"
    cached = _cached("specs/models/model-00007.yaml", model.read_bytes())
    assert cached is not None
    parsed = next(d for d in documents if d.path == "specs/models/model-00007.yaml")
    assert (cached.data, cached.values, cached.keys) == (parsed.data, parsed.values, parsed.keys)


def _die_on_three(item: int) -> int:
    if item == 3:
        os._exit(9)  # a worker killed mid-task, as by the kernel's OOM killer
    return item * 2


def test_a_lost_worker_fails_at_once_instead_of_hanging() -> None:
    assert forking.forked_map(_die_on_three, [1, 2], 2) == [2, 4]
    with pytest.raises(forking.WorkerLost, match="KILN_JOBS=1"):
        forking.forked_map(_die_on_three, list(range(8)), 2)
