"""A copy of the example platform whose car-price serves a freshly published, signed version.

The real publish step signs the bundled car-price model as version 2 with this machine's
key pair (in the tests' key folder), the spec change it writes is applied with `git
apply`, and serving moves to version 2: the state a merged training pull request leaves.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from runtime.local.keys import local_key_pair
from runtime.steps import publish
from tests.tools import REPO_ROOT

SPEC = Path("specs/models/car-price.yaml")
MODEL = REPO_ROOT / "specs/artifacts/models/car-price/1/model.onnx"
STORE = Path("specs/artifacts/models")  # the local environment's model store
DATA_SHA256 = "d" * 64
TRAINER = (
    '{"estimator":"hist_gradient_boosting","holdout":0.2,"library":"sklearn",'
    '"params":{"max_iter":100,"max_leaf_nodes":15}}'
)


def signed_platform(root: Path) -> Path:
    """Write the platform under `root`; returns `root`."""
    shutil.copytree(REPO_ROOT / "specs", root / "specs")
    metrics = root / "metrics.json"
    metrics.write_text(json.dumps({"mae": 849.34}))
    argv = [
        *("--model", str(MODEL), "--store", str(root / STORE), "--name", "car-price"),
        *("--version", "2", "--metrics", str(metrics), "--data-sha256", DATA_SHA256),
        *("--seed", "7", "--git-revision", "0123abc", "--trainer", TRAINER),
        *("--signing-key", str(local_key_pair(root).private)),
        *("--spec", str(root / SPEC), "--spec-path-in-repo", SPEC.as_posix()),
        *("--out", str(root / "publish")),
    ]
    assert publish.main(argv) == 0
    subprocess.run(["git", "apply", str(root / "publish" / "spec.patch")], cwd=root, check=True)
    spec = root / SPEC
    spec.write_text(
        spec.read_text().replace("  serving:\n    version: 1\n", "  serving:\n    version: 2\n")
    )
    return root
