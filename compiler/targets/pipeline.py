"""The training pipeline as a neutral DAG, rendered for Argo and for the local runner.

features -> train -> evaluate -> validate -> publish. Each step writes into its
own output folder; later steps read earlier outputs. Commands hold tokens that
each runner replaces with its own paths, so Argo and `kiln run --local` run the
very same commands with the same parameters:

  {out}              this step's output folder
  {in:STEP}          the output folder of an earlier step
  {param:STEP/FILE}  the text of FILE in that step's output (an Argo output parameter)
  {spec}             the model's spec file in a checkout of the repository
  {run:NAME}         a run parameter (store, seed, version, git-revision, as-of)
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, replace
from functools import cached_property

from compiler.formats import fil
from compiler.ir import ModelIR
from compiler.ir.secret import SecretRefIR
from compiler.ir.training import GateIR, TrainingIR
from compiler.rules.signature import FEATURE_TO_KILN
from compiler.serialize import to_json
from compiler.targets.monitor_config import data_location
from compiler.targets.serving import signature as serving_signature
from runtime.contract.signing import SIGNING_KEY_ENV
from runtime.contract.steps import (
    AS_OF_NOW,
    EVALUATE,
    FEATURES,
    PUBLISH,
    TRAIN,
    TRAIN_ENV,
    VALIDATE,
)
from runtime.contract.trainers import ONNX_OUTPUT, artifact_file, fil_settings, model_format
from runtime.contract.vocabulary import task_metrics

TOKEN = re.compile(r"\{(out|spec|in:[a-z-]+|param:[a-z-]+/[a-z0-9_.-]+|run:[a-z-]+)\}")
DEFAULT_METRICS = {"regression": ("mae", "rmse"), "binary_classification": ("roc_auc",)}


@dataclass(frozen=True)
class Step:
    name: str
    image: str
    command: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    # Variables whose values come from Secrets: in Argo a secretKeyRef, locally the
    # variable of the same name in the runner's environment.
    secret_env: tuple[tuple[str, SecretRefIR], ...] = ()
    # (variable, Secret key) mounted as a file whose path the variable holds; Argo only:
    # the local runner signs with this machine's key pair.
    secret_files: tuple[tuple[str, SecretRefIR], ...] = ()
    depends: tuple[str, ...] = ()
    cpu: str = "500m"
    memory: str = "1Gi"
    gpus: int = 0

    @cached_property
    def _tokens(self) -> tuple[str, ...]:
        texts = [*self.command, *(value for _, value in self.env)]
        return tuple(m.group(1) for text in texts for m in TOKEN.finditer(text))

    def tokens(self) -> list[str]:
        return list(self._tokens)

    # Asked for many times per step while rendering: worked out once.
    @cached_property
    def _inputs(self) -> tuple[str, ...]:
        return tuple(sorted({t.split(":", 1)[1] for t in self._tokens if t.startswith("in:")}))

    @cached_property
    def _parameters(self) -> tuple[tuple[str, str], ...]:
        found = {
            tuple(t.split(":", 1)[1].split("/", 1)) for t in self._tokens if t.startswith("param:")
        }
        return tuple(sorted((step, file) for step, file in found))

    def inputs(self) -> list[str]:
        return list(self._inputs)

    def parameters(self) -> list[tuple[str, str]]:
        """(step, file) pairs whose text this step reads."""
        return list(self._parameters)


@dataclass(frozen=True)
class Pipeline:
    model: str
    environment: str
    spec: str  # the model's spec file, relative to the repository root
    run_parameters: tuple[tuple[str, str], ...]  # name, default
    steps: tuple[Step, ...]

    def to_json(self) -> str:
        document = {
            "model": self.model,
            "environment": self.environment,
            "spec": self.spec,
            "parameters": dict(self.run_parameters),
            "steps": [_step_document(s) for s in self.steps],
        }
        return to_json(document)


def _step_document(step: Step) -> dict[str, object]:
    """A step as the local runner reads it. Of its Secrets only the variables' names:
    locally each is read from the runner's environment."""
    document: dict[str, object] = {
        "name": step.name,
        "image": step.image,
        "command": list(step.command),
        "env": dict(step.env),
        "depends": list(step.depends),
        "resources": {"cpu": step.cpu, "memory": step.memory, "gpus": step.gpus},
    }
    if step.secret_env:
        document["secret_env"] = [name for name, _ in step.secret_env]
    return document


def next_version(model: ModelIR) -> int:
    """The version a run publishes: after every declared one; 1 for a model's first."""
    return max((a.version for a in model.versions), default=0) + 1


def data_uri(model: ModelIR, uri: str) -> str:
    """A data URI in this environment: relative paths sit under the data store."""
    return data_location(uri, model.storage.data)


def evaluation_metrics(model: ModelIR) -> list[str]:
    training = model.training
    wanted = set(DEFAULT_METRICS.get(model.task, ("roc_auc",)))
    if training is not None:
        wanted |= {g.metric for g in training.gates}
    if model.monitoring is not None and model.monitoring.performance is not None:
        wanted |= set(model.monitoring.performance.metrics)
    return sorted(wanted.intersection(task_metrics(model.task)))


def _compact(document: object) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def _trained_model(training: TrainingIR) -> str:
    """Where the train step leaves the model: model.onnx, unless a built-in trainer writes
    its library's own file (a user's command always writes model.onnx)."""
    trainer = training.trainer
    name = "model.onnx" if trainer is None else artifact_file(trainer.library, trainer.output)
    return "{in:train}/" + name


def _signature(model: ModelIR, training: TrainingIR) -> str:
    """The signature of the model the train step writes, as one line of JSON, as evaluate
    and validate take it inline: the served one, but FIL's for a native tree model (whose
    model may still serve an ONNX version until the first native one is promoted)."""
    served = serving_signature(model)
    trainer = training.trainer
    if trainer is None or trainer.output == ONNX_OUTPUT:
        return _compact(served.document())
    classes = None if trainer.classes is None else len(trainer.classes)
    inputs, outputs = fil.trained_signature(
        len(model.featureset.spec.features), model.task, classes, served.batched
    )
    return _compact(replace(served, inputs=inputs, outputs=outputs).document())


def features_step(model: ModelIR, training: TrainingIR) -> Step:
    """Snapshot the training data: the FeatureSet's columns and the target."""
    featureset = model.featureset.spec
    command = FEATURES.command(
        {
            "--source": data_uri(model, training.data.uri),
            "--format": training.data.format,
            "--sha256": training.data.sha256 or None,
            "--entity": featureset.entity,
            "--timestamp": featureset.timestamp,
            "--columns": ",".join(f.name for f in featureset.features),
            "--target": model.target,
            # The run's time unless the run says otherwise: no row from after it is read.
            "--as-of": "{run:as-of}",
            "--out": "{out}",
        }
    )
    return Step("features", model.project.images.runtime, command)


def trainer_command(model: ModelIR, training: TrainingIR) -> tuple[str, ...]:
    """The command that runs: Kiln's trainer, its settings as JSON data; or the user's."""
    trainer = training.trainer
    if trainer is None:
        return (*training.command, *training.args)
    features = [
        {"name": f.name, "dtype": FEATURE_TO_KILN[f.dtype], "kind": f.kind}
        for f in model.featureset.spec.features
    ]
    settings = {"library": trainer.library, "estimator": trainer.estimator}
    if trainer.output != ONNX_OUTPUT:  # left out by default: ONNX pipelines stay as they were
        settings["output"] = trainer.output
    classes = trainer.classes
    return TRAIN.command(
        {
            "--trainer": _compact({**settings, "params": dict(trainer.params)}),
            "--task": model.task,
            "--features": _compact(features),
            "--classes": None if classes is None else _compact(list(classes)),
            "--name": model.name,
        }
    )


def train_step(model: ModelIR, training: TrainingIR) -> Step:
    """The training command; it gets its data, seed and output folder from variables."""
    variables = (
        (TRAIN_ENV.data, "{in:features}/features.parquet"),
        (TRAIN_ENV.data_sha256, "{param:features/sha256}"),
        (TRAIN_ENV.seed, "{run:seed}"),
        (TRAIN_ENV.holdout, format(training.holdout, "g")),
        (TRAIN_ENV.target, model.target),
        (TRAIN_ENV.timestamp, model.featureset.spec.timestamp),
        (TRAIN_ENV.output_dir, "{out}"),
    )
    return Step(
        "train",
        training.image,
        trainer_command(model, training),
        env=variables,
        secret_env=training.secret_env,
        depends=("features",),
        cpu=training.resources.cpu,
        memory=training.resources.memory,
        gpus=training.resources.gpus,
    )


def _gate(gate: GateIR) -> dict[str, object]:
    """A gate as the evaluate step reads it: the metric and its one bound."""
    return {key: value for key, value in asdict(gate).items() if value is not None}


def evaluate_step(model: ModelIR, training: TrainingIR) -> Step:
    """Metrics on the held-out rows, gated; max_regression compares with the served version.

    With no version served there is no baseline: the flag is left out, and the step
    passes each max_regression gate with a note saying so (the min and max gates apply).
    """
    baseline = _compact(dict(model.served[0].metrics)) if model.is_served else None
    gates = [_gate(g) for g in training.gates]
    command = EVALUATE.command(
        {
            "--model": _trained_model(training),
            "--data": "{in:features}/features.parquet",
            "--signature": _signature(model, training),
            "--task": model.task,
            "--target": model.target,
            "--timestamp": model.featureset.spec.timestamp,
            "--holdout": format(training.holdout, "g"),
            "--metrics": ",".join(evaluation_metrics(model)),
            "--gates": _compact(gates),
            "--baseline": baseline,
            "--out": "{out}",
        }
    )
    return Step("evaluate", model.project.images.runtime, command, depends=("train",))


def validate_step(model: ModelIR, training: TrainingIR) -> Step:
    """The artifact against the signature, at batch size 1 and the largest one, and the SLO."""
    slo = model.serving.slo
    batch_sizes = sorted({1, max(1, model.serving.max_batch_size)})
    command = VALIDATE.command(
        {
            "--model": _trained_model(training),
            "--signature": _signature(model, training),
            "--data": "{in:features}/features.parquet",
            "--batch-sizes": ",".join(str(b) for b in batch_sizes),
            "--slo-p99-ms": format(slo.latency_p99_ms, "g") if slo else None,
            "--out": "{out}",
        }
    )
    return Step("validate", model.project.images.runtime, command, depends=("train",))


def _trainer_record(training: TrainingIR) -> dict[str, object]:
    """What the provenance records of the trainer: the built-in one's settings, or the
    user's command and arguments; and the held-out share either way."""
    trainer = training.trainer
    if trainer is None:
        ran: dict[str, object] = {"command": list(training.command), "args": list(training.args)}
    else:
        ran = {
            "library": trainer.library,
            "estimator": trainer.estimator,
            "params": dict(trainer.params),
        }
        if trainer.output != ONNX_OUTPUT:
            ran["output"] = trainer.output
    return {**ran, "holdout": training.holdout}


def _native_record(training: TrainingIR, task: str) -> dict[str, str | None]:
    """The format and FIL settings a native version is recorded with; nothing for ONNX."""
    trainer = training.trainer
    fil = None if trainer is None else fil_settings(trainer.library, task, trainer.output)
    if trainer is None or fil is None:
        return {}
    return {"--format": model_format(trainer.library, trainer.output), "--fil": _compact(fil)}


def publish_step(model: ModelIR, training: TrainingIR) -> Step:
    """Upload the artifact to the model store and write the spec patch that records it."""
    command = PUBLISH.command(
        {
            "--model": _trained_model(training),
            "--store": "{run:store}",
            "--name": model.name,
            # A retrain that runs again before its spec change merged takes the next slot.
            "--version": "from:{run:version}",
            "--metrics": "{in:evaluate}/metrics.json",
            "--validation": "{in:validate}/validation.json",
            "--evaluation": "{in:evaluate}/evaluation.json",
            "--as-of": "{param:features/as_of}",
            "--data-sha256": "{param:features/sha256}",
            "--seed": "{run:seed}",
            "--image": training.image,
            "--git-revision": "{run:git-revision}",
            "--spec-digest": model.source.digest,
            "--trainer": _compact(_trainer_record(training)),
            **_native_record(training, model.task),
            "--spec": "{spec}",
            "--spec-path-in-repo": model.source.file,
            "--out": "{out}",
        }
    )
    key = model.environment.signing_key
    return Step(
        "publish",
        model.project.images.runtime,
        command,
        # The key reaches publish alone: no other step, the user's train step least of all.
        secret_files=() if key is None else ((SIGNING_KEY_ENV, key),),
        depends=("evaluate", "validate"),
    )


def pipeline(model: ModelIR) -> Pipeline | None:
    """The training pipeline of a model, or None when it declares no training."""
    training = model.training
    if training is None:
        return None
    run_parameters = (
        ("store", model.storage.models),
        ("seed", str(training.seed)),
        ("version", str(next_version(model))),
        ("git-revision", model.project.git_revision),
        ("as-of", AS_OF_NOW),
    )
    steps = (
        features_step(model, training),
        train_step(model, training),
        evaluate_step(model, training),
        validate_step(model, training),
        publish_step(model, training),
    )
    return Pipeline(model.name, model.environment.name, model.source.file, run_parameters, steps)
