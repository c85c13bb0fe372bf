"""The generated files that change, by folder."""

from __future__ import annotations

from compiler.api import CompileResult
from compiler.plan.result import FolderChange


def file_changes(base: CompileResult | None, head: CompileResult) -> list[FolderChange]:
    before = {a.path: a.content for a in base.artifacts} if base is not None else {}
    after = {a.path: a.content for a in head.artifacts}
    folders: dict[str, FolderChange] = {}

    def entry(path: str) -> FolderChange:
        folder, _, _ = path.rpartition("/")
        key = folder + "/" if folder else "./"
        return folders.setdefault(key, FolderChange(key))

    for path in sorted(before.keys() | after.keys()):
        name = path.rpartition("/")[2]
        if path not in before:
            entry(path).added.append(name)
        elif path not in after:
            entry(path).removed.append(name)
        elif before[path] != after[path]:
            entry(path).changed.append(name)
    return [folders[k] for k in sorted(folders)]
