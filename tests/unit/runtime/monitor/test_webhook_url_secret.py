"""A webhook whose URL holds a credential keeps it in a Secret (`webhook.url_secret`):
the job reads it at delivery time and never records it."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from runtime.contract.monitor_config import WebhookTarget
from runtime.monitor import alerts
from tests.unit.runtime.monitor.test_alerts import Receiver, _config, _event


def test_the_url_comes_from_the_secret_and_is_not_recorded() -> None:
    with Receiver([200]) as receiver:
        route = {"webhook": {"url_secret": {"name": "hook", "key": "url"}}}
        env = {"KILN_SECRET_HOOK_URL": receiver.url + "/hooks/t0ken-in-the-path\n"}
        (record,) = alerts.deliver(_config(route, attempts=1), [_event()], environ=env)
    assert record.ok
    assert receiver.requests[0]["path"] == "/hooks/t0ken-in-the-path"
    assert record.target == "webhook from secret hook/url"
    assert "t0ken" not in json.dumps(record.as_dict())


@pytest.mark.parametrize(
    "target",
    [{}, {"url": "https://hooks.example/x", "url_secret": {"name": "hook", "key": "url"}}],
)
def test_a_webhook_has_exactly_one_url(target: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="exactly one of url, url_secret"):
        WebhookTarget.model_validate(target)
