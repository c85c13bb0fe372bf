"""A key of a Kubernetes Secret, as the IR names it: alert routes, training variables and
the signing key all refer to Secrets this way."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SecretRefIR:
    name: str  # the Kubernetes Secret, in the environment's namespace
    key: str  # a key inside it (the Kubernetes Secret key grammar)
