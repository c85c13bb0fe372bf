"""Shared test fixtures: a small valid spec tree, written inline into a folder."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

PROJECT = """\
apiVersion: kiln/v1alpha1
kind: Project
metadata: {name: unit}
spec:
  git: {repo: https://github.com/example/unit.git}
  images: {runtime: ghcr.io/example/runtime:0.1.0, triton: nvcr.io/nvidia/tritonserver:25.01-py3}
  storage: {models: s3://unit-models, data: s3://unit-data}
  environments:
    - {name: local, kind: local}
    - {name: staging, namespace: ml-staging}
"""

FEATURESET = """\
apiVersion: kiln/v1alpha1
kind: FeatureSet
metadata: {name: signals}
spec:
  version: 1
  entity: id
  timestamp: ts
  source: {uri: signals/}
  features:
    - {name: x, dtype: float32, kind: continuous}
    - {name: s, dtype: string, kind: categorical}
"""

MODEL = """\
apiVersion: kiln/v1alpha1
kind: Model
metadata: {{name: {name}}}
spec:
  task: binary_classification
  features: signals@1
  target: y
  signature:
    inputs:
      - {{name: x, dtype: fp32, shape: [-1, 3]}}
      - {{name: s, dtype: string, shape: [-1, 1]}}
    outputs:
      - {{name: label, dtype: int64, shape: [-1]}}
      - {{name: probabilities, dtype: fp32, shape: [-1, 2]}}
  versions: [{{version: 1, artifact: {{uri: {name}/1/model.onnx}}}}]
  serving:
    version: 1
    max_batch_size: 8
    dynamic_batching: {{max_queue_delay_us: 100}}
    warmup: {{batch_sizes: [1, 8]}}
"""


SpecFiles = Callable[..., dict[str, str]]
WriteTree = Callable[..., Path]


def _spec_files(models: Iterable[str] = ("alpha", "beta")) -> dict[str, str]:
    """A valid tree: a Project (local + staging), a FeatureSet and one Model per name."""
    files = {"project.yaml": PROJECT, "featuresets/signals.yaml": FEATURESET}
    files.update({f"models/{name}.yaml": MODEL.format(name=name) for name in models})
    return files


def _write_tree(root: Path, files: dict[str, str], *, reverse: bool = False) -> Path:
    """Write `files` under `root` (in reverse order on request) and return `root`."""
    for relative in sorted(files, reverse=reverse):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[relative], encoding="utf-8", newline="\n")
    return root


@pytest.fixture(scope="session")
def spec_files() -> SpecFiles:
    """`spec_files(models=("alpha", "beta"))`: {relative path: text} of a valid tree."""
    return _spec_files


@pytest.fixture(scope="session")
def write_tree() -> WriteTree:
    """`write_tree(root, files, reverse=False)`: writes the files, returns `root`."""
    return _write_tree


@pytest.fixture(autouse=True, scope="session")
def _signing_keys_outside_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`kiln run --local` and `kiln serve` make this machine's key pair on first use; the
    tests keep theirs in a temporary folder, never in the user's configuration."""
    folder = tmp_path_factory.mktemp("kiln-keys") / "keys"
    previous = os.environ.get("KILN_KEY_DIR")
    os.environ["KILN_KEY_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("KILN_KEY_DIR", None)
    else:
        os.environ["KILN_KEY_DIR"] = previous
