"""Assemble a Triton ensemble's model repository: every step as a single model is
assembled (artifact fetched, sha256 checked, signature verified against the trust), and
the ensemble's own folder (its config beside an empty version folder, which is all
Triton's ensemble scheduler, part of the core server, needs).

One code path for `kiln serve` (runtime/local/ensemble.py, which adds the python-backend
adapter beside an ONNX step) and the serving pod's init container, which runs::

    python -m runtime.serving.ensemble --model car-price-pipeline --version 1 \\
        --config /etc/kiln/triton/config.pbtxt --repository /models \\
        --step car-price-pipeline.prep=/etc/kiln/triton/car-price-pipeline.prep.config.pbtxt \\
        --artifact car-price-pipeline.prep=s3://acme-models/car-price-pipeline/prep/model.py \\
        --sha256 car-price-pipeline.prep=410e... [--signature STEP=URI] [--trust FILE]

A step whose files Kiln ships in the runtime image, not a user artifact (the cluster's
capture step, runtime/serving/capture_step), is given as `--capture-step STEP=CONFIG`:
it is installed into the same staging folder, so the capture ensemble is placed whole too.

All or nothing across the repository: the steps and the ensemble are written into a
staging folder inside it, and moved into place only when every one is complete. A step
that fails (a digest, a signature, a config) leaves the repository as it was, and the
command exits 1, so the pod's Triton never starts on part of an ensemble.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from runtime.contract.served import ArtifactSource, ServedStep
from runtime.contract.signing import Trust
from runtime.serving.assemble import (
    CONFIG_FILE,
    AssembleError,
    _replace,  # the swap that leaves the old folder or the new one, never a mix
    assemble,
    checked,
    parse_config,
    read_trust,
)
from runtime.serving.capture_step import TRITON_LIBRARIES, InstallError, install
from runtime.serving.flags import FlagError, keyed

ExtraFiles = Callable[[ServedStep], Sequence[Path]]


def _no_extra_files(step: ServedStep) -> Sequence[Path]:
    return ()


@dataclass(frozen=True)
class InstalledStep:
    """A step whose files come from the runtime image (the capture step): installed from
    there, never fetched, so it has no artifact, digest or signature."""

    name: str
    config_text: str
    version: int
    # pyarrow for Triton's Python; None where that Python has it (the local backend venv).
    libraries: Path | None = TRITON_LIBRARIES


Step = ServedStep | InstalledStep


def install_step(step: InstalledStep, staging: Path) -> str:
    folder = staging / step.name
    try:
        install(folder / str(step.version), step.libraries)
    except (InstallError, OSError) as exc:
        raise AssembleError(f"step {step.name}: {exc}") from exc
    (folder / CONFIG_FILE).write_text(step.config_text, encoding="utf-8")
    return f"step {step.name} version {step.version}: installed from the runtime image"


def assemble_step(step: ServedStep, staging: Path, trust: Trust, extra: Sequence[Path]) -> str:
    """One step into the staging repository, as a single model is assembled; the line
    that says what was verified."""
    signers: dict[int, str] = {}
    version = step.artifact.version
    try:
        assemble(
            step.name,
            [step.artifact],
            step.config_text,
            staging,
            extra_files=extra,
            trust=trust,
            signers=signers,
        )
    except AssembleError as exc:
        # The fetch's own reason, without the staging folder assemble() names.
        reason = exc.__cause__ if isinstance(exc.__cause__, AssembleError) else exc
        raise AssembleError(f"step {step.name} version {version}: {reason}") from exc
    return f"step {step.name} version {version}: {checked(step.artifact, signers)}"


def _ensemble_folder(name: str, config_text: str, version: int, staging: Path) -> None:
    folder = staging / name
    (folder / str(version)).mkdir(parents=True)
    (folder / CONFIG_FILE).write_text(config_text, encoding="utf-8")


def assemble_ensemble(
    name: str,
    config_text: str,
    version: int,
    steps: Sequence[Step],
    repository: Path,
    *,
    trust: Trust | None = None,
    extra_files: ExtraFiles = _no_extra_files,
) -> list[str]:
    """Write every step's folder and the ensemble's into `repository`, or change nothing;
    the lines that say what was verified. AssembleError names the fault."""
    trust = trust or Trust()
    config = parse_config(config_text, name, [version])
    names = [step.name for step in steps]
    if len(set(names)) != len(names) or name in names:
        raise AssembleError(f"ensemble {name!r}: give each step once, under its own name")
    # Triton would refuse to load an ensemble whose scheduled models are not all present.
    scheduled = sorted({s.model_name for s in config.ensemble_scheduling.step})
    if not scheduled or scheduled != sorted(names):
        raise AssembleError(
            f"{CONFIG_FILE} of ensemble {name!r} schedules {scheduled}, but the steps given "
            f"are {sorted(names)}"
        )
    repository.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.ensemble-", dir=repository))
    try:
        try:
            lines = [
                install_step(s, staging)
                if isinstance(s, InstalledStep)
                else assemble_step(s, staging, trust, extra_files(s))
                for s in steps
            ]
        except AssembleError as exc:
            raise AssembleError(f"{exc}; {repository} was not changed") from exc
        _ensemble_folder(name, config_text, version, staging)
        # mkdtemp makes it 0700; Triton may run as another user. Readable, not writable.
        os.chmod(staging / name, 0o755)  # noqa: S103
        for folder in [*names, name]:
            _replace(repository / folder, staging / folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return lines


# --- the serving pod's init container ------------------------------------------------------


def _keyed(values: Sequence[str], flag: str) -> dict[str, str]:
    try:
        return keyed(values, flag)
    except FlagError as exc:
        raise AssembleError(str(exc)) from exc


def steps_from_flags(args: argparse.Namespace) -> list[Step]:
    configs = _keyed(args.step, "--step")
    installed = _keyed(args.capture_step, "--capture-step")
    if set(installed) & set(configs):
        raise AssembleError("a step is given both --step and --capture-step")
    uris = _keyed(args.artifact, "--artifact")
    digests = _keyed(args.sha256, "--sha256")
    bundles = _keyed(args.signature, "--signature")
    envs = _keyed(args.execution_env, "--execution-env")
    env_digests = _keyed(args.execution_env_sha256, "--execution-env-sha256")
    for flag, given in (
        ("--artifact", uris),
        ("--sha256", digests),
        ("--signature", bundles),
        ("--execution-env", envs),
        ("--execution-env-sha256", env_digests),
    ):
        stray = sorted(set(given) - set(configs))
        if stray:
            raise AssembleError(f"{flag} names step(s) {stray} without a --step")
    steps: list[Step] = [
        InstalledStep(step, _read(Path(config)), args.version, args.libraries)
        for step, config in installed.items()
    ]
    for step, config in configs.items():
        if step not in uris:
            raise AssembleError(f"step {step} has no --artifact")
        source = ArtifactSource(
            args.version,
            uris[step],
            digests.get(step),
            bundles.get(step),
            envs.get(step),
            env_digests.get(step),
        )
        steps.append(ServedStep(step, _read(Path(config)), source))
    return steps


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AssembleError(f"cannot read {path}: {exc.strerror}") from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.serving.ensemble",
        description="Assemble a Triton ensemble and its steps from verified artifacts.",
    )
    parser.add_argument("--model", required=True, help="The ensemble's name (its folder).")
    parser.add_argument("--version", required=True, type=int, help="The version folder.")
    parser.add_argument("--config", required=True, type=Path, help="The ensemble's config.")
    parser.add_argument("--repository", required=True, type=Path, help="Model repository root.")
    for flag, meta, about in (
        ("--step", "STEP=CONFIG", "A step's Triton name and its config.pbtxt (repeat)."),
        ("--artifact", "STEP=URI", "A step's model file: a path or fsspec URI."),
        ("--sha256", "STEP=HEX", "Expected sha256 of a step's file."),
        ("--signature", "STEP=URI", "A step's OpenSSF model-signing bundle."),
        ("--execution-env", "STEP=URI", "A python step's conda-pack archive."),
        ("--execution-env-sha256", "STEP=HEX", "Expected sha256 of that archive."),
        ("--capture-step", "STEP=CONFIG", "Kiln's capture step, from the runtime image."),
    ):
        parser.add_argument(flag, action="append", default=[], metavar=meta, help=about)
    parser.add_argument(
        "--libraries",
        type=Path,
        default=TRITON_LIBRARIES,
        help="pyarrow for Triton's Python, for --capture-step (default: %(default)s).",
    )
    parser.add_argument("--trust", type=Path, help="JSON of the trusted signers.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        steps = steps_from_flags(args)
        config_text = _read(args.config)
        lines = assemble_ensemble(
            args.model,
            config_text,
            args.version,
            steps,
            args.repository,
            trust=read_trust(args.trust),
        )
    except AssembleError as exc:
        print(f"assemble: error: {exc}", file=sys.stderr)
        return 1
    for line in lines:
        print(f"assemble: {args.model} {line}")
    print(f"assemble: wrote {args.repository / args.model} and its {len(steps)} step(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
