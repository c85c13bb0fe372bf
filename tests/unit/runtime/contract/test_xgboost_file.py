"""Models written by XGBoost 3 answer, through Kiln's one tree-model loader and the xgboost
2.1 Kiln runs with, what XGBoost 3 itself answered (saved beside the fixtures, written by
tests/formats/xgboost3/make_fixtures.py); what 2.1 cannot represent is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import treelite  # the dev extra: Treelite reads the model as Triton's FIL backend does
import xgboost

from runtime.contract import xgboost_file
from runtime.contract.tree_predict import TreeModelError, TreePredictor
from runtime.local.serve import TREE_FILES
from runtime.serving.references import FIL_TOLERANCES
from tests.tools import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "formats" / "xgboost3"
ROWS = np.load(FIXTURES / "rows.npy")
GOLDEN_XGB = REPO_ROOT / "tests/golden/formats/specs/artifacts/models/default-xgb/1/xgboost.json"
SERVED = ("binary", "regressor", "multiclass")
TYPES = {"json": "xgboost_json", "ubj": "xgboost_ubj"}


def _want(name: str) -> np.ndarray:
    return np.load(FIXTURES / f"{name}.predict.npy")


@pytest.mark.parametrize("suffix", sorted(TYPES))
@pytest.mark.parametrize("name", SERVED)
def test_xgboost_2_alone_misreads_the_file_xgboost_3_wrote(name: str, suffix: str) -> None:
    """The fault the loader exists for: no error, and every row off."""
    assert xgboost.__version__.startswith("2.")
    booster = xgboost.Booster(model_file=str(FIXTURES / f"{name}.{suffix}"))
    wrong = booster.inplace_predict(ROWS).reshape(_want(name).shape)
    assert np.all(np.abs(wrong - _want(name)).max(axis=-1) > 1e-3)


@pytest.mark.parametrize("suffix", sorted(TYPES))
@pytest.mark.parametrize("name", SERVED)
def test_the_loader_answers_what_xgboost_3_answered(name: str, suffix: str) -> None:
    path = FIXTURES / f"{name}.{suffix}"
    before = path.read_bytes()
    predictor = TreePredictor(str(path), {"model_type": TYPES[suffix]})
    assert np.array_equal(predictor.raw(ROWS).reshape(_want(name).shape), _want(name))
    assert path.read_bytes() == before  # rewritten in memory only
    assert predictor.features == ("age", "income", "debt_ratio", "tenure")


def test_a_multiclass_model_serves_fil_probabilities_and_classes() -> None:
    path = str(FIXTURES / "multiclass.json")
    settings = {"model_type": "xgboost_json", "output_class": "true"}
    proba = TreePredictor(path, {**settings, "predict_proba": "true"}).predict(ROWS)
    assert np.array_equal(proba, _want("multiclass"))
    classes = TreePredictor(path, settings).predict(ROWS)[:, 0]
    assert np.array_equal(classes, np.argmax(_want("multiclass"), axis=1).astype("f4"))
    assert len(set(classes.tolist())) == 3


def test_a_categorical_model_answers_for_category_codes_as_xgboost_3_did() -> None:
    """XGBoost 3.1 keeps the categories' encoder (`cats`) in the file, which 2.1 skips;
    FIL gets the codes, and for codes both answer alike."""
    path = FIXTURES / "categorical.json"
    assert "cats" in json.loads(path.read_bytes())["learner"]["gradient_booster"]["model"]
    predictor = TreePredictor(str(path), {"model_type": "xgboost_json"})
    rows = np.load(FIXTURES / "categorical.rows.npy")
    assert np.array_equal(predictor.raw(rows), _want("categorical"))


def test_only_base_score_is_rewritten_and_a_file_of_xgboost_2_is_left_as_it_is() -> None:
    payload = (FIXTURES / "regressor.json").read_bytes()
    readable = xgboost_file.for_xgboost_2(payload)
    assert readable.margins is None
    document, original = json.loads(readable.payload), json.loads(payload)
    value = original["learner"]["learner_model_param"].pop("base_score")
    assert document["learner"]["learner_model_param"].pop("base_score") == value[1:-1]
    assert document == original
    again = xgboost_file.for_xgboost_2(readable.payload)  # a scalar, as 2.x writes it
    assert again.payload == readable.payload


@pytest.mark.parametrize("suffix", sorted(TYPES))
def test_a_model_of_two_targets_is_refused(suffix: str) -> None:
    path = FIXTURES / f"two-targets.{suffix}"
    with pytest.raises(TreeModelError, match="2 targets, which the xgboost Kiln runs"):
        TreePredictor(str(path), {"model_type": TYPES[suffix]})


def test_a_writer_newer_than_kiln_has_checked_is_refused() -> None:
    payload = (FIXTURES / "binary.json").read_bytes()
    newer = payload.replace(b'"version":[3,', b'"version":[4,', 1)
    assert newer != payload
    with pytest.raises(TreeModelError, match=r"written by XGBoost 4\.2\.0; Kiln reads models"):
        TreePredictor(newer, {"model_type": "xgboost_json"})


def test_the_ubjson_header_is_read_like_the_json_one() -> None:
    for name in (*SERVED, "two-targets"):
        json_header = xgboost_file.header_from(json.loads((FIXTURES / f"{name}.json").read_bytes()))
        start, end, ubj_header = xgboost_file._UBJ.header((FIXTURES / f"{name}.ubj").read_bytes())
        assert ubj_header == json_header
        assert ubj_header.version == (3, 2, 0)
        assert end > start


def test_the_golden_xgboost_3_file_matches_treelite_within_fil_tolerance() -> None:
    """Treelite reads the file as FIL does: the local adapter and smoke's reference now
    agree with the cluster (they were 0.053 apart on every row)."""
    rows = np.random.default_rng(0).normal(size=(2_000, 4)).astype(np.float32)
    library = TreePredictor(str(GOLDEN_XGB), {"model_type": "xgboost_json"}).raw(rows)
    model = treelite.frontend.load_xgboost_model(str(GOLDEN_XGB))
    fil = treelite.gtil.predict(model, rows, nthread=1).reshape(-1)
    bound = FIL_TOLERANCES["xgboost"].bound(library)
    assert 0 < np.max(np.abs(fil - library)) <= bound or np.array_equal(fil, library)


def test_beside_the_adapter_tree_predict_finds_the_file_reader_in_its_folder(
    tmp_path: Path,
) -> None:
    """The local Triton copies TREE_FILES into the model folder and has no Kiln."""
    for source in TREE_FILES:
        (tmp_path / source.name).write_bytes(source.read_bytes())
    script = (
        "import sys; sys.modules['runtime'] = None; sys.path.insert(0, sys.argv[1])\n"
        "import numpy as np, tree_predict\n"
        "p = tree_predict.TreePredictor(sys.argv[2], {'model_type': 'xgboost_json'})\n"
        "np.save(sys.argv[3], p.raw(np.load(sys.argv[4])))\n"
    )
    out = tmp_path / "answer.npy"
    model, rows = FIXTURES / "multiclass.json", FIXTURES / "rows.npy"
    command = [sys.executable, "-c", script, str(tmp_path), str(model), str(out), str(rows)]
    subprocess.run(command, check=True, cwd=tmp_path)
    assert np.array_equal(np.load(out), _want("multiclass"))


def test_a_damaged_file_is_refused_with_a_message_not_a_crash() -> None:
    ubj = (FIXTURES / "binary.ubj").read_bytes()
    for payload in (ubj[: len(ubj) // 2], b"{L" + bytes(7) + b"\x07learner" + b"[" * 100_000):
        with pytest.raises(TreeModelError, match="not an XGBoost UBJSON model"):
            TreePredictor(payload, {"model_type": "xgboost_ubj"})
    with pytest.raises(TreeModelError, match="not an XGBoost JSON model"):
        TreePredictor(b'{"learner":' + b"[" * 100_000, {"model_type": "xgboost_json"})
