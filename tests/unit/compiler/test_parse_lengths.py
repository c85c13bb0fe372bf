"""pydantic's length errors read as Kiln's own messages, with the count and the bound."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, Field, ValidationError

from compiler.parse import translate


class _Block(BaseModel):
    steps: list[int] = Field([1], min_length=1, max_length=2)
    name: str = Field("x", min_length=1, max_length=3)
    labels: dict[str, int] = Field({"a": 1}, min_length=1)


def _messages(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        _Block.model_validate(data)
    found = translate(caught.value, data, _Block, "spec.yaml", lambda path, key: (1, 1))
    return [f"{d.code}: {d.message}" + (f" ({d.hint})" if d.hint else "") for d in found]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"steps": []}, "KILN1105: `steps` is empty: give at least 1 item"),
        ({"steps": [1, 2, 3]}, "KILN1105: `steps` has 3 items: give at most 2 items"),
        ({"name": ""}, "KILN1105: `name` is empty: give at least 1 character"),
        ({"name": "abcd"}, "KILN1105: `name` has 4 characters ('abcd'): give at most 3 characters"),
        ({"labels": {}}, "KILN1105: `labels` is empty: give at least 1 item"),
    ],
)
def test_a_length_error_says_what_to_give(data: dict[str, Any], message: str) -> None:
    assert _messages(data) == [message]
