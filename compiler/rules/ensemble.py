"""An ensemble's graph, checked as Triton checks it at load time and further: every
tensor has one producer of its dtype and shape, every ensemble input and output is
connected, no step feeds itself through others, every step serves the outputs, and the
ensemble batches no larger than each step.

Tensors are named in the ensemble's namespace: the Model's signature inputs are
produced by the request, each step's `output_map` values by that step.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from compiler.diagnostics import Path_
from compiler.rules.capture import declared_capture
from compiler.rules.findings import Finding
from compiler.rules.quality import THRESHOLDS
from compiler.spec.model import Ensemble, EnsembleStep, ModelSpec, Tensor
from compiler.spec.project import Environment

_STEPS: Path_ = ("spec", "ensemble", "steps")
REQUEST = "the request"  # the producer of the ensemble's own inputs


@dataclass(frozen=True)
class _Producer:
    step: int | None  # None: the request (an ensemble input)
    tensor: Tensor

    def describe(self, ensemble: Ensemble) -> str:
        if self.step is None:
            return REQUEST
        return f"step {ensemble.steps[self.step].name}"


def check_ensemble(spec: ModelSpec) -> list[Finding]:
    ensemble = spec.ensemble
    if ensemble is None or spec.signature is None:
        return []
    found = [*_unused_fields(spec), *_names(ensemble), *_maps(ensemble)]
    found += _batching(spec, ensemble)
    producers, twice = _producers(spec, ensemble)
    found += twice
    found += _step_inputs(ensemble, producers)
    found += _ensemble_ends(spec, ensemble, producers)
    cycle = _cycle(ensemble, producers)
    if cycle:
        found.append(cycle)
    else:  # in a cycle every step looks unused; report the cycle alone
        found += _unused(spec, ensemble, producers)
    return found


def _unused_fields(spec: ModelSpec) -> Iterator[Finding]:
    """Fields that an ensemble would ignore silently: its steps' artifacts are what
    serves (not spec.versions), and each step runs on one instance."""
    if spec.versions:
        yield Finding(
            ("spec", "versions"),
            "KILN1114",
            "spec.versions and spec.ensemble are both set; an ensemble serves its steps' "
            "artifacts, so no version would ever serve",
            "remove spec.versions: each step's artifact is its model; serve a versioned "
            "artifact from a Model of its own",
            key=True,
        )
    if spec.serving.instance_groups is not None:
        yield Finding(
            ("spec", "serving", "instance_groups"),
            "KILN1114",
            "serving.instance_groups on an ensemble would be ignored: each step runs on "
            "one CPU instance per pod",
            "remove serving.instance_groups; scale an ensemble with serving.replicas",
            key=True,
        )


def check_environment(spec: ModelSpec, environment: Environment) -> list[Finding]:
    """What serving the ensemble in this environment needs: signed steps where signatures
    are required, and in a cluster no GPUs (its steps run on CPU instances) and quality
    thresholds only with capture on (the comparison reads the rows its capture step
    writes, by the ensemble's version)."""
    if spec.ensemble is None:
        return []
    found = _unsigned_steps(spec.ensemble, environment)
    if environment.kind == "local":
        return found
    if spec.serving.resources.gpus:
        found.append(
            Finding(
                ("spec", "serving", "resources", "gpus"),
                "KILN1761",
                f"the pods would hold {spec.serving.resources.gpus} GPU(s) that no step uses: "
                "each step of an ensemble runs on one CPU instance",
                key=True,
            )
        )
    analysis = spec.rollout.analysis
    written = (
        [] if analysis is None else [n for n in THRESHOLDS if getattr(analysis, n) is not None]
    )
    if written and declared_capture(spec, environment) is None:
        found.append(
            Finding(
                ("spec", "rollout", "analysis", written[0]),
                "KILN1760",
                f"`{written[0]}` compares the captured predictions of two ensemble "
                "versions, and serving.capture is off for it here",
                key=True,
            )
        )
    return found


def _unsigned_steps(ensemble: Ensemble, environment: Environment) -> list[Finding]:
    """Under require_signatures every step names its signature bundle, as a served
    version must (KILN1608): the serving pod (and `kiln serve`) refuses an unsigned one."""
    if not environment.policy.require_signatures:
        return []
    return [
        Finding(
            (*_STEPS, i, "artifact"),
            "KILN1608",
            f"environment {environment.name} requires signatures; step {step.name} names no "
            "artifact.signature",
            key=True,
        )
        for i, step in enumerate(ensemble.steps)
        if step.artifact.signature is None
    ]


def _names(ensemble: Ensemble) -> Iterator[Finding]:
    seen: set[str] = set()
    for i, step in enumerate(ensemble.steps):
        if step.name in seen:
            yield Finding(
                (*_STEPS, i, "name"),
                "KILN1770",
                f"step name {step.name!r} is used twice",
                "give every step its own name: Triton serves each as <model>.<name>",
            )
        seen.add(step.name)


def _maps(ensemble: Ensemble) -> Iterator[Finding]:
    """Map keys are the step's own tensors, and every step input is fed."""
    for i, step in enumerate(ensemble.steps):
        for field, tensors in (
            ("input_map", step.signature.inputs),
            ("output_map", step.signature.outputs),
        ):
            names = [t.name for t in tensors]
            mapping = getattr(step, field)
            for key in mapping:
                if key not in names:
                    yield Finding(
                        (*_STEPS, i, field, key),
                        "KILN1779",
                        f"step {step.name} has no {field.split('_')[0]} `{key}`",
                        f"map the step's own tensors: {', '.join(names)}",
                        key=True,
                    )
        for name in (t.name for t in step.signature.inputs):
            if name not in step.input_map:
                yield Finding(
                    (*_STEPS, i, "input_map"),
                    "KILN1779",
                    f"input `{name}` of step {step.name} is not in its input_map",
                    "map it to the ensemble tensor that feeds it",
                    key=True,
                )


def _tensor(tensors: list[Tensor], name: str) -> Tensor | None:
    return next((t for t in tensors if t.name == name), None)


def _producers(spec: ModelSpec, ensemble: Ensemble) -> tuple[dict[str, _Producer], list[Finding]]:
    assert spec.signature is not None
    producers = {t.name: _Producer(None, t) for t in spec.signature.inputs}
    found = []
    for i, step in enumerate(ensemble.steps):
        for key, target in step.output_map.items():
            tensor = _tensor(step.signature.outputs, key)
            if tensor is None:
                continue  # reported by _maps
            if target in producers:
                found.append(
                    Finding(
                        (*_STEPS, i, "output_map", key),
                        "KILN1773",
                        f"ensemble tensor `{target}` is produced by "
                        f"{producers[target].describe(ensemble)} and again by step {step.name}",
                        "give each produced tensor its own name in the ensemble",
                    )
                )
                continue
            producers[target] = _Producer(i, tensor)
    return producers, found


def _step_inputs(ensemble: Ensemble, producers: dict[str, _Producer]) -> Iterator[Finding]:
    for i, step in enumerate(ensemble.steps):
        for key, source in step.input_map.items():
            tensor = _tensor(step.signature.inputs, key)
            if tensor is None:
                continue
            at = (*_STEPS, i, "input_map", key)
            producer = producers.get(source)
            if producer is None:
                yield Finding(
                    at,
                    "KILN1773",
                    f"input `{key}` of step {step.name} reads `{source}`, which no step "
                    "produces and is not an ensemble input",
                    f"produced: {', '.join(sorted(producers))}",
                )
                continue
            yield from _edge(at, ensemble, producer, tensor, f"input `{key}` of step {step.name}")


def _edge(
    at: Path_, ensemble: Ensemble, producer: _Producer, consumer: Tensor, what: str
) -> Iterator[Finding]:
    """The producer's tensor must be what the consumer takes."""
    given = producer.tensor
    source = f"`{given.name}` of {producer.describe(ensemble)}"
    if given.dtype != consumer.dtype:
        yield Finding(
            at,
            "KILN1774",
            f"{what} is {consumer.dtype}, fed {given.dtype} by {source}",
            "make both sides the same dtype (cast in a python step if needed)",
        )
    if not _compatible(given.shape, consumer.shape):
        yield Finding(
            at,
            "KILN1774",
            f"{what} has shape {list(consumer.shape)}, fed shape {list(given.shape)} by {source}",
            "make the ranks equal and each fixed dimension the same (-1 matches any)",
        )


def _compatible(given: list[int], taken: list[int]) -> bool:
    return len(given) == len(taken) and all(
        a == b or -1 in (a, b) for a, b in zip(given, taken, strict=True)
    )


def _ensemble_ends(
    spec: ModelSpec, ensemble: Ensemble, producers: dict[str, _Producer]
) -> Iterator[Finding]:
    """Every ensemble output comes from a step; every ensemble input feeds one."""
    assert spec.signature is not None
    for i, output in enumerate(spec.signature.outputs):
        at = ("spec", "signature", "outputs", i, "name")
        producer = producers.get(output.name)
        if producer is None or producer.step is None:
            yield Finding(
                at,
                "KILN1771",
                f"ensemble output `{output.name}` is produced by no step",
                "map a step output to it in that step's output_map",
            )
        else:
            yield from _edge(at, ensemble, producer, output, f"ensemble output `{output.name}`")
    read = {source for step in ensemble.steps for source in step.input_map.values()}
    for i, tensor in enumerate(spec.signature.inputs):
        if tensor.name not in read:
            yield Finding(
                ("spec", "signature", "inputs", i, "name"),
                "KILN1772",
                f"ensemble input `{tensor.name}` feeds no step",
                "map it in a step's input_map, or remove it from the signature and FeatureSet",
            )


def _feeders(step: EnsembleStep, producers: dict[str, _Producer]) -> set[int]:
    """The steps whose outputs this step reads."""
    return {
        p.step
        for source in step.input_map.values()
        if (p := producers.get(source)) is not None and p.step is not None
    }


def _cycle(ensemble: Ensemble, producers: dict[str, _Producer]) -> Finding | None:
    """The first cycle found by a depth-first walk along the feeding edges."""
    feeders = [_feeders(s, producers) for s in ensemble.steps]
    state: dict[int, str] = {}  # "open" on the walk's path, "done" after
    path: list[int] = []

    def walk(i: int) -> list[int] | None:
        state[i] = "open"
        path.append(i)
        for j in sorted(feeders[i]):
            if state.get(j) == "open":
                return [*path[path.index(j) :], j]
            if j not in state and (found := walk(j)):
                return found
        path.pop()
        state[i] = "done"
        return None

    for start in range(len(ensemble.steps)):
        if start not in state and (loop := walk(start)):
            # The walk follows feeders backwards: reverse it to read in data-flow order.
            names = " -> ".join(ensemble.steps[i].name for i in reversed(loop))
            return Finding(
                (*_STEPS, loop[0], "input_map"),
                "KILN1776",
                f"the steps form a cycle: {names}",
                "a step may read only the ensemble inputs and outputs of earlier steps",
                key=True,
            )
    return None


def _unused(
    spec: ModelSpec, ensemble: Ensemble, producers: dict[str, _Producer]
) -> Iterator[Finding]:
    """Steps from which no ensemble output is reached: Triton would run them for nothing."""
    assert spec.signature is not None
    needed: set[int] = set()
    todo = [
        p.step
        for o in spec.signature.outputs
        if (p := producers.get(o.name)) and p.step is not None
    ]
    while todo:
        i = todo.pop()
        if i not in needed:
            needed.add(i)
            todo.extend(_feeders(ensemble.steps[i], producers))
    for i, step in enumerate(ensemble.steps):
        if i not in needed:
            yield Finding(
                (*_STEPS, i, "name"),
                "KILN1777",
                f"step {step.name} leads to no ensemble output",
                "remove the step, or map its outputs to what later steps or the outputs read",
            )


def _batching(spec: ModelSpec, ensemble: Ensemble) -> Iterator[Finding]:
    """Triton refuses an ensemble whose max_batch_size exceeds a step's; a batching step
    batches dimension 0 of each of its tensors."""
    largest = spec.serving.max_batch_size
    for i, step in enumerate(ensemble.steps):
        own = largest if step.max_batch_size is None else step.max_batch_size
        if own < largest:
            yield Finding(
                (*_STEPS, i, "max_batch_size"),
                "KILN1778",
                f"step {step.name} batches at most {own}, below the ensemble's "
                f"serving.max_batch_size {largest}",
                f"raise the step's max_batch_size to {largest} or more, or lower the ensemble's",
            )
        if own == 0:
            continue
        for side in ("inputs", "outputs"):
            for j, tensor in enumerate(getattr(step.signature, side)):
                if tensor.shape[0] != -1:
                    yield Finding(
                        (*_STEPS, i, "signature", side, j, "shape"),
                        "KILN1778",
                        f"`{tensor.name}` of step {step.name} has shape {list(tensor.shape)}: "
                        f"batching at {own}, its first dimension must be -1",
                        "make dimension 0 variable, or set the step's max_batch_size: 0",
                    )
