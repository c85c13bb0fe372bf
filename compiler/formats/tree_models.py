"""Feature names and counts of XGBoost and LightGBM models, read from their files
without the libraries: XGBoost's JSON model and LightGBM's text model are documented
formats whose header says what the model takes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compiler.formats import NotTheFormat
from runtime.contract import xgboost_file

# LightGBM writes its header before the first tree; Kiln reads no further than this.
LIGHTGBM_HEADER_MAX = 1024 * 1024


@dataclass(frozen=True)
class TreeModel:
    features: tuple[str, ...] | None  # None: the file names no features
    width: int  # the number of feature columns the model reads
    # Why the xgboost Kiln runs with would answer wrong with it (its writer, its outputs).
    problem: xgboost_file.Problem | None = None


def read_xgboost_json(path: Path) -> TreeModel:
    """XGBoost's JSON model (`save_model("m.json")`): learner.feature_names and
    learner.learner_model_param.num_feature (a string of digits)."""
    document = _json_document(path.read_bytes())
    try:
        learner = document["learner"]
        width = int(learner["learner_model_param"]["num_feature"])
    except (ValueError, KeyError, TypeError) as exc:
        raise NotTheFormat(
            "JSON without learner.learner_model_param.num_feature, which every XGBoost model has"
        ) from exc
    names = learner.get("feature_names") or None
    if names is not None and (
        not isinstance(names, list) or not all(isinstance(n, str) for n in names)
    ):
        raise NotTheFormat("learner.feature_names is not a list of names")
    try:
        problem = xgboost_file.problem(xgboost_file.header_from(document))
    except xgboost_file.XGBoostFileError as exc:
        raise NotTheFormat(str(exc)) from exc
    return TreeModel(tuple(names) if names else None, width, problem)


def _json_document(payload: bytes) -> Any:
    """The parsed JSON, or NotTheFormat naming what the file is instead: UBJSON (which
    XGBoost writes under other names), or where the JSON breaks (a truncated copy)."""
    if xgboost_file.file_kind(payload) == "ubj":
        raise NotTheFormat(
            "the file is XGBoost UBJSON, not the JSON that fil.model_type xgboost_json "
            "(or a .json name) says",
            "set fil.model_type: xgboost_ubj, or save the model as xgboost.json",
        )
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotTheFormat(f"not UTF-8 text, so not JSON (byte {exc.start})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        at = len(text[: exc.pos].encode("utf-8"))
        what = "truncated JSON" if exc.pos >= len(text.rstrip()) else "invalid JSON"
        raise NotTheFormat(f"{what} at byte {at} ({exc.msg})") from exc


def xgboost_problem(path: Path, model_type: str) -> xgboost_file.Problem | None:
    """What keeps a UBJSON or binary XGBoost file from being served right: a file whose
    content is not the format its model_type names (FIL reads it by model_type), or what
    its header says (runtime/contract/xgboost_file.py)."""
    payload = path.read_bytes()
    kind = xgboost_file.file_kind(payload)
    if model_type == "xgboost" and kind != "binary":
        message = (
            f"the file is XGBoost {KIND_NAMES[kind]}, not the old binary format that "
            "fil.model_type xgboost names"
        )
        if kind == "ubj":
            message += " (XGBoost 3 writes UBJSON whatever the file's name)"
        return FormatMismatch("format", message, READER_OF_KIND[kind])
    try:
        header = xgboost_file.read_header(payload) if kind == "ubj" else None
    except xgboost_file.XGBoostFileError as exc:
        raise NotTheFormat(str(exc)) from exc
    return None if header is None else xgboost_file.problem(header)


KIND_NAMES = {"json": "JSON", "ubj": "UBJSON", "binary": "binary"}
# The fil.model_type that reads each kind of content.
READER_OF_KIND = {"json": "xgboost_json", "ubj": "xgboost_ubj", "binary": "xgboost"}


@dataclass(frozen=True)
class FormatMismatch(xgboost_file.Problem):
    """A file whose content is not what its model_type names; `reader` is the
    model_type that reads what the file holds."""

    reader: str


def read_lightgbm_text(path: Path) -> TreeModel:
    """LightGBM's text model (`save_model("model.txt")`): a header of key=value lines
    with max_feature_idx and feature_names (space separated)."""
    with path.open("rb") as file:
        head = file.read(LIGHTGBM_HEADER_MAX)
    lines = head.decode("utf-8", errors="replace").splitlines()
    if not lines or lines[0].strip() != "tree":
        raise NotTheFormat("not a LightGBM text model (it does not start with `tree`)")
    header = dict(
        line.split("=", 1) for line in lines[1:] if "=" in line and not line.startswith("Tree=")
    )
    try:
        width = int(header["max_feature_idx"]) + 1
    except (KeyError, ValueError) as exc:
        raise NotTheFormat("the LightGBM header has no max_feature_idx") from exc
    names = tuple(header.get("feature_names", "").split()) or None
    if names is not None and len(names) != width:
        raise NotTheFormat(
            f"the header names {len(names)} features but max_feature_idx says {width}"
        )
    return TreeModel(names, width)
