"""Canary weights by pod count, as Argo Rollouts splits the pods (its own test table)."""

from __future__ import annotations

import pytest

from compiler.rules import pod_weights


@pytest.mark.parametrize(
    ("replicas", "weight", "split"),
    [
        # Kiln renders maxSurge 1 and maxUnavailable 0: the stable pods stay.
        (10, 10, (1, 10)),
        (10, 5, (1, 11)),  # never 0 canary pods for a weight of 1 to 99; 1 of 11 is closer
        (1, 5, (1, 2)),
        (1, 95, (1, 2)),
        (2, 20, (1, 3)),  # the case: 20% of 2 pods is 1 pod of 3
        (3, 50, (2, 4)),  # a tie rounds up
        (4, 100, (4, 4)),
    ],
)
def test_the_pods_argo_rollouts_runs_at_a_weight(
    replicas: int, weight: int, split: tuple[int, int]
) -> None:
    assert pod_weights.pod_split(replicas, weight) == split


def test_the_weights_a_replica_count_can_give() -> None:
    assert pod_weights.expressible_weights(1) == [50, 100]
    assert pod_weights.expressible_weights(2) == [33, 50, 67, 100]
    assert pod_weights.expressible_weights(4) == [20, 25, 40, 50, 60, 75, 80, 100]
    assert pod_weights.nearest(2, 25) == [33]
    assert pod_weights.nearest(4, 30) == [25, 40]
    assert pod_weights.closest(2, 20) == 33


def test_every_weight_is_expressible_or_has_a_nearest_that_is() -> None:
    for replicas in range(1, 40):
        for weight in range(1, 101):
            if not pod_weights.expressible(replicas, weight):
                assert pod_weights.nearest(replicas, weight)
                assert all(
                    pod_weights.expressible(replicas, w)
                    for w in pod_weights.nearest(replicas, weight)
                )
