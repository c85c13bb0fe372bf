"""A TorchScript model run as Triton's libtorch backend runs it, on the CPU.

One definition for the two places that run a TorchScript file with torch: the local
Triton's adapter (copied beside it, with torch_session.py) and `kiln smoke`'s reference
in process, so that the two answer from the same code and can be compared exactly.

The libtorch backend binds the config's tensors by name (Triton's pytorch_backend
README): an input named after an argument of `forward()` goes there, else
`<name>__<index>` gives its position; an output `<name>__<index>` is the index-th value
forward() returns. Kiln's compiler refuses other names (KILN1758).

torch is optional for Kiln (the `torch` extra): it is imported only when a model is
opened, never by the compiler. This module imports nothing from Kiln.
"""

from __future__ import annotations

import importlib.util
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# The extra that brings torch, named in every message that asks for it.
TORCH_EXTRA = "kiln[torch]"
# Triton's `<name>__<index>`: a tensor bound by position (also read by the compiler).
INDEXED = re.compile(r"^.+__(\d+)$")


class TorchModelError(Exception):
    """The file is not a TorchScript module these tensor names can be bound to."""


def torch_missing() -> str | None:
    """What to install when torch cannot be imported here, else None (without importing it)."""
    try:
        found = importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # a parent package broken, or torch blocked
        found = False
    if found:
        return None
    return (
        "TorchScript models are run with torch, which is not installed in Kiln's "
        f"environment: pip install '{TORCH_EXTRA}' (`make setup` installs it; the "
        "download is about 3 GB, see docs/serving.md)"
    )


def input_order(arguments: Sequence[str], inputs: Sequence[str]) -> list[str]:
    """The config's input names in the order forward() takes them (TorchModelError if a
    name is neither an argument of forward() nor `<name>__<index>`)."""
    if all(name in arguments for name in inputs):
        return sorted(inputs, key=arguments.index)
    positions: dict[int, str] = {}
    for name in inputs:
        match = INDEXED.match(name)
        if match is None:
            raise TorchModelError(
                f"input `{name}` is not an argument of forward() ({', '.join(arguments)}) "
                "and has no `__<index>`"
            )
        positions[int(match.group(1))] = name
    if sorted(positions) != list(range(len(inputs))):
        raise TorchModelError(f"input indexes {sorted(positions)} are not 0 to {len(inputs) - 1}")
    return [positions[i] for i in range(len(inputs))]


def output_positions(outputs: Sequence[str]) -> dict[str, int]:
    """Each output's position among forward()'s return values, from `<name>__<index>`."""
    positions = {}
    for name in outputs:
        match = INDEXED.match(name)
        if match is None:
            raise TorchModelError(f"output `{name}` has no `__<index>` giving its position")
        positions[name] = int(match.group(1))
    return positions


class TorchPredictor:
    """torch.jit.load on the CPU, in eval mode, run under inference_mode on `threads`
    intra-op threads (one by default: answers then do not depend on the machine)."""

    def __init__(
        self, path: str, inputs: Sequence[str], outputs: Sequence[str], threads: int = 1
    ) -> None:
        import torch

        self.torch = torch
        torch.set_num_threads(threads)
        try:
            with warnings.catch_warnings():
                # torch 2.10+ deprecates TorchScript for torch.export, but TorchScript is
                # what Triton's libtorch backend loads: the warning is no news to a user.
                warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", FutureWarning)
                module = torch.jit.load(path, map_location="cpu")
        except (RuntimeError, ValueError) as exc:
            raise TorchModelError(f"torch.jit.load cannot load {path}: {exc}") from exc
        self.module = module.eval()
        arguments = [a.name for a in module.forward.schema.arguments][1:]  # after self
        self.order = input_order(arguments, inputs)
        self.positions = output_positions(outputs)

    def predict(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """forward() on the named arrays; each output by its name."""
        torch = self.torch
        # Copied into tensors: Triton hands over read-only views of its shared memory.
        tensors = [torch.tensor(np.asarray(feed[name])) for name in self.order]
        with torch.inference_mode():
            result: Any = self.module(*tensors)
        values = tuple(result) if isinstance(result, tuple | list) else (result,)
        answers = {}
        for name, position in self.positions.items():
            if position >= len(values):
                raise TorchModelError(
                    f"output `{name}` is value {position} of forward(), which returns {len(values)}"
                )
            answers[name] = values[position].detach().cpu().numpy()
        return answers
