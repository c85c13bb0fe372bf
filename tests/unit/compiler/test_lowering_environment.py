"""Lowering an environment and its storage: mappings become sorted pairs."""

from __future__ import annotations

from compiler.ir.environment import GpuIR, StorageIR, TolerationIR
from compiler.lowering import lower_environment, lower_storage
from compiler.spec.project import Environment, Storage


def test_environment_defaults_are_applied() -> None:
    environment = lower_environment(Environment(name="staging"))
    assert (environment.name, environment.kind) == ("staging", "cluster")
    assert environment.gpu == GpuIR("nvidia.com/gpu", (), ())
    assert environment.prometheus_url == "http://prometheus-operated.monitoring.svc:9090"
    assert environment.pushgateway_url == "http://prometheus-pushgateway.monitoring.svc:9091"
    assert environment.monitoring_labels == ()
    hash(environment)


def test_environment_mappings_become_sorted_pairs() -> None:
    environment = lower_environment(
        Environment.model_validate(
            {
                "name": "production",
                "gpu": {
                    "resource": "amd.com/gpu",
                    "node_selector": {"pool": "gpu", "accelerator": "mi300"},
                    "tolerations": [{"key": "gpu", "operator": "Equal", "value": "yes"}],
                },
                "monitoring_labels": {"release": "prom", "team": "ml"},
                "pushgateway_url": None,
            }
        )
    )
    assert environment.gpu.resource == "amd.com/gpu"
    assert environment.gpu.node_selector == (("accelerator", "mi300"), ("pool", "gpu"))
    assert environment.gpu.tolerations == (TolerationIR("gpu", "Equal", "yes", None),)
    assert environment.monitoring_labels == (("release", "prom"), ("team", "ml"))
    assert environment.pushgateway_url is None
    hash(environment)


def test_storage_keeps_its_roots() -> None:
    storage = Storage(models="s3://acme/models", data="s3://acme/data")
    assert lower_storage(storage) == StorageIR("s3://acme/models", "s3://acme/data")
