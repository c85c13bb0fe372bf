"""Canary weights by pod count: the share of traffic a basic canary can give.

Without traffic routing (`traffic: replicas`), Argo Rollouts turns a step's weight
into a number of canary pods beside the stable ones, and the traffic follows the
pods. With `replicas` pods and the surge of one pod Kiln renders, it weighs a few
splits (canary pods over `replicas` or `replicas + 1` pods, rounded up or down) and
keeps the one closest to the weight asked for: 20% of 2 pods is 1 of 3, 33%.
Argo Rollouts' `approximateWeightedCanaryStableReplicaCounts` (utils/replicaset/
canary.go, v1.9.0) is the rule followed here.
"""

from __future__ import annotations

import math

FULL = 100  # Argo Rollouts' largest weight, the whole of the traffic
SURGE = 1  # extra pods the by-pod-count canary may run: `maxSurge: 1` in strategies.py


def pod_split(replicas: int, weight: int) -> tuple[int, int]:
    """(canary pods, all pods) Argo Rollouts runs at `weight` percent of `replicas`."""
    exact = replicas * weight / FULL
    ceiling, floor = math.ceil(exact), math.floor(exact)
    zero_allowed = weight in (0, FULL)  # Kiln's surge is never 0
    options: list[tuple[int, int]] = []
    if ceiling < replicas or zero_allowed:
        options.append((ceiling, replicas))
    if not _tied(replicas, weight) and (floor or zero_allowed):
        options.append((floor, replicas))
    options.append((ceiling, replicas + SURGE))
    if not _tied(replicas + SURGE, weight) and (floor or zero_allowed):
        options.append((floor, replicas + SURGE))
    # The first of the closest wins, as in Argo Rollouts (a strict `<` while scanning).
    return min(options, key=lambda option: abs(FULL * option[0] / option[1] - weight))


def _tied(total: int, weight: int) -> bool:
    """Rounding up and down are as far from the weight: Argo Rollouts rounds up."""
    return math.modf(total * weight / FULL)[0] == 0.5


def share(replicas: int, weight: int) -> float:
    """Percent of the traffic the canary gets at `weight`, by pod count."""
    canary, total = pod_split(replicas, weight)
    return FULL * canary / total


def expressible(replicas: int, weight: int) -> bool:
    """Whether the canary's share of pods, to the whole percent, is the weight asked."""
    return round(share(replicas, weight)) == weight


def expressible_weights(replicas: int) -> list[int]:
    """Every weight from 1 to 100 that `replicas` pods can give exactly."""
    return [w for w in range(1, FULL + 1) if expressible(replicas, w)]


def nearest(replicas: int, weight: int) -> list[int]:
    """The expressible weights closest below and above `weight` (one or two)."""
    weights = expressible_weights(replicas)
    below = [w for w in weights if w < weight]
    above = [w for w in weights if w > weight]
    return [*below[-1:], *above[:1]]


def closest(replicas: int, weight: int) -> int:
    """The expressible weight closest to `weight` (the lower one on a tie)."""
    return min(expressible_weights(replicas), key=lambda w: (abs(w - weight), w))
