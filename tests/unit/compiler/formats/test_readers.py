"""What Kiln reads from model files of each format, on real files: XGBoost and
LightGBM models trained by the libraries, a SavedModel whose MetaGraphDef was built
with TensorFlow's own messages, and TorchScript-layout archives
(tests/formats/make_artifacts.py says how each was made)."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import pytest

from compiler.formats import NotTheFormat, python_model, savedmodel, torchscript, tree_models
from tests.tools import REPO_ROOT

GOLDEN = REPO_ROOT / "tests" / "golden" / "formats" / "specs" / "artifacts" / "models"
MORE = REPO_ROOT / "tests" / "formats" / "artifacts"
FEATURES = ("age", "income", "debt_ratio", "tenure")


def test_xgboost_json_gives_its_feature_names_and_count() -> None:
    model = tree_models.read_xgboost_json(GOLDEN / "default-xgb" / "1" / "xgboost.json")
    assert model == tree_models.TreeModel(FEATURES, 4)


def test_xgboost_json_without_names_gives_the_count() -> None:
    model = tree_models.read_xgboost_json(MORE / "xgboost-unnamed.json")
    assert model == tree_models.TreeModel(None, 4)


def test_lightgbm_text_gives_its_feature_names_and_count() -> None:
    model = tree_models.read_lightgbm_text(GOLDEN / "income-lgbm" / "1" / "model.txt")
    assert model == tree_models.TreeModel(FEATURES, 4)
    other = tree_models.read_lightgbm_text(MORE / "lightgbm-other-names.txt")
    assert other.features == ("a", "b", "c", "d")


def test_a_tree_file_of_the_other_library_is_refused() -> None:
    with pytest.raises(NotTheFormat, match="invalid JSON at byte 0"):
        tree_models.read_xgboost_json(GOLDEN / "income-lgbm" / "1" / "model.txt")
    with pytest.raises(NotTheFormat, match="does not start with `tree`"):
        tree_models.read_lightgbm_text(GOLDEN / "default-xgb" / "1" / "xgboost.json")


def test_savedmodel_serving_signature_is_read_without_tensorflow() -> None:
    signature = savedmodel.read_signature(GOLDEN / "default-tf" / "1" / "model.savedmodel")
    float32 = 1  # DT_FLOAT
    assert signature.inputs == tuple((name, float32, (-1, 1)) for name in sorted(FEATURES))
    assert signature.outputs == (("score", float32, (-1, 1)),)


def test_savedmodel_without_the_wanted_signature_names_the_ones_it_has() -> None:
    with pytest.raises(NotTheFormat, match=r"no signature `predict` \(it has "):
        savedmodel.read_signature(GOLDEN / "default-tf" / "1" / "model.savedmodel", "predict")


def test_a_folder_without_saved_model_pb_or_with_garbage_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotTheFormat, match=r"saved_model\.pb; none found"):
        savedmodel.read_signature(tmp_path)
    (tmp_path / "saved_model.pb").write_bytes(b"\xff\xff\xff\xff")
    with pytest.raises(NotTheFormat, match="not a SavedModel protobuf"):
        savedmodel.read_signature(tmp_path)


def test_torchscript_layout_is_accepted() -> None:
    torchscript.check_torchscript(GOLDEN / "default-torch" / "1" / "model.pt")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("checkpoint.pt", "torch.save checkpoint"),
        ("legacy.pt", "plain pickle"),
        ("xgboost-unnamed.json", "not a zip archive"),
    ],
)
def test_what_is_not_torchscript_is_named(name: str, reason: str) -> None:
    with pytest.raises(NotTheFormat, match=reason):
        torchscript.check_torchscript(MORE / name)


def test_a_zip_without_data_pkl_is_not_pytorch(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model/readme.txt", "hello")
    with pytest.raises(NotTheFormat, match=r"no data\.pkl"):
        torchscript.check_torchscript(path)


def test_torchscript_check_never_unpickles(tmp_path: Path) -> None:
    """A pickle that would run code if loaded is only looked at."""
    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps(print, protocol=2))
    with pytest.raises(NotTheFormat, match="plain pickle"):
        torchscript.check_torchscript(path)


MODEL_PY = "class TritonPythonModel:\n    def execute(self, requests):\n        return []\n"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("class Model:\n    def execute(self, requests):\n        pass\n", "no top-level class"),
        ("class TritonPythonModel:\n    def initialize(self, args):\n        pass\n", "no method"),
        ("class TritonPythonModel(\n", "not valid Python"),
        ("def f():\n    class TritonPythonModel:\n        def execute(self): ...\n", "top-level"),
    ],
)
def test_model_py_must_define_triton_python_model_with_execute(
    tmp_path: Path, text: str, reason: str
) -> None:
    path = tmp_path / "model.py"
    path.write_text(text)
    with pytest.raises(NotTheFormat, match=reason):
        python_model.check_model_py(path)


def test_model_py_is_parsed_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "model.py"
    path.write_text(f"open({str(marker)!r}, 'w').write('x')\n" + MODEL_PY)
    python_model.check_model_py(path)
    assert not marker.exists()
    python_model.check_model_py(GOLDEN / "default-python" / "1" / "model.py")


@pytest.mark.parametrize(
    "binding",
    [
        "def compute(**inputs):\n    return inputs\n",
        "compute = dict\n",
        "from preprocessing import derive as compute\n",
    ],
)
def test_an_ensemble_step_binds_compute_at_module_level(tmp_path: Path, binding: str) -> None:
    path = tmp_path / "model.py"
    path.write_text(binding + MODEL_PY)
    python_model.check_step_py(path)


@pytest.mark.parametrize(
    "text",
    [
        MODEL_PY,
        MODEL_PY + "    def compute(self, **inputs):\n        return inputs\n",
        "def make():\n    def compute(**inputs): ...\n" + MODEL_PY,
    ],
)
def test_an_ensemble_step_without_module_level_compute_is_refused(
    tmp_path: Path, text: str
) -> None:
    path = tmp_path / "model.py"
    path.write_text(text)
    python_model.check_model_py(path)  # a served python model needs no compute()
    with pytest.raises(NotTheFormat, match="no module-level function `compute"):
        python_model.check_step_py(path)


def test_the_example_ensemble_steps_define_compute() -> None:
    steps = REPO_ROOT / "specs" / "artifacts" / "models" / "car-price-pipeline"
    found = sorted(steps.rglob("model.py"))
    assert found
    for path in found:
        python_model.check_step_py(path)


XGBOOST3 = REPO_ROOT / "tests" / "formats" / "xgboost3"


def test_an_xgboost_json_read_names_what_the_file_is_instead(tmp_path: Path) -> None:
    path = tmp_path / "xgboost.json"
    path.write_bytes((XGBOOST3 / "binary.ubj").read_bytes())
    with pytest.raises(NotTheFormat, match="is XGBoost UBJSON") as ubj:
        tree_models.read_xgboost_json(path)
    assert ubj.value.hint is not None and "xgboost_ubj" in ubj.value.hint
    text = (GOLDEN / "default-xgb" / "1" / "xgboost.json").read_bytes()
    path.write_bytes(text[: len(text) // 2])
    with pytest.raises(NotTheFormat, match=f"truncated JSON at byte {len(text) // 2}"):
        tree_models.read_xgboost_json(path)
    path.write_bytes(b'{"learner": {}}')
    with pytest.raises(NotTheFormat, match="JSON without learner"):
        tree_models.read_xgboost_json(path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(NotTheFormat, match="not UTF-8 text"):
        tree_models.read_xgboost_json(path)


def test_an_xgboost_3_file_is_read_with_what_keeps_kiln_from_serving_it() -> None:
    golden = tree_models.read_xgboost_json(GOLDEN / "default-xgb" / "1" / "xgboost.json")
    assert golden.problem is None  # one base score in brackets: read right since issue 19
    assert tree_models.read_xgboost_json(XGBOOST3 / "multiclass.json").problem is None
    two = tree_models.read_xgboost_json(XGBOOST3 / "two-targets.json").problem
    assert two is not None and two.kind == "outputs" and "2 targets" in two.message


def test_ubjson_and_binary_xgboost_files_are_checked_by_their_content() -> None:
    assert tree_models.xgboost_problem(XGBOOST3 / "binary.ubj", "xgboost_ubj") is None
    two = tree_models.xgboost_problem(XGBOOST3 / "two-targets.ubj", "xgboost_ubj")
    assert two is not None and two.kind == "outputs"
    # XGBoost 3 writes UBJSON under any other name; FIL would read it as the old binary.
    named = tree_models.xgboost_problem(XGBOOST3 / "binary.ubj", "xgboost")
    assert named is not None and named.kind == "format" and "UBJSON" in named.message
