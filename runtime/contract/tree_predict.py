"""How a tree model served by Triton's FIL backend answers, computed with the model's own
library (xgboost or lightgbm) on the CPU.

Two places use it: the local Triton's python-backend adapter (which copies this file
beside itself, so it imports nothing from Kiln and only numpy at the top), and
`kiln smoke`, which compares what Triton answers with this in process. FIL's meaning of
its parameters (fil_backend docs/model_config.md): `output_class` false gives the raw
prediction (a regressor's value); true gives a classifier's class, decided by
`threshold` (default 0.5) for two classes and by the largest score for more, unless
`predict_proba` asks for a score per class (two columns, 1 - p and p, for binary).
FIL computes in float32, so the input is cast to float32 before the library sees it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# The file formats each library reads, by FIL's model_type.
LIBRARIES = {
    "xgboost": "xgboost",
    "xgboost_json": "xgboost",
    "xgboost_ubj": "xgboost",
    "lightgbm": "lightgbm",
}
DEFAULT_THRESHOLD = 0.5


class TreeModelError(Exception):
    """The model file or the parameters cannot be served this way."""


def _flag(parameters: dict[str, str], name: str) -> bool:
    return parameters.get(name, "false").strip().lower() == "true"


class TreePredictor:
    """One tree model loaded with its library, answering as FIL would."""

    def __init__(self, path: str, parameters: dict[str, str]) -> None:
        model_type = parameters.get("model_type", "")
        library = LIBRARIES.get(model_type)
        if library is None:
            raise TreeModelError(
                f"model_type {model_type!r} is not served locally (serve one of "
                f"{', '.join(sorted(LIBRARIES))})"
            )
        self.library = library
        self.output_class = _flag(parameters, "output_class")
        self.predict_proba = _flag(parameters, "predict_proba")
        self.threshold = float(parameters.get("threshold", DEFAULT_THRESHOLD))
        self.booster = _load(library, path)

    @property
    def width(self) -> int:
        """The number of feature columns the model reads."""
        if self.library == "xgboost":
            return int(self.booster.num_features())
        return int(self.booster.num_feature())

    def raw(self, rows: np.ndarray) -> np.ndarray:
        """The library's own prediction: a value (or P(class 1)) per row, or a score per
        class for more than two classes."""
        features = np.ascontiguousarray(rows, dtype=np.float32)
        if self.library == "xgboost":
            # inplace_predict uses the model's own objective transform, like predict().
            return np.asarray(self.booster.inplace_predict(features))
        # LightGBM takes its thread count per call (a loaded model keeps the file's).
        return np.asarray(self.booster.predict(features, num_threads=1))

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """FIL's output__0 for `rows` ([n, width] float32): [n, 1] or [n, classes]."""
        return fil_answer(self.raw(rows), self.output_class, self.predict_proba, self.threshold)


def fil_answer(
    raw: np.ndarray,
    output_class: bool,
    predict_proba: bool,
    threshold: float = DEFAULT_THRESHOLD,
) -> np.ndarray:
    """FIL's output__0 from a library's own prediction (a value or P(class 1) per row, or
    a score per class): the one definition of what FIL answers, which the pipeline's
    steps (runtime/steps/model_runner.py) use too."""
    scores = raw.reshape(len(raw), -1)  # [n, 1] for a value or P(class 1)
    if not output_class:
        return scores.astype(np.float32)
    if scores.shape[1] == 1:
        positive = scores[:, 0]
        if predict_proba:
            return np.stack([1.0 - positive, positive], axis=1).astype(np.float32)
        return (positive > threshold).astype(np.float32).reshape(-1, 1)
    if predict_proba:
        return scores.astype(np.float32)
    return np.argmax(scores, axis=1).astype(np.float32).reshape(-1, 1)


def _load(library: str, path: str) -> Any:
    # Imported here: the adapter needs only the library of the model it serves.
    if library == "xgboost":
        import xgboost

        booster = xgboost.Booster(model_file=path)
        booster.set_param({"nthread": 1})  # instances give the parallelism, as with ONNX
        return booster
    import lightgbm

    return lightgbm.Booster(model_file=path)
