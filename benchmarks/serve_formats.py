"""`benchmarks/serve.py --per-format`: one local Triton serving a model of each format it
runs, measured at each batch size, next to the format's own library in process.

ONNX (car-price), LightGBM (car-price-gbm) and TorchScript (car-price-torch) take rows of
NannyML's car-price data; the formats golden tree's XGBoost classifier and python model
take random rows of their FeatureSet's width (their features are made up). The
TorchScript row needs the `torch` extra (left out, saying so, without it); with it the
server runs the backend venv that holds torch.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from serve import ROOT, Call, Cell, load, render

from compiler.ir import ModelIR
from compiler.served import artifact_sources, model_ir
from compiler.targets import serving, triton
from runtime.contract.served import ServedModel
from runtime.contract.torch_predict import torch_missing
from runtime.local.serve import TritonServer, assemble_local, choose_endpoints, prepare_runtime
from runtime.local.triton_dist import default_cache
from runtime.serving.references import Reference, reference_for
from runtime.serving.sample_data import load_sample
from runtime.serving.smoke import connect

GOLDEN = ROOT / "tests" / "golden" / "formats" / "specs"
MODELS = (
    ("onnx", ROOT / "specs", "car-price"),
    ("lightgbm", ROOT / "specs", "car-price-gbm"),
    ("xgboost", GOLDEN, "default-xgb"),
    ("python", GOLDEN, "default-python"),
    ("torchscript", ROOT / "specs", "car-price-torch"),
)
ROWS = 2000


def _served(ir: ModelIR, root: Path) -> ServedModel:
    config = triton.serialize(triton.build_config(ir))
    sources = artifact_sources(ir, root)
    return ServedModel(
        ir.name, "local", serving.signature(ir), sources, config, Path("(memory)"), root
    )


def _reference(ir: ModelIR, local: ServedModel) -> Reference | None:
    if ir.format.name == "python":
        return None  # a python model is its own library: nothing to run beside it
    try:
        path = Path(local.artifacts[0].uri)
        parameters = dict(ir.format.parameters)
        return reference_for(ir.format.name, path, parameters, True, local.signature)
    except ValueError:
        return None  # no reference opens this file


def _arrays(local: ServedModel, reference: Reference | None) -> dict[str, np.ndarray]:
    signature = local.signature
    if reference is not None:
        try:
            _, frame = load_sample(reference.columns(signature))
            return reference.inputs(frame, signature, ROWS)
        except Exception:  # noqa: S110 no NannyML data has these columns: random rows below
            pass
    rng = np.random.default_rng(0)
    return {
        t.name: rng.normal(size=(ROWS, *(max(d, 1) for d in t.shape[1:]))).astype(np.float32)
        for t in signature.inputs
    }


def per_format(seconds: float, threads: int, protocol: str, batches: Sequence[int]) -> int:
    models = []
    for name, specs, model in MODELS:
        if name == "torchscript" and torch_missing() is not None:
            print(f"torchscript left out: {torch_missing()}")
            continue
        ir, root = model_ir(specs, model, "local")
        local = _served(ir, root)
        reference = _reference(ir, local)
        models.append((name, ir, local, reference, _arrays(local, reference)))
    torch = any(m[1].format.name == "torchscript" for m in models)
    dist, backend = prepare_runtime(default_cache(), torch)
    cells: list[Cell] = []
    with tempfile.TemporaryDirectory(prefix="kiln-bench-") as folder:
        repository = Path(folder) / "repository"
        for _, _, local, _, _ in models:
            assemble_local(local, repository)
        endpoints = choose_endpoints(metrics_port=None)
        names = [m[1].name for m in models]
        log = Path(folder) / "triton.log"
        with TritonServer(dist, backend, repository, names, endpoints, log) as server:
            server.start()
            ready_s = server.wait_ready(120)
            url = endpoints.grpc if protocol == "grpc" else endpoints.http
            for name, ir, _, reference, arrays in models:
                outputs = [t.name for t in ir.outputs]
                for batch in batches:
                    if batch > ir.serving.max_batch_size:
                        continue

                    def remote(model: str = ir.name, outputs: list[str] = outputs) -> Call:
                        client = connect(url, protocol, timeout=30)
                        return lambda part: client.infer(model, "1", part, outputs)

                    cells.append(load(f"{name}: triton", remote, arrays, batch, threads, seconds))
                    if reference is not None:

                        def library(
                            reference: Reference = reference, outputs: list[str] = outputs
                        ) -> Call:
                            return lambda part: reference.run(part, outputs)

                        label = f"{name}: {reference.library} in-process"
                        cells.append(load(label, library, arrays, batch, threads, seconds))
    print(
        f"one Triton (python backend, CPU) serving {len(models)} formats; client {protocol} on "
        f"loopback, {threads} threads; {seconds:.0f} s per row; server ready in {ready_s:.1f} s"
    )
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU(s), {time.strftime('%Y-%m')}")
    print(render(cells))
    return 0
