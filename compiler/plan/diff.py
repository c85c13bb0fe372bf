"""The difference of two fact tables, one change per topic."""

from __future__ import annotations

from dataclasses import dataclass

_NAMED = ("alert ", "version ", "environment ")


@dataclass(frozen=True)
class Change:
    """One difference: a topic whose value went from `old` to `new`."""

    topic: str
    old: str | None  # None: the topic is new
    new: str | None  # None: the topic is gone
    note: str = ""  # how the change reaches the running system

    def sentence(self) -> str:
        if self.old is None:
            text = f"{self.topic} added: {self.new}"
        elif self.new is None:
            text = f"{self.topic} removed (was {self.old})"
        else:
            # A named item or a spec path reads better with a colon after it.
            named = self.topic.startswith(_NAMED) or "." in self.topic
            text = f"{self.topic}{':' if named else ''} {self.old} -> {self.new}"
        return f"{text} {self.note}" if self.note else text

    def reversed(self) -> Change:
        return Change(self.topic, self.new, self.old)


NONE = "none"  # how a fact table writes a setting that is not there


def diff_facts(old: dict[str, str], new: dict[str, str]) -> list[Change]:
    """The changes from `old` to `new`. A topic that appears or goes with the value
    "none" changed nothing a reader cares about (a first version's serving block
    brings "optimization: none"; an unserved model's "serving: none" makes way for
    the block's own settings), so it is left out."""
    changes = [Change(t, old[t], new.get(t)) for t in old if old[t] != new.get(t)]
    removed = [c for c in changes if c.new is None and c.old != NONE]
    changed = [c for c in changes if c.new is not None]
    added = [Change(t, None, v) for t, v in new.items() if t not in old and v != NONE]
    return changed + added + removed
