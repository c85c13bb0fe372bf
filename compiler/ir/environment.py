"""The IR of an environment and its storage: plain values, built by compiler/lowering.py.

Only what the targets render is kept. The environment's policy and GPU quota are
checked by the spec rules on the spec itself (compiler/rules/), and its namespace and
storage are resolved into ModelIR.namespace and ModelIR.storage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from compiler.ir.secret import SecretRefIR
from runtime.contract.signing import Trust

# Kubernetes labels as (key, value) pairs, sorted by key: a label set has no order.
Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class TolerationIR:
    # Field names and order are Kubernetes's: the pod spec takes the set ones as they are.
    key: str
    operator: Literal["Equal", "Exists"]
    value: str | None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None


@dataclass(frozen=True)
class GpuIR:
    """Where pods that use GPUs run, and the extended resource they request."""

    resource: str
    node_selector: Labels
    tolerations: tuple[TolerationIR, ...]


@dataclass(frozen=True)
class NetworkIR:
    """Who may reach a served model's pods, and the Secret key that unlocks Triton's
    restricted APIs ((Secret name, key); None: the pod's own uid)."""

    clients: tuple[str, ...] = ()  # namespaces, sorted; the model's own is always allowed
    monitoring_namespace: str = "monitoring"
    admin_key_secret: tuple[str, str] | None = None


@dataclass(frozen=True)
class EnvironmentIR:
    name: str
    kind: Literal["cluster", "local"]
    gpu: GpuIR
    prometheus_url: str
    pushgateway_url: str | None  # None: the monitor job pushes no metrics
    monitoring_labels: Labels  # put on the objects Prometheus selects by label
    trust: Trust = field(
        default_factory=Trust
    )  # signers the serving pod accepts; require_signatures
    signing_key: SecretRefIR | None = None  # the private key the publish step signs with
    network: NetworkIR = field(default_factory=NetworkIR)


@dataclass(frozen=True)
class StorageIR:
    # Field names are the spec's: the plan lists them under their spec paths.
    models: str  # root of the model store
    data: str  # root of the data store
