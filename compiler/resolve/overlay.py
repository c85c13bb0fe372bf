"""Environment overlays: a Model spec as one environment of the Project sees it.

The overlay is merged into the file's plain data, not into the parsed objects, and
the result is validated again: a list in an overlay replaces the whole list, `null`
removes an optional block, and the merged spec gets the full validation a file gets.
A problem on a value the overlay set is shown on the overlay's line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from compiler.diagnostics import Diagnostic, Location, Locator, Path_
from compiler.load import Document
from compiler.parse import document_locator, translate
from compiler.spec.documents import ModelDoc
from compiler.spec.model import ModelSpec


def deep_merge(base: Any, overlay: Any, path: Path_ = ()) -> tuple[Any, set[Path_]]:
    """Merge `overlay` into `base`: mappings merge, everything else replaces.

    Also returns the paths whose value now comes from the overlay, so that a
    problem found in the merged spec can be shown on the overlay's line.
    """
    if not (isinstance(base, Mapping) and isinstance(overlay, Mapping)):
        return overlay, {path}
    merged = dict(base)
    replaced: set[Path_] = set()
    for key, value in overlay.items():
        if key in base:
            merged[key], inner = deep_merge(base[key], value, (*path, key))
            replaced |= inner
        else:
            merged[key] = value
            replaced.add((*path, key))
    return merged, replaced


def overlay_locator(document: Document, environment: str, replaced: set[Path_]) -> Locator:
    """A locator that shows a problem on a `replaced` path at the overlay's line."""
    overlay_root: Path_ = ("spec", "environments", environment)

    def locate(path: Path_, key: bool) -> Location:
        for cut in range(len(path), 1, -1):
            if path[:cut] in replaced:
                return document.locate((*overlay_root, *path[1:]), key=key)
        # A block the overlay changed in part (rollout, when it sets rollout.steps)
        # is, in this environment, what the overlay made of it.
        if len(path) > 1 and any(p[: len(path)] == path for p in replaced):
            return document.locate((*overlay_root, *path[1:]), key=key)
        return document.locate(path, key=key)

    return locate


def environment_spec(
    document: Document, doc: ModelDoc, environment: str
) -> tuple[ModelSpec | None, Locator, list[Diagnostic]]:
    """The Model spec in `environment`, the locator for its problems, and why the
    merged spec is invalid (the spec is None then)."""
    overlay = doc.spec.environments.get(environment)
    if not overlay:
        return doc.spec, document_locator(document), []
    base = {k: v for k, v in document.data["spec"].items() if k != "environments"}
    merged_spec, replaced = deep_merge(base, overlay)
    locate = overlay_locator(document, environment, {("spec", *p) for p in replaced})
    merged = {**document.data, "spec": merged_spec}
    try:
        return ModelDoc.model_validate(merged).spec, locate, []
    except ValidationError as exc:
        return None, locate, translate(exc, merged, ModelDoc, document.path, locate)
