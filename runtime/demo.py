"""`make demo`: Kiln's main job on the embedded `local` environment, step by step.

For now: make sure the example models exist (training them if not), compile the
example platform, and show what was generated. Later steps of the lifecycle
(local training pipeline, Triton, monitoring) join as they land.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
OUT = ROOT / "generated"
EXAMPLES = {
    "car-loan-default": SPECS / "artifacts/models/car-loan-default/1/model.onnx",
    "car-price": SPECS / "artifacts/models/car-price/1/model.onnx",
}


def step(number: int, text: str) -> None:
    print(f"\n[{number}] {text}", flush=True)


def ensure_models() -> None:
    missing = [name for name, path in EXAMPLES.items() if not path.is_file()]
    if not missing:
        print("    example models present:", ", ".join(EXAMPLES))
        return
    for name in missing:
        print(f"    training {name} (scikit-learn on NannyML's reference period)...")
        subprocess.run(
            [sys.executable, "-m", "runtime.train_example", "--model", name],
            cwd=ROOT,
            check=True,
        )


def compile_examples() -> int:
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "compiler", "compile", "--specs", "specs", "--out", "generated"],
        cwd=ROOT,
    )
    print(f"    took {time.perf_counter() - started:.2f} s (including Python start-up)")
    return completed.returncode


def show_output() -> None:
    by_folder: dict[str, list[str]] = defaultdict(list)
    for path in sorted(OUT.rglob("*")):
        if path.is_file() and path.parent != OUT:
            relative = path.relative_to(OUT).as_posix()
            environment, model, rest = relative.split("/", 2)
            by_folder[f"{environment}/{model}"].append(rest)
    for folder, files in by_folder.items():
        print(f"    generated/{folder}/: {', '.join(files)}")
    local = OUT / "local/car-loan-default/triton/config.pbtxt"
    if local.is_file():
        print("\n    the local Triton config of car-loan-default begins:")
        for line in local.read_text(encoding="utf-8").splitlines()[1:12]:
            print(f"      {line}")


def main() -> int:
    print("Kiln demo: compile the example ML platform in specs/ for local, staging, production")
    step(1, "example models (ONNX exported with skl2onnx)")
    ensure_models()
    step(2, "kiln compile --specs specs --out generated")
    if compile_examples() != 0:
        print("demo stopped: the compile failed (see the diagnostics above)")
        return 1
    step(3, "what was generated")
    show_output()
    print("\nDone. Try `.venv/bin/kiln validate` after editing a spec to see diagnostics.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
