"""`python -m runtime.serving.capture_step --install DIR`: the serving pod's init
container that puts the capture step into the model repository (see __init__.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from runtime.serving.capture_step import (
    TRITON_LIBRARIES,
    InstallError,
    install,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.serving.capture_step",
        description="Install the capture step (a Triton python-backend model) into a "
        "version folder of the model repository.",
    )
    parser.add_argument(
        "--install", required=True, type=Path, metavar="DIR", help="The step's version folder."
    )
    parser.add_argument(
        "--libraries",
        type=Path,
        default=TRITON_LIBRARIES,
        help="pyarrow installed for Triton's Python (default: %(default)s, the runtime image's).",
    )
    parser.add_argument(
        "--config", type=Path, help="The step's config.pbtxt, installed in DIR's parent."
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        lines = install(args.install, args.libraries, args.config)
    except (InstallError, OSError) as exc:
        print(f"capture step: {exc}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
