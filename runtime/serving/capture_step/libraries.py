"""pyarrow for the Python of the stock Triton image, which the capture step runs under.

tritonserver 25.01-py3 (specs/project.yaml) is Ubuntu 24.04 with Python 3.12 and numpy,
but no pyarrow. The runtime image installs this pin with `pip install --target` into
TRITON_LIBRARIES (Dockerfile), and the install step copies that folder beside the step.
pyarrow 22.0.0 is the last release that imports with numpy 1 (measured for the local
backend venv, which pins the same wheels: runtime/local/backend_env.py takes them from
here). `python -m runtime.serving.capture_step.libraries` prints the pip requirements.
"""

from __future__ import annotations

TRITON_PYTHON = "3.12"  # the Python of nvcr.io/nvidia/tritonserver:25.01-py3
PYARROW = "pyarrow==22.0.0"
# sha256 of the manylinux wheels PyPI lists, for Kiln's Python and Triton's.
PYARROW_DIGESTS = (
    "35ad0f0378c9359b3f297299c3309778bb03b8612f987399a0333a560b43862d",  # cp311 x86_64
    "b41f37cabfe2463232684de44bad753d6be08a7a072f6a83447eeaf0e4d2a215",  # cp311 aarch64
    "c6c791b09c57ed76a18b03f2631753a4960eefbbca80f846da8baefc6491fcfe",  # cp312 x86_64
    "334f900ff08ce0423407af97e6c26ad5d4e3b0763645559ece6fbf3747d6a8f5",  # cp312 aarch64
)


def requirements() -> str:
    """The pin in pip's hash-checking format."""
    hashes = " ".join(f"--hash=sha256:{digest}" for digest in PYARROW_DIGESTS)
    return f"{PYARROW} {hashes}\n"


if __name__ == "__main__":
    print(requirements(), end="")
