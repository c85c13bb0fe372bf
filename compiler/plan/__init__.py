"""Plan: what a change to the specs does, in words, per model and environment.

Both sides are compiled in memory with `build()`: the base revision from git
objects (`git ls-tree` + `git cat-file --batch` into a temporary folder; the
working tree, the index and HEAD are never touched) and the head from the spec
folder. Each (model, environment) is then described as an ordered table of
facts, a topic and its value in words ("replicas" -> "2-4"), and the plan is the
difference of the two tables. A change and its revert therefore read as exact
opposites: the same topics with old and new swapped.

What the facts do not name (a warm-up batch size, a training argument) still
shows up, by its spec path, so that no change to a model goes unmentioned.

Modules: `revision` reads the base revision from git objects; `facts`,
`spec_paths` and `project` put models and the project into words; `diff` compares
two fact tables; `describe` turns a model-environment into sentences; `files`
summarises the generated files; `compare` builds the `Plan` (`result`); `render`
writes it as Markdown or text.
"""

from compiler.plan.compare import make_plan, plan_change
from compiler.plan.describe import application_name
from compiler.plan.diff import Change, diff_facts
from compiler.plan.facts import SUMMARY_TOPICS, alert_condition, model_facts, rollout_path
from compiler.plan.project import project_facts
from compiler.plan.render import (
    LEVELS,
    MARKDOWN_LIMIT,
    MARKER,
    TEMPLATES,
    Limits,
    headline,
    markdown_code,
    markdown_text,
    render_failure,
    render_plan,
)
from compiler.plan.result import FolderChange, Group, ModelSection, Plan
from compiler.plan.revision import (
    BaseTree,
    GitError,
    base_specs,
    export_tree,
    git,
    relative_to_root,
    repository_root,
    resolve_commit,
)

__all__ = [
    "LEVELS",
    "MARKDOWN_LIMIT",
    "MARKER",
    "SUMMARY_TOPICS",
    "TEMPLATES",
    "BaseTree",
    "Change",
    "FolderChange",
    "GitError",
    "Group",
    "Limits",
    "ModelSection",
    "Plan",
    "alert_condition",
    "application_name",
    "base_specs",
    "diff_facts",
    "export_tree",
    "git",
    "headline",
    "make_plan",
    "markdown_code",
    "markdown_text",
    "model_facts",
    "plan_change",
    "project_facts",
    "relative_to_root",
    "render_failure",
    "render_plan",
    "repository_root",
    "resolve_commit",
    "rollout_path",
]
