"""Rollback: prepare, as one local git commit, the change that moves a model back.

Three ways, all ending in a commit of the spec and the recompiled output together:
- `--to VERSION`: set the served version (of one environment, or the model's
  default) by a targeted edit of the spec's text that keeps its comments and layout;
- `--to REF`: restore the model's spec file as it was at a revision;
- neither: revert the last commit that changed the model's spec file.

Nothing is ever pushed: the commit goes through review like any change, and
merging it is what deploys the rollback (see docs/rollback.md).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compiler.api import compile_tree
from compiler.diagnostics import Diagnostic, Path_
from compiler.load import Document
from compiler.plan import GitError, git, relative_to_root, repository_root, resolve_commit
from compiler.resolve import Resolution, resolve
from runtime.contract import spec_edit


class Refused(Exception):
    """Kiln will not prepare this rollback; the message says why."""

    def __init__(self, message: str, diagnostics: list[Diagnostic] | None = None) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics or []


@dataclass(frozen=True)
class Repo:
    root: Path
    specs: str  # repository-relative
    out: str

    def run(self, *args: str) -> str:
        try:
            return git(list(args), self.root).decode("utf-8", "replace")
        except GitError as exc:
            raise Refused(f"git {args[0]} failed: {exc}") from exc

    def has_staged_changes(self) -> bool:
        done = subprocess.run(
            ["git", "diff", "--cached", "--quiet"], cwd=self.root, capture_output=True, check=False
        )
        return done.returncode == 1


def _open_repo(specs: Path, out: Path) -> Repo:
    try:
        root = repository_root(specs)
        return Repo(root, relative_to_root(specs, root), relative_to_root(out, root))
    except GitError as exc:
        raise Refused(str(exc)) from exc


def _inside(path: str, folder: str) -> bool:
    return folder in ("", ".") or path == folder or path.startswith(folder.rstrip("/") + "/")


def _require_clean(repo: Repo) -> None:
    """No tracked change anywhere, and nothing untracked where Kiln reads or writes."""
    status = repo.run("status", "--porcelain=v1", "-z", "--untracked-files=all")
    dirty: list[str] = []
    for record in status.split("\0"):
        if len(record) < 4:
            continue
        code, path = record[:2], record[3:]
        if code != "??" or _inside(path, repo.specs) or _inside(path, repo.out):
            dirty.append(path)
    if dirty:
        shown = ", ".join(sorted(dirty)[:5]) + (" ..." if len(dirty) > 5 else "")
        raise Refused(
            f"the working tree has uncommitted changes ({shown}): commit or stash them first, "
            "so that the rollback commit holds the rollback only"
        )


def _model_document(resolution: Resolution, name: str) -> Document:
    models: dict[str, Document] = {}
    for document in resolution.documents.values():
        metadata = document.data.get("metadata")
        if document.data.get("kind") == "Model" and isinstance(metadata, dict):
            models[str(metadata.get("name"))] = document
    if name not in models:
        known = ", ".join(sorted(models)) or "none"
        raise Refused(f"there is no Model named {name!r} in the specs (models: {known})")
    return models[name]


def _environments(resolution: Resolution) -> list[str]:
    for document in resolution.documents.values():
        spec = document.data.get("spec")
        if document.data.get("kind") == "Project" and isinstance(spec, dict):
            listed = spec.get("environments")
            if isinstance(listed, list):
                return [str(e.get("name")) for e in listed if isinstance(e, dict)]
    return []


def _get(data: Any, path: Path_) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


# ---------------------------------------------------------------------------
# A targeted edit of one integer in a YAML file, verified by parsing it again


def set_integer(text: str, document: Document, path: Path_, value: int) -> str | None:
    """`text` with the integer at `path` set to `value` (added if absent), or None if no
    edit both parses and changes exactly that one value. The edit is the one `kiln
    promote` and the publish step make (runtime/contract/spec_edit.py)."""
    try:
        return spec_edit.set_integer(text, document.path, [str(key) for key in path], value)
    except spec_edit.SpecEditError:
        return None


# ---------------------------------------------------------------------------
# The three ways


@dataclass
class _Change:
    subject: str
    body: str
    paths: list[str]  # repository-relative, staged with the output
    undo: Callable[[], None]
    conflicted: list[str] = field(default_factory=list)  # output files a revert left conflicted


def _by_version(
    repo: Repo,
    document: Document,
    file: Path,
    model: str,
    environment: str | None,
    version: int,
    environments: list[str],
) -> _Change:
    spec = document.data.get("spec", {})
    declared = [v.get("version") for v in spec.get("versions", []) if isinstance(v, dict)]
    if not declared:
        raise Refused(
            f"{model} has no version yet, so there is nothing to roll back to; "
            f"`kiln run {model} --local` trains and publishes a first one"
        )
    if version not in declared:
        listed = ", ".join(map(str, declared))
        raise Refused(f"{model} has no version {version} (versions: {listed})")
    base = _get(document.data, ("spec", "serving", "version"))
    if environment is not None:
        path: Path_ = ("spec", "environments", environment, "serving", "version")
        current = _get(document.data, path) or base
    else:
        path = ("spec", "serving", "version")
        current = base
    if current == version:
        where = f" in {environment}" if environment else ""
        raise Refused(f"{model} already serves version {version}{where}")
    text = file.read_text(encoding="utf-8")
    edited = set_integer(text, document, path, version)
    if edited is None:
        shown = ".".join(map(str, path))
        raise Refused(f"cannot edit {document.path} safely: set {shown} to {version} by hand")
    file.write_text(edited, encoding="utf-8", newline="")
    relative = relative_to_root(file, repo.root)
    shown = ".".join(map(str, path))
    body = (
        f"Sets {shown} to {version} (was {current}) in {document.path} and recompiles the output."
    )
    if environment is None:
        keeping = [
            f"{e} ({_get(document.data, ('spec', 'environments', e, 'serving', 'version'))})"
            for e in environments
            if _get(document.data, ("spec", "environments", e, "serving", "version")) is not None
        ]
        if keeping:
            body += (
                f" Environments that set their own serving.version keep it: {', '.join(keeping)}."
            )
    where = f" in {environment}" if environment else ""
    flag = f" --env {environment}" if environment else ""
    body += f"\n\nPrepared by `kiln rollback {model}{flag} --to {version}`."
    return _Change(
        f"Roll back {model}{where} to version {version}",
        body,
        [relative],
        lambda: _restore(repo, [relative]),
    )


def _by_revision(repo: Repo, document: Document, file: Path, model: str, ref: str) -> _Change:
    try:
        commit = resolve_commit(repo.root, ref)
    except GitError as exc:
        raise Refused(str(exc)) from exc
    relative = relative_to_root(file, repo.root)
    try:
        old = git(["cat-file", "blob", f"{commit}:{relative}"], repo.root)
    except GitError as exc:
        raise Refused(f"{relative} does not exist at {ref}") from exc
    if old == file.read_bytes():
        raise Refused(f"{relative} is already as it was at {ref}")
    file.write_bytes(old)
    body = (
        f"Restores {relative} as it was at {ref} ({commit[:12]}) and recompiles the output."
        f"\n\nPrepared by `kiln rollback {model} --to {ref}`."
    )
    return _Change(
        f"Roll back {model} to its spec at {ref}",
        body,
        [relative],
        lambda: _restore(repo, [relative]),
    )


def _by_revert(repo: Repo, file: Path, model: str) -> _Change:
    relative = relative_to_root(file, repo.root)
    last = repo.run("log", "-n", "1", "--format=%H", "--", relative).strip()
    if not last:
        raise Refused(f"no commit has changed {relative}: there is nothing to revert")
    parents = repo.run("rev-list", "--parents", "-n", "1", last).split()
    subject = repo.run("log", "-n", "1", "--format=%s", last).strip()
    touched = repo.run("diff-tree", "--no-commit-id", "--name-only", "-r", "-m", last).split()
    mainline = ["-m", "1"] if len(parents) > 2 else []
    conflicted: list[str] = []
    try:
        git(["revert", "--no-commit", *mainline, last], repo.root)
    except GitError as exc:
        unmerged = repo.run("diff", "--name-only", "--diff-filter=U", "-z").split("\0")
        conflicted = [p for p in unmerged if p]
        # Conflicts in the output (the manifest, most often, when later commits compiled
        # other models) are settled by compiling; conflicts in specs need a person.
        if not conflicted or not all(_inside(p, repo.out) for p in conflicted):
            _abort_revert(repo)
            shown = ", ".join(p for p in conflicted if not _inside(p, repo.out))
            reason = f"it conflicts in {shown}" if shown else str(exc)
            raise Refused(
                f"git revert of {last[:12]} does not apply cleanly: {reason}; "
                "revert it by hand, or use --to REF|VERSION"
            ) from exc
    others = sorted({p for p in touched if p != relative and not _inside(p, repo.out)})
    body = (
        f"This reverts commit {last}.\n\nRolls back {model}: reverts the last change to {relative}"
    )
    body += " and recompiles the output."
    if others:
        body += f" The reverted commit also changed: {', '.join(others)}."
    body += f"\n\nPrepared by `kiln rollback {model}`."
    return _Change(f'Revert "{subject}"', body, [], lambda: _abort_revert(repo), conflicted)


def _abort_revert(repo: Repo) -> None:
    """Drop the revert: every tracked change now is the revert's (the tree was clean)."""
    for args in (["revert", "--abort"], ["reset", "-q", "--hard", "HEAD"]):
        subprocess.run(["git", *args], cwd=repo.root, capture_output=True, check=False)
    _clean_output(repo)


def _restore(repo: Repo, paths: list[str]) -> None:
    subprocess.run(
        ["git", "reset", "-q", "--", *paths, repo.out],
        cwd=repo.root,
        capture_output=True,
        check=False,
    )
    subprocess.run(
        ["git", "checkout", "-q", "--", *paths], cwd=repo.root, capture_output=True, check=False
    )
    _clean_output(repo)


def _clean_output(repo: Repo) -> None:
    """Put the output folder back as HEAD has it (it held nothing untracked before)."""
    subprocess.run(
        ["git", "checkout", "-q", "HEAD", "--", repo.out],
        cwd=repo.root,
        capture_output=True,
        check=False,
    )
    subprocess.run(
        ["git", "clean", "-fdq", "--", repo.out], cwd=repo.root, capture_output=True, check=False
    )


def _has_conflict_markers(path: Path) -> bool:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return False  # deleted by the compile: settled
    return any(line.startswith(("<<<<<<< ", ">>>>>>> ")) or line == "=======" for line in lines)


def rollback(
    specs: Path, out: Path, model: str, environment: str | None, target: str | None
) -> str:
    """Prepare the rollback commit; return what to tell the person. Raises Refused."""
    repo = _open_repo(specs, out)
    _require_clean(repo)
    resolution = resolve(specs)
    document = _model_document(resolution, model)
    environments = _environments(resolution)
    if environment is not None and environment not in environments:
        raise Refused(
            f"unknown environment {environment!r} (environments: {', '.join(environments)})"
        )
    file = specs.resolve().parent / document.path
    if target is not None and target.isdigit():
        change = _by_version(repo, document, file, model, environment, int(target), environments)
    elif target is not None:
        change = _by_revision(repo, document, file, model, target)
    else:
        change = _by_revert(repo, file, model)
    result = compile_tree(specs, out)
    if not result.ok:
        change.undo()
        raise Refused(
            "the rolled-back specs do not compile; nothing was changed",
            [d for d in result.diagnostics if d.is_error],
        )
    marked = [p for p in change.conflicted if _has_conflict_markers(repo.root / p)]
    if marked:
        change.undo()
        raise Refused(f"compiling did not settle the conflicts in {', '.join(marked)}")
    repo.run("add", "-A", "--", *change.paths, repo.out)
    if not repo.has_staged_changes():
        change.undo()
        raise Refused("the rollback changes nothing: there is nothing to commit")
    try:
        git(["commit", "-q", "-m", change.subject, "-m", change.body], repo.root)
    except GitError as exc:
        change.undo()
        raise Refused(f"git commit failed, nothing was changed: {exc}") from exc
    short = repo.run("rev-parse", "--short=12", "HEAD").strip()
    return (
        f"committed {short}: {change.subject}\n\n{change.body}\n\n"
        f"Nothing was pushed. Review it with `git show {short}`, push a branch and open a pull "
        "request: merging it is what deploys the rollback.\n"
    )
