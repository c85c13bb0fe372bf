"""How a job sends a secret over HTTP: only to a URL that keeps it, and never onward.

An `Authorization` header (an alert route's, the publish step's GitHub token) goes
over https, or to this machine's loopback, where local receivers listen. urllib
follows redirects and copies the headers to the new location, so a request that
carries a secret is opened with `no_redirects`, which treats a 3xx as the answer.
"""

from __future__ import annotations

import urllib.parse
import urllib.request
from typing import Any

LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def secret_safe(url: str) -> bool:
    """Whether a secret may travel to `url`: https, or http to loopback."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK)


def http_url(url: str) -> bool:
    """Whether `url` is http(s): urllib would also open file:// and ftp:// URLs."""
    return urllib.parse.urlsplit(url).scheme in ("http", "https")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises the 3xx as an HTTPError


no_redirects = urllib.request.build_opener(_NoRedirects)
