"""Temporary git repositories holding the example specs, for the GitOps tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL = "specs/models/car-loan-default.yaml"
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Kiln Test",
    "GIT_AUTHOR_EMAIL": "kiln@example.invalid",
    "GIT_COMMITTER_NAME": "Kiln Test",
    "GIT_COMMITTER_EMAIL": "kiln@example.invalid",
}


def git(repo: Path, *args: str, check: bool = True) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=check,
        env={**os.environ, **GIT_IDENTITY},
    )
    return done.stdout


def edit(repo: Path, relative: str, old: str, new: str) -> None:
    path = repo / relative
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {relative}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def new_repo(root: Path) -> Path:
    """A git repository holding a copy of the example specs, committed on main."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(
        REPO_ROOT / "specs", root / "specs", ignore=shutil.ignore_patterns(".*", "__pycache__")
    )
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "example specs")
    return root


def add_version_two(repo: Path) -> None:
    """Version 2 of car-loan-default (the same ONNX file, as a new version), served."""
    folder = repo / "specs/artifacts/models/car-loan-default/2"
    folder.mkdir(parents=True)
    shutil.copy(folder.parent / "1" / "model.onnx", folder / "model.onnx")
    edit(
        repo,
        MODEL,
        "      metrics: {roc_auc: 0.9704}\n",
        "      metrics: {roc_auc: 0.9704}\n"
        "    - version: 2\n"
        "      artifact:\n"
        "        uri: car-loan-default/2/model.onnx\n"
        "        sha256: 905bf2965a39c334beb2be804dd0a7dd58c6accbf6f1086e8ac7dffa43d450ca\n"
        "      metrics: {roc_auc: 0.9712}\n",
    )
    edit(repo, MODEL, "  serving:\n    version: 1", "  serving:\n    version: 2")
