"""What no string of a spec may hold, wherever it lands: a secret, or template syntax.

Spec text reaches engines that evaluate it: Argo Workflows substitutes `{{...}}`
and `{{=expr}}` in templates, Argo Rollouts `{{args.x}}` in AnalysisTemplates,
Argo CD's ApplicationSet runs Go templates (`{{ .x }}`) over every string, and
Kiln's own pipeline replaces `{out}`, `{in:STEP}` and the like in step commands.
None of these has an escape a spec could rely on, so the delimiters are refused in
every key and value, at the line that holds them, before any field is read.

A secret is refused the same way (KILN1209), and the diagnostic shows it
redacted: a spec is read by everyone who reads the repository, and what Kiln
prints goes into CI logs and pull request comments.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from compiler.diagnostics import Diagnostic, Path_
from compiler.load import Document
from runtime.contract.secrets import find_secrets, hidden, is_named_secret

# `{{` opens Argo's and Go's templates; the tokens are Kiln's pipeline placeholders
# (compiler.targets.pipeline.TOKEN), which a runner replaces in any command text.
TEMPLATE_SYNTAX = re.compile(r"\{\{|\{(?:out\}|spec\}|in:|param:|run:)")
TEMPLATE_HINT = (
    "Argo, Argo CD and Kiln's pipeline would evaluate it; spec values may not hold '{{' "
    "nor Kiln's step tokens ('{out}', '{in:...}', '{param:...}', '{run:...}', '{spec}')"
)


def _strings(data: Any) -> Iterator[tuple[Path_, str, bool, str]]:
    """Every string in a document: its path, its text, whether it is a key, and the
    name it stands under (its key, or the option before it in a list). A loop rather
    than recursion: it runs over every node of every spec."""
    stack: list[tuple[Path_, Any, str]] = [((), data, "")]
    while stack:
        path, node, name = stack.pop()
        if isinstance(node, str):
            yield path, node, False, name
        elif isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str):
                    yield (*path, key), key, True, ""
                stack.append(((*path, key), value, str(key)))
        elif isinstance(node, list):
            previous = ""
            for index, item in enumerate(node):
                stack.append(((*path, index), item, previous))
                previous = item if isinstance(item, str) else ""


# The secret-reference forms the spec accepts, as hints write them (a test parses each).
SLACK_FORM = "slack: {webhook_secret: {name: SECRET, key: KEY}}"
WEBHOOK_URL_FORM = "webhook: {url_secret: {name: SECRET, key: KEY}}"
HEADERS_FORM = "headers: {NAME: {name: SECRET, key: KEY}}"
TRAINING_FORM = "training: {secret_env: {VAR: {name: SECRET, key: KEY}}}"
SIGNING_FORM = "signing: {key_secret: {name: SECRET, key: KEY}}"
_TRAINING_HINT = (
    f"keep it in a Kubernetes Secret and give it to the train step as a variable: "
    f"`{TRAINING_FORM}`; the training code reads $VAR (`kiln run --local` reads it from "
    "this shell's variable VAR)"
)
_WEBHOOK_HINT = (
    f"keep the URL in a Kubernetes Secret: `{WEBHOOK_URL_FORM}`, or send the credential "
    f"as a header: `{HEADERS_FORM}`"
)
# A field whose credential the cluster holds, not the spec: what to use instead.
_CLUSTER_HELD = {
    "alertmanager": (
        "an alertmanager route sends no credential; to send one, use a webhook route: "
        f"`{WEBHOOK_URL_FORM}` or `{HEADERS_FORM}`"
    ),
    "git": (
        "write the URL without credentials and give Argo CD the repository's credentials "
        "as a repository Secret (label argocd.argoproj.io/secret-type: repository)"
    ),
    "images": (
        "write the image without credentials; the namespace's ServiceAccount pulls it "
        "with its imagePullSecrets (or the node's registry credentials)"
    ),
}


def _secret_hint(path: Path_, kind: str) -> str:
    """A reference that works in this field, or where the secret belongs instead."""
    fields = [p for p in path if isinstance(p, str)]
    if kind == "Slack webhook":
        return f"give it to an alert route as `{SLACK_FORM}`"
    if "public_keys" in fields and kind == "private key block":
        return (
            "a spec holds only the public half (`openssl ec -pubout`); treat the private key "
            f"as leaked, since it is in the repository's history, rotate it, and give the new "
            f"one to the publish step as `{SIGNING_FORM}`"
        )
    if "headers" in fields[-2:]:
        return f"write the header as a Secret reference: `{HEADERS_FORM}`"
    if fields[-2:] == ["webhook", "url"]:
        return _WEBHOOK_HINT
    held = next((_CLUSTER_HELD[f] for f in fields if f in _CLUSTER_HELD), None)
    if held is not None:
        return held
    if fields[-1:] == ["image"]:
        return _CLUSTER_HELD["images"]
    if kind == "credentials in a URL":
        return (
            "remove the credentials from the URI; grant access with workload identity "
            "(IRSA, GKE or Azure workload identity) or a Kubernetes Secret the job mounts"
        )
    if "training" in fields:
        return _TRAINING_HINT
    return (
        "remove it from the spec and rotate it (the repository's history keeps it); a job "
        f"that needs it reads it from a Kubernetes Secret: `{TRAINING_FORM}` for training, "
        f"`{HEADERS_FORM}` for an alert webhook"
    )


def _secret(document: Document, path: Path_, text: str, key: bool, name: str) -> Diagnostic | None:
    findings = find_secrets(text)
    if findings:
        first = findings[0]
        kind, shown = first.kind, hidden(text[first.start : first.end], first.kind)
    elif not key and is_named_secret(name, text):
        kind, shown = f"value of {name}", hidden(text, f"value of {name}")
    else:
        return None
    line, col = document.locate(path, key=key)
    message = f"this {'key' if key else 'value'} holds a secret ({shown})"
    return Diagnostic(document.path, line, col, "KILN1209", message, hint=_secret_hint(path, kind))


def _template(document: Document, path: Path_, text: str, key: bool) -> Diagnostic | None:
    match = TEMPLATE_SYNTAX.search(text)
    if match is None:
        return None
    line, col = document.locate(path, key=key)
    message = f"this {'key' if key else 'value'} holds template syntax {match.group()!r}"
    return Diagnostic(document.path, line, col, "KILN1212", message, hint=TEMPLATE_HINT)


def inert_text_problems(document: Document) -> list[Diagnostic]:
    """A diagnostic for each string of the document that holds a secret or template syntax."""
    problems: list[Diagnostic] = []
    for path, text, key, name in _strings(document.data):
        found = _secret(document, path, text, key, name) or _template(document, path, text, key)
        if found is not None:
            problems.append(found)
    return problems
