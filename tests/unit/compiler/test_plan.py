"""`kiln plan`: what a change to the specs does, in words, per model and environment.

Each test builds a git repository in a temporary folder from the repository's own
example specs (with their ONNX files), commits, edits, and plans the edit against
the commit: the way a pull request is planned in CI.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from compiler.api import build
from compiler.cli import cli
from compiler.diagnostics import Diagnostic
from compiler.lowering import lower_rollout
from compiler.plan import MARKER, plan_change, render_plan
from compiler.plan.diff import diff_facts
from compiler.plan.facts import rollout_path
from compiler.plan.render import MARKDOWN_LIMIT, markdown_text
from compiler.plan.result import FolderChange, Group, ModelSection, Plan
from compiler.spec.model import AB, Analysis, BlueGreen, Rollout, Shadow, Step
from tests.gitrepo import add_version_two, edit, git, new_repo
from tests.tools import REPO_ROOT

MODEL = "specs/models/car-loan-default.yaml"
ISTIO_CANARY = "canary through Istio: 10% for 10m, analysis, 50% for 30m, then 100%"


def kiln(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def plan_text(repo: Path, base: str = "HEAD") -> str:
    result = kiln("plan", "--base", base, "--specs", repo / "specs", "--format", "text")
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return new_repo(tmp_path / "repo")


def test_nothing_changed(repo: Path) -> None:
    text = plan_text(repo)
    assert "no change to what Kiln generates" in text
    assert "car-loan-default" not in text


def test_new_version_through_a_canary_gpus_and_an_alert(repo: Path) -> None:
    add_version_two(repo)
    edit(repo, MODEL, "resources: {gpus: 1,", "resources: {gpus: 2,")
    edit(repo, MODEL, "above: 80, for: 10m", "above: 70, for: 10m")
    plan = plan_change(repo / "specs", "HEAD")
    for environment in ("staging", "production"):
        lines = plan.sentences("car-loan-default", environment)
        assert f"serving version 1 -> 2 via {ISTIO_CANARY}" in lines
        assert "GPUs per pod 1 -> 2" in lines
        assert "instances per pod 2 x GPU on GPUs 0 -> 2 x GPU on GPUs 0, 1" in lines
        assert (
            "alert slow: latency_p99_ms above 80 for 10m, critical, to ml-oncall -> "
            "latency_p99_ms above 70 for 10m, critical, to ml-oncall"
        ) in lines
        assert any(line.startswith("version 2 added: s3://acme-models/") for line in lines)
    local = plan.sentences("car-loan-default", "local")
    assert "serving version 1 -> 2" in local  # no cluster, no rollout
    assert not any("GPUs per pod" in line for line in local)
    assert plan.sentences("car-price", "production") == []
    text = render_plan(plan, "text")
    assert "staging, production:" in text
    assert "production/car-loan-default/ changed" in text


def test_changes_are_described_by_topic(repo: Path) -> None:
    edit(
        repo,
        MODEL,
        'schedule: {cron: "0 3 * * 1", timezone: Europe/Amsterdam}',
        'schedule: {cron: "0 4 * * 2", timezone: UTC}',
    )
    edit(repo, MODEL, 'schedule: {cron: "0 * * * *"}', 'schedule: {cron: "*/30 * * * *"}')
    edit(repo, MODEL, "{metric: roc_auc, min: 0.85}", "{metric: roc_auc, min: 0.9}")
    edit(repo, MODEL, "slo: {latency_p99_ms: 50,", "slo: {latency_p99_ms: 40,")
    edit(repo, MODEL, "max_error_rate: 0.01,", "max_error_rate: 0.02,")
    edit(repo, MODEL, "categorical: [chi2]}", "categorical: [chi2], threshold: {std: 2.5}}")
    edit(repo, MODEL, "replicas: {min: 2, max: 4}", "replicas: {min: 3, max: 4}")
    edit(repo, MODEL, "{max_queue_delay_us: 500}", "{max_queue_delay_us: 1000}")
    edit(repo, MODEL, "warmup: {batch_sizes: [1, 64]}", "warmup: {batch_sizes: [1, 32]}")
    edit(repo, MODEL, "severity: warning, route: slack-ml}", "severity: warning, route: ml-oncall}")
    lines = plan_change(repo / "specs", "HEAD").sentences("car-loan-default", "production")
    expected = [
        "replicas 2-4 -> 3-4",
        "dynamic batching queue delay up to 500 us -> queue delay up to 1000 us",
        "SLO p99 latency 50 ms -> 40 ms",
        "analysis error-rate ceiling 1% -> 2%",
        "training schedule 0 3 * * 1 (Europe/Amsterdam) -> 0 4 * * 2 (UTC)",
        "training gates roc_auc >= 0.85; roc_auc at most 0.01 worse than the serving version"
        " -> roc_auc >= 0.9; roc_auc at most 0.01 worse than the serving version",
        "monitoring schedule 0 * * * * (UTC) -> */30 * * * * (UTC)",
        "univariate drift jensen_shannon (continuous), chi2 (categorical), the method's default"
        " threshold -> jensen_shannon (continuous), chi2 (categorical), threshold 2.5 std",
        "alert feature-drift: drift, warning, to slack-ml -> drift, warning, to ml-oncall",
        "serving.warmup.batch_sizes: [1, 64] -> [1, 32]",
    ]
    assert [line for line in lines if line in expected] == expected  # all, in this order
    # Staging overrides the replicas, so its replicas did not change.
    assert not any(
        line.startswith("replicas")
        for line in plan_change(repo / "specs", "HEAD").sentences("car-loan-default", "staging")
    )


def test_a_pod_template_change_says_the_pods_are_replaced(repo: Path) -> None:
    edit(repo, MODEL, 'cpu: "4", memory: 16Gi', 'cpu: "6", memory: 16Gi')
    lines = plan_change(repo / "specs", "HEAD").sentences("car-loan-default", "production")
    assert lines == ["CPU per pod 4 -> 6", f"the serving pods are replaced via {ISTIO_CANARY}"]


def test_a_strategy_change_is_a_rollout_change(repo: Path) -> None:
    edit(
        repo,
        MODEL,
        "steps: [{weight: 10, pause: 10m}, {analysis: true}, {weight: 50, pause: 30m}]",
        "steps: [{weight: 5, pause: 1h}, {analysis: true}]",
    )
    lines = plan_change(repo / "specs", "HEAD").sentences("car-loan-default", "staging")
    assert lines == [
        f"rollout {ISTIO_CANARY} -> canary through Istio: 5% for 1h, analysis, then 100%"
    ]


def test_rollout_paths_of_every_strategy(repo: Path) -> None:
    result = build(repo / "specs")
    model = next(m for m in result.resolution.models if m.environment.name == "production")
    analysis = Analysis()  # rollout_path says only whether there is one
    cases = {
        "recreate: every pod replaced at once, with downtime": Rollout(strategy="recreate"),
        "blue-green: preview Service, analysis before promotion, promotion by hand, "
        "old pods kept 10m": Rollout(
            strategy="blue_green",
            analysis=analysis,
            blue_green=BlueGreen(auto_promotion=False, scale_down_delay="10m"),
        ),
        "shadow through Istio: 50% of traffic mirrored for 1h, analysis, then 100%": Rollout(
            strategy="shadow",
            traffic="istio",
            analysis=analysis,
            shadow=Shadow(mirror_percent=50, duration="1h"),
        ),
        "A/B through Istio: requests with x-cohort: beta, plus 5% of the rest, for 2h, "
        "then 100%": Rollout(
            strategy="ab",
            traffic="istio",
            ab=AB(header="x-cohort", value="beta", weight=5, duration="2h"),
        ),
        "canary by pod count: 33% for 5m, 50% for 5m, then 100%": Rollout(strategy="canary"),
        "canary by pod count: 25%, pause 5m, analysis, then 100%": Rollout(
            analysis=analysis, steps=[Step(weight=25), Step(pause="5m"), Step(analysis=True)]
        ),
    }
    for expected, rollout in cases.items():
        pods = model.serving.replicas.min
        assert (
            rollout_path(
                replace(model, rollout=lower_rollout(rollout, pods, "binary_classification"))
            )
            == expected
        )


def test_removing_a_model_says_loudly_that_argo_cd_deletes_it(repo: Path) -> None:
    git(repo, "rm", "-q", "specs/models/car-price.yaml")
    result = kiln("plan", "--base", "HEAD", "--specs", repo / "specs")
    assert result.exit_code == 0, result.output
    markdown = result.output
    assert markdown.startswith(MARKER + "\n")
    assert "> [!CAUTION]" in markdown
    assert (
        "**Merging this deletes 2 Argo CD Application(s) and every resource they synced:** "
        "`staging-car-price`, `production-car-price`."
    ) in markdown
    plan = plan_change(repo / "specs", "HEAD")
    assert plan.deleted_applications == ["staging-car-price", "production-car-price"]
    assert plan.sentences("car-price", "production")[0] == (
        "REMOVED: Argo CD deletes the Application production-car-price and every resource it "
        "synced into namespace ml-prod (Rollout, Services, autoscaler, workflows) when this merges"
    )
    assert plan.sentences("car-price", "local") == [
        "removed from the local environment (nothing runs in a cluster)"
    ]
    removed = {f.folder: len(f.removed) for f in plan.folders if f.removed}
    assert removed["production/car-price/"] == 22


def test_adding_a_model(repo: Path) -> None:
    git(repo, "rm", "-q", "specs/models/car-price.yaml")
    git(repo, "commit", "-q", "-m", "no car-price")
    git(repo, "checkout", "-q", "HEAD~1", "--", "specs/models/car-price.yaml")
    plan = plan_change(repo / "specs", "HEAD")
    lines = plan.sentences("car-price", "staging")
    assert lines[0] == "added as the new Application staging-car-price in namespace ml-staging"
    assert "serving version: 1" in lines
    assert (
        "rollout: blue-green: preview Service, analysis before promotion, automatic "
        "promotion, old pods kept 5m"
    ) in lines
    assert "alerts: mae-rise, price-drift" in lines
    assert plan.deleted_applications == []
    assert "(added):" in render_plan(plan, "text")


def test_project_changes(repo: Path) -> None:
    edit(
        repo,
        "specs/project.yaml",
        "{name: ml-oncall, alertmanager: {url: http://alertmanager-operated.monitoring.svc:9093}}",
        "{name: ml-oncall, alertmanager: {url: http://alertmanager-operated.ops.svc:9093}}",
    )
    edit(repo, "specs/project.yaml", "quota: 16", "quota: 24")
    plan = plan_change(repo / "specs", "HEAD")
    assert plan.project == [
        "environment production: gpu.quota: 16 -> 24",
        "alert route ml-oncall: Alertmanager at "
        "http://alertmanager-operated.monitoring.svc:9093 -> "
        "Alertmanager at http://alertmanager-operated.ops.svc:9093",
    ]


def test_a_base_that_does_not_compile_is_treated_as_empty(repo: Path) -> None:
    edit(repo, MODEL, "  serving:\n    version: 1", "  serving:\n    version: 9")
    git(repo, "commit", "-q", "-am", "broken")
    edit(repo, MODEL, "  serving:\n    version: 9", "  serving:\n    version: 1")
    result = kiln("plan", "--base", "HEAD", "--specs", repo / "specs", "--format", "text")
    assert result.exit_code == 0, result.output
    assert "the base revision HEAD does not compile (" in result.output
    assert "so everything below is described as added" in result.output
    assert "error[KILN1307]" in result.output
    plan = plan_change(repo / "specs", "HEAD")
    assert plan.base_failed
    assert all(g.status == "added" for s in plan.sections for g in s.groups)


def test_a_base_without_specs(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "README.md").write_text("nothing yet\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "empty")
    shutil.copytree(REPO_ROOT / "specs", root / "specs")
    plan = plan_change(root / "specs", "main")
    assert plan.base_missing
    assert "has no spec folder" in render_plan(plan, "markdown")
    assert plan.sentences("car-price", "production")[0].startswith("added as the new")


def test_the_working_tree_must_compile(repo: Path, tmp_path: Path) -> None:
    edit(repo, MODEL, "  serving:\n    version: 1", "  serving:\n    version: 9")
    out = tmp_path / "plan.md"
    result = kiln("plan", "--base", "HEAD", "--specs", repo / "specs", "--out", out)
    assert result.exit_code == 1
    assert "specs/models/car-loan-default.yaml:" in result.output
    assert "error[KILN1307]" in result.output
    written = out.read_text()
    assert written.startswith(MARKER)
    assert "The specs do not compile (3 error(s)): there is nothing to plan." in written


def test_an_unknown_revision_is_a_usage_error(repo: Path) -> None:
    result = kiln("plan", "--base", "no-such-branch", "--specs", repo / "specs")
    assert result.exit_code == 2
    assert "unknown revision 'no-such-branch'" in result.output


def test_outside_a_repository(tmp_path: Path) -> None:
    shutil.copytree(REPO_ROOT / "specs", tmp_path / "specs")
    result = kiln("plan", "--base", "HEAD", "--specs", tmp_path / "specs")
    assert result.exit_code == 2, result.output
    assert "is not inside a git repository" in result.output


def test_planning_touches_neither_the_working_tree_nor_git(repo: Path) -> None:
    add_version_two(repo)
    git(repo, "add", "specs/artifacts")
    before = (git(repo, "status", "--porcelain"), git(repo, "rev-parse", "HEAD"))
    index = (repo / ".git" / "index").read_bytes()
    files = {p: p.read_bytes() for p in (repo / "specs").rglob("*") if p.is_file()}
    plan_text(repo)
    assert (git(repo, "status", "--porcelain"), git(repo, "rev-parse", "HEAD")) == before
    assert (repo / ".git" / "index").read_bytes() == index
    assert {p: p.read_bytes() for p in (repo / "specs").rglob("*") if p.is_file()} == files


def test_the_plan_names_no_temporary_folder(repo: Path, tmp_path: Path) -> None:
    edit(repo, MODEL, "  serving:\n    version: 1", "  serving:\n    version: 9")
    git(repo, "commit", "-q", "-am", "broken base")
    edit(repo, MODEL, "  serving:\n    version: 9", "  serving:\n    version: 1")
    for fmt in ("markdown", "text"):
        output = kiln("plan", "--base", "HEAD", "--specs", repo / "specs", "--format", fmt).output
        assert "kiln-plan-" not in output
        assert str(tmp_path) not in output
        assert "specs/models/car-loan-default.yaml" in output  # the base's diagnostic


def test_the_plan_is_deterministic(repo: Path) -> None:
    add_version_two(repo)
    assert plan_text(repo) == plan_text(repo)


# ---------------------------------------------------------------------------
# Markdown: escaped, and always within GitHub's comment limit


def test_markdown_shows_values_as_they_are() -> None:
    assert markdown_text("0 3 * * 1") == "0 3 \\* \\* 1"
    assert markdown_text("<!-- kiln-plan --> | [x](y) _a_ `b`") == (
        "&lt;!-- kiln-plan --> \\| \\[x\\](y) \\_a\\_ \\`b\\`"
    )


def synthetic_plan(sections: int, lines: int, width: int = 80) -> Plan:
    plan = Plan("origin/main", "0123456789abcdef" * 2 + "01234567")
    for index in range(sections):
        name = f"model-{index:05d}"
        plan.sections.append(
            ModelSection(
                name,
                [
                    Group(
                        ["staging", "production"],
                        "changed",
                        [f"setting {i} {'x' * width} -> {'y' * width}" for i in range(lines)],
                    )
                ],
            )
        )
        plan.deleted_applications.append(f"production-{name}")
        plan.folders.append(
            FolderChange(f"production/{name}/", changed=[f"file-{i}.yaml" for i in range(12)])
        )
    return plan


@pytest.mark.parametrize(
    ("sections", "lines", "width"),
    [(3, 2, 10), (400, 5, 40), (1500, 40, 80), (2, 20_000, 10), (1, 1, 200_000)],
)
def test_markdown_always_fits_a_comment(sections: int, lines: int, width: int) -> None:
    plan = synthetic_plan(sections, lines, width)
    markdown = render_plan(plan, "markdown")
    assert len(markdown) <= 65_536
    assert len(markdown.encode("utf-8")) <= MARKDOWN_LIMIT
    assert markdown.startswith(MARKER + "\n## Kiln plan\n")
    assert "production-model-00000" in markdown  # deletions are named first
    full = render_plan(plan, "text")
    if len(full) > 200_000:  # a huge change: summarised, and the note says how to see it all
        assert "kiln plan --base origin/main --format text" in markdown
    else:
        assert "kiln plan --base" not in markdown
        assert markdown.count("setting ") == sections * lines


def test_a_huge_real_change_fits(tmp_path: Path) -> None:
    """A hundred models appear at once: the comment summarises them."""
    root = new_repo(tmp_path / "repo")
    text = (root / "specs/models/car-price.yaml").read_text()
    for index in range(100):
        name = f"car-price-{index:03d}"
        copy = text.replace("name: car-price\n", f"name: {name}\n")
        (root / f"specs/models/{name}.yaml").write_text(copy)
    plan = plan_change(root / "specs", "HEAD")
    assert len(plan.sections) == 100
    markdown = render_plan(plan, "markdown")
    assert len(markdown.encode("utf-8")) <= MARKDOWN_LIMIT
    assert "model-environments 300 added" in markdown
    assert "for all of it" in markdown


def test_text_is_never_cut() -> None:
    plan = synthetic_plan(600, 5, 40)
    text = render_plan(plan, "text")
    assert len(text) > MARKDOWN_LIMIT
    assert text.count("setting ") == 600 * 5


def test_diagnostics_of_a_broken_base_are_capped_in_markdown() -> None:
    plan = Plan("main", "f" * 40)
    plan.base_problems = [
        Diagnostic(f"specs/models/m{i}.yaml", 1, 1, "KILN1005", "YAML syntax error")
        for i in range(500)
    ]
    markdown = render_plan(plan, "markdown")
    assert "does not compile (500 error(s))" in markdown
    assert "and 480 more" in markdown


def test_a_batch_job_change_is_listed_in_cluster_environments_only(repo: Path) -> None:
    edit(repo, MODEL, "chunk_rows: 20000", "chunk_rows: 5000")
    edit(repo, MODEL, 'schedule: {cron: "30 1 * * *"', 'schedule: {cron: "30 2 * * *"')
    change = plan_change(repo / "specs", "HEAD")
    lines = change.sentences("car-loan-default", "production")
    assert "batch.nightly.chunk_rows: 20000 -> 5000" in lines
    assert 'batch.nightly.schedule.cron: "30 1 * * *" -> "30 2 * * *"' in lines
    # Locally no job is rendered (`kiln predict` runs the step): nothing to say.
    assert not any("batch" in line for line in change.sentences("car-loan-default", "local"))


def test_a_setting_that_appears_or_goes_as_none_is_no_change() -> None:
    """A first promotion turns an unserved model's `serving: none` into the serving
    block's settings; the plan lists what is set, not what is absent either way."""
    before = {"serving": "none", "training image": "img:1"}
    after = {"serving.version": "1", "serving.optimization": "none", "training image": "img:1"}
    assert [c.sentence() for c in diff_facts(before, after)] == ["serving.version added: 1"]
    assert [c.sentence() for c in diff_facts(after, before)] == ["serving.version removed (was 1)"]
