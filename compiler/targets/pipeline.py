"""The training pipeline as a neutral DAG, rendered for Argo and for the local runner.

features -> train -> evaluate -> validate -> publish. Each step writes into its
own output folder; later steps read earlier outputs. Commands hold tokens that
each runner replaces with its own paths, so Argo and `kiln run --local` run the
very same commands with the same parameters:

  {out}              this step's output folder
  {in:STEP}          the output folder of an earlier step
  {param:STEP/FILE}  the text of FILE in that step's output (an Argo output parameter)
  {spec}             the model's spec file in a checkout of the repository
  {run:NAME}         a run parameter (store, seed, version, git-revision)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property

from compiler.ir import ModelIR
from compiler.serialize import to_json
from compiler.targets.serving import signature as serving_signature
from runtime.contract.vocabulary import task_metrics

TOKEN = re.compile(r"\{(out|spec|in:[a-z-]+|param:[a-z-]+/[a-z0-9_.-]+|run:[a-z-]+)\}")
DEFAULT_METRICS = {"regression": ("mae", "rmse"), "binary_classification": ("roc_auc",)}


@dataclass(frozen=True)
class Step:
    name: str
    image: str
    command: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
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
            "steps": [
                {
                    "name": s.name,
                    "image": s.image,
                    "command": list(s.command),
                    "env": dict(s.env),
                    "depends": list(s.depends),
                    "resources": {"cpu": s.cpu, "memory": s.memory, "gpus": s.gpus},
                }
                for s in self.steps
            ],
        }
        return to_json(document)


def next_version(model: ModelIR) -> int:
    return max(a.version for a in model.versions) + 1


def data_uri(model: ModelIR, uri: str) -> str:
    """A data URI in this environment: relative paths sit under the data store."""
    return uri if "://" in uri else f"{model.storage.data.rstrip('/')}/{uri}"


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


def pipeline(model: ModelIR) -> Pipeline | None:
    """The training pipeline of a model, or None when it declares no training."""
    training = model.training
    if training is None:
        return None
    runtime = model.project.images.runtime
    featureset = model.featureset.spec
    serving_version = next(a for a in model.served)
    gates = [g.model_dump(exclude_none=True) for g in training.gates]
    signature = _compact(serving_signature(model).document())
    features = Step(
        "features",
        runtime,
        (
            "python",
            "-m",
            "runtime.steps.features",
            "--source",
            data_uri(model, training.data.uri),
            *(("--sha256", training.data.sha256) if training.data.sha256 else ()),
            "--entity",
            featureset.entity,
            "--timestamp",
            featureset.timestamp,
            "--columns",
            ",".join(f.name for f in featureset.features),
            "--target",
            model.target,
            "--out",
            "{out}",
        ),
    )
    train = Step(
        "train",
        training.image,
        (*training.command, *training.args),
        env=(
            ("KILN_DATA", "{in:features}/features.parquet"),
            ("KILN_DATA_SHA256", "{param:features/sha256}"),
            ("KILN_SEED", "{run:seed}"),
            ("KILN_HOLDOUT", format(training.holdout, "g")),
            ("KILN_TARGET", model.target),
            ("KILN_TIMESTAMP", featureset.timestamp),
            ("KILN_OUTPUT_DIR", "{out}"),
        ),
        depends=("features",),
        cpu=training.resources.cpu,
        memory=training.resources.memory,
        gpus=training.resources.gpus,
    )
    evaluate = Step(
        "evaluate",
        runtime,
        (
            "python",
            "-m",
            "runtime.steps.evaluate",
            "--model",
            "{in:train}/model.onnx",
            "--data",
            "{in:features}/features.parquet",
            "--signature",
            signature,
            "--task",
            model.task,
            "--target",
            model.target,
            "--timestamp",
            featureset.timestamp,
            "--holdout",
            format(training.holdout, "g"),
            "--metrics",
            ",".join(evaluation_metrics(model)),
            "--gates",
            _compact(gates),
            "--baseline",
            _compact(dict(serving_version.metrics)),
            "--out",
            "{out}",
        ),
        depends=("train",),
    )
    slo = model.serving.slo
    batch_sizes = sorted({1, max(1, model.serving.max_batch_size)})
    validate = Step(
        "validate",
        runtime,
        (
            "python",
            "-m",
            "runtime.steps.validate_model",
            "--model",
            "{in:train}/model.onnx",
            "--signature",
            signature,
            "--data",
            "{in:features}/features.parquet",
            "--batch-sizes",
            ",".join(str(b) for b in batch_sizes),
            *(("--slo-p99-ms", format(slo.latency_p99_ms, "g")) if slo else ()),
            "--out",
            "{out}",
        ),
        depends=("train",),
    )
    publish = Step(
        "publish",
        runtime,
        (
            "python",
            "-m",
            "runtime.steps.publish",
            "--model",
            "{in:train}/model.onnx",
            "--store",
            "{run:store}",
            "--name",
            model.name,
            "--version",
            # A retrain that runs again before its spec change merged takes the next slot.
            "from:{run:version}",
            "--metrics",
            "{in:evaluate}/metrics.json",
            "--validation",
            "{in:validate}/validation.json",
            "--data-sha256",
            "{param:features/sha256}",
            "--seed",
            "{run:seed}",
            "--image",
            training.image,
            "--git-revision",
            "{run:git-revision}",
            "--spec-digest",
            model.source.digest,
            "--spec",
            "{spec}",
            "--spec-path-in-repo",
            model.source.file,
            "--out",
            "{out}",
        ),
        depends=("evaluate", "validate"),
    )
    return Pipeline(
        model.name,
        model.environment.name,
        model.source.file,
        (
            ("store", model.storage.models),
            ("seed", str(training.seed)),
            ("version", str(next_version(model))),
            ("git-revision", model.project.git_revision),
        ),
        (features, train, evaluate, validate, publish),
    )
