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

from compiler.plan.compare import plan_change
from compiler.plan.render import MARKER, render_failure, render_plan
from compiler.plan.revision import (
    GitError,
    git,
    relative_to_root,
    repository_root,
    resolve_commit,
)

# What the rest of Kiln uses; the tests import the modules' other names from them.
__all__ = [
    "MARKER",
    "GitError",
    "git",
    "plan_change",
    "relative_to_root",
    "render_failure",
    "render_plan",
    "repository_root",
    "resolve_commit",
]
