"""The training pipeline's steps: each step's module and flags, and the train step's variables.

The compiler renders each step's command line from these definitions (`StepCommand.command`)
and each step builds its argparse parser from the same ones (`StepCommand.parser`), so a
flag renamed on one side and not on the other fails when the pipeline is compiled (and in
the tests), not in the cluster. A command lists its flags in the order they are defined
here, which is also the order of the step's `--help`.

The train step runs Kiln's built-in trainer (`TRAIN`) or the user's own command; either
way the compiler passes the data, seed, holdout and output folder through the environment
variables of `TRAIN_ENV` (docs/pipelines.md).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.contract.formats import FORMAT_NAMES
from runtime.contract.trainers import TRAIN_MODULE
from runtime.contract.vocabulary import TASKS

FEATURE_FORMATS = ("csv", "parquet")  # the source formats the features step reads
# --as-of's default: the moment the features step starts, which it records in `as_of`.
AS_OF_NOW = "now"
DEFAULT_REPEATS = 200  # validate_model: timed runs per batch size
DEFAULT_MAX_SECONDS = 10.0  # validate_model: time budget per batch size
DEFAULT_GITHUB_API = "https://api.github.com"  # publish --open-pr


class CommandError(ValueError):
    """A step's command asked for with a flag the step does not define, or without one it needs."""


@dataclass(frozen=True)
class Flag:
    """One command-line flag of a step, as argparse takes it."""

    name: str  # as written on the command line: "--data-sha256"
    help: str | None = None
    required: bool = False
    type: Callable[[str], Any] | None = None  # None: the text as given
    default: Any = None
    choices: tuple[str, ...] | None = None
    switch: bool = False  # takes no value: present or absent (argparse's store_true)
    hidden: bool = False  # accepted, but left out of --help (for tests and odd setups)

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        help_text = argparse.SUPPRESS if self.hidden else self.help
        if self.switch:
            parser.add_argument(self.name, action="store_true", help=help_text)
            return
        options: dict[str, Any] = {"required": self.required, "help": help_text}
        if self.type is not None:
            options["type"] = self.type
        if self.default is not None:
            options["default"] = self.default
        if self.choices is not None:
            options["choices"] = self.choices
        parser.add_argument(self.name, **options)


@dataclass(frozen=True)
class StepCommand:
    """A step that runs as `python -m MODULE`, with its flags."""

    module: str
    description: str
    flags: tuple[Flag, ...]

    @property
    def prog(self) -> str:
        return f"python -m {self.module}"

    def flag(self, name: str) -> Flag:
        for flag in self.flags:
            if flag.name == name:
                return flag
        raise CommandError(f"{self.module} has no flag {name}")

    def parser(self) -> argparse.ArgumentParser:
        """The step's argument parser: its flags, help and errors come from this definition."""
        parser = argparse.ArgumentParser(prog=self.prog, description=self.description)
        for flag in self.flags:
            flag.add_to(parser)
        return parser

    def command(self, values: Mapping[str, str | bool | None]) -> tuple[str, ...]:
        """`python -m MODULE` and the flags given in `values`, in the order they are defined.

        `values` maps a flag ("--source") to its text. A value of None (or False, for a
        switch) leaves the flag out, as for an optional flag with nothing to pass. Raises
        CommandError on a flag the step does not define, a required one missing, or a
        value of the wrong kind (text for a switch, True for a flag that takes text).
        """
        self._check(values)
        words = ["python", "-m", self.module]
        for flag in self.flags:
            words.extend(_words(flag, values.get(flag.name)))
        return tuple(words)

    def _check(self, values: Mapping[str, str | bool | None]) -> None:
        known = {flag.name for flag in self.flags}
        unknown = sorted(set(values) - known)
        if unknown:
            raise CommandError(f"{self.module} has no flag {', '.join(unknown)}")
        missing = [f.name for f in self.flags if f.required and values.get(f.name) is None]
        if missing:
            raise CommandError(f"{self.module} needs {', '.join(missing)}")
        for flag in self.flags:
            value = values.get(flag.name)
            if value is not None and isinstance(value, bool) != flag.switch:
                kind = "True or False" if flag.switch else "text"
                raise CommandError(f"{self.module} {flag.name} takes {kind}, got {value!r}")


def _words(flag: Flag, value: str | bool | None) -> tuple[str, ...]:
    if value is None or value is False:
        return ()
    if value is True:
        return (flag.name,)
    return (flag.name, value)


FEATURES = StepCommand(
    "runtime.steps.features",
    "Point-in-time snapshot of a FeatureSet source, written as parquet.",
    (
        Flag("--source", "file or prefix (local or fsspec URL)", required=True),
        Flag("--format", "default: from the names", choices=FEATURE_FORMATS),
        Flag("--sha256", "expected digest of the source (see module doc)"),
        Flag("--entity", "entity id column", required=True),
        Flag("--timestamp", "event time column", required=True),
        Flag("--columns", "feature columns, comma-separated", required=True),
        Flag("--target", "target column", required=True),
        Flag("--as-of", f"keep rows with timestamp <= this (ISO 8601, or {AS_OF_NOW!r})"),
        Flag("--out", "output directory", required=True, type=Path),
    ),
)

EVALUATE = StepCommand(
    "runtime.steps.evaluate",
    "Evaluate an ONNX model on the held-out rows and apply the gates.",
    (
        Flag("--model", "model.onnx", required=True, type=Path),
        Flag("--data", "features.parquet", required=True, type=Path),
        Flag("--signature", "JSON file or inline JSON object", required=True),
        Flag("--task", "the model's task", required=True, choices=TASKS),
        Flag("--target", "target column", required=True),
        Flag("--timestamp", "timestamp column", required=True),
        Flag("--holdout", "held-out share, 0..1", required=True, type=float),
        Flag("--metrics", "comma-separated metric names", required=True),
        Flag("--gates", "JSON list (file or inline); empty: no gates"),
        Flag("--baseline", "JSON object of the serving version's metrics; none before one serves"),
        Flag("--out", "output directory", required=True, type=Path),
    ),
)

VALIDATE = StepCommand(
    "runtime.steps.validate_model",
    "Check an ONNX model against its signature and measure its latency.",
    (
        Flag("--model", "model.onnx", required=True, type=Path),
        Flag("--signature", "JSON file or inline JSON object", required=True),
        Flag("--data", "parquet with the input columns", required=True, type=Path),
        Flag("--batch-sizes", "comma-separated (default: 1)", default="1"),
        Flag("--slo-p99-ms", "fail when a p99 exceeds this", type=float),
        Flag("--repeats", "timed runs", type=int, default=DEFAULT_REPEATS),
        Flag(
            "--max-seconds",
            "time budget per batch size (default: 10)",
            type=float,
            default=DEFAULT_MAX_SECONDS,
        ),
        Flag("--out", "output directory", required=True, type=Path),
    ),
)

PUBLISH = StepCommand(
    "runtime.steps.publish",
    "Upload a model version to the model store and propose it in the spec.",
    (
        Flag("--model", "the trained model: model.onnx, or xgboost.json", required=True, type=Path),
        Flag("--store", "model store: folder or fsspec URL", required=True),
        Flag("--format", "the model's format, recorded with the version", choices=FORMAT_NAMES),
        Flag("--fil", "JSON object: the FIL settings of a tree model, recorded with it"),
        Flag("--name", "model name", required=True),
        Flag(
            "--version",
            "version number (>= 1), or from:N for the first version >= N that is free in "
            "the store or already holds this very artifact (scheduled retraining)",
            required=True,
        ),
        Flag("--metrics", "metrics.json of evaluate", required=True, type=Path),
        Flag("--validation", "validation.json of validate_model", type=Path),
        Flag("--evaluation", "evaluation.json of evaluate: the gates' outcome", type=Path),
        Flag("--as-of", "the features snapshot's time, recorded with the version"),
        Flag("--data-sha256", "digest of the training data", required=True),
        Flag("--seed", "training seed", required=True, type=int),
        Flag("--image", "training image (name@sha256:digest)"),
        Flag("--git-revision", "revision of the specs"),
        Flag("--spec-digest", "digest of the model's spec"),
        Flag(
            "--trainer",
            "the trainer's parameters as a JSON object (command, args, holdout), "
            "recorded in the provenance",
        ),
        Flag(
            "--signing-key",
            "elliptic-curve private key (PEM) to sign with; default $KILN_SIGNING_KEY, "
            "else Sigstore keyless when an OIDC token is present, else unsigned",
            type=Path,
        ),
        Flag("--spec", "the model's spec file, for spec.patch", type=Path),
        Flag("--spec-path-in-repo", "its path in the repository"),
        Flag("--open-pr", "open a pull request on GitHub", switch=True),
        Flag("--github-repo", "OWNER/NAME"),
        Flag("--token-env", "variable holding the token", default="GITHUB_TOKEN"),
        Flag("--base", "base branch (default: the repository's default)"),
        Flag("--github-api", "GitHub's REST API root", default=DEFAULT_GITHUB_API, hidden=True),
        Flag("--out", "output directory", required=True, type=Path),
    ),
)

# Kiln's built-in trainer (`training.trainer`); its data, seed, holdout and output folder
# come through TRAIN_ENV like a user's command, the trainer's settings through flags.
TRAIN = StepCommand(
    TRAIN_MODULE,
    "Kiln's built-in tabular trainer: fit an estimator on the features and export ONNX.",
    (
        Flag("--trainer", "JSON object: library, estimator, params", required=True),
        Flag("--task", "the model's task", required=True, choices=TASKS),
        Flag("--features", "JSON list of the FeatureSet's {name, dtype, kind}", required=True),
        Flag("--classes", "JSON list of class labels, in the probability output's order"),
        Flag("--name", "the model's name, which the ONNX graph gets", required=True),
    ),
)

STEPS = (FEATURES, TRAIN, EVALUATE, VALIDATE, PUBLISH)


@dataclass(frozen=True)
class TrainEnvironment:
    """The variables the train step's command reads (it gets no flags from Kiln)."""

    data: str = "KILN_DATA"  # path of features.parquet
    data_sha256: str = "KILN_DATA_SHA256"  # its sha256, to check before training
    seed: str = "KILN_SEED"
    holdout: str = "KILN_HOLDOUT"  # share of the newest rows that evaluate uses
    target: str = "KILN_TARGET"
    timestamp: str = "KILN_TIMESTAMP"
    output_dir: str = "KILN_OUTPUT_DIR"  # where model.onnx goes


TRAIN_ENV = TrainEnvironment()

# The train step's own variables all start with it; a spec's `training.secret_env`
# may not, so that a Secret can never replace one of them.
RESERVED_ENV_PREFIX = "KILN_"
# A variable name a shell can read (POSIX: letters, digits, underscores, no leading digit).
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def env_name_problem(name: str) -> str | None:
    """Why `name` cannot be a variable a Secret fills, or None when it can."""
    if not ENV_NAME.fullmatch(name):
        return (
            f"{name!r} is not an environment variable name; use letters, digits and "
            "underscores, not starting with a digit, e.g. DB_PASSWORD"
        )
    if name.upper().startswith(RESERVED_ENV_PREFIX):
        return (
            f"{name!r} starts with {RESERVED_ENV_PREFIX} (in any case), which Kiln keeps for "
            "the train step's own variables; choose another name"
        )
    return None


def env_name_pattern() -> str:
    """`env_name_problem`'s rule as one JSON-schema (ECMA) pattern, for editors."""
    reserved = "".join(
        f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in RESERVED_ENV_PREFIX
    )
    return f"^(?!{reserved}){ENV_NAME.pattern}$"
