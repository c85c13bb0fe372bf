"""What a secret looks like, and how one is shown without being given away.

One definition for the compiler (which refuses a spec that holds a secret and
never echoes one in a diagnostic, the plan or an annotation) and for the jobs
(which print artifact URIs in their errors). A secret is recognised by its shape
(a token format a provider documents) or by the name it stands under
(`password=...`, `--api-token VALUE`, `{secret: VALUE}`) when the value is long
and varied enough to be a credential rather than a word.

`redact` keeps a few leading characters, so that a person can tell which value
was meant, and says what kind of secret it was.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

AWS_SECRET_KEY = "AWS secret access key"  # noqa: S105 the name of a kind, not a secret
# Token formats, each as its issuer documents it. The group `secret` is the part
# to hide; without it the whole match is.
_SHAPES: tuple[tuple[str, str], ...] = (
    (
        "private key block",
        r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY[A-Z ]{0,20}-----(?:[^-]|-(?!----END))*",
    ),
    ("GCP service-account key", r"\"(?:private_key_id|private_key)\"\s*:\s*\"(?P<secret>[^\"]+)"),
    ("GCP service-account key", r"\"type\"\s*:\s*\"service_account\""),
    ("AWS access key id", r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|AIDA|AROA|ANPA|APKA)[A-Z0-9]{16}"),
    ("GitHub token", r"(?<![A-Za-z0-9])gh[pousr]_[A-Za-z0-9]{30,}"),
    ("GitHub token", r"(?<![A-Za-z0-9])github_pat_[A-Za-z0-9_]{20,}"),
    ("GitLab token", r"(?<![A-Za-z0-9])gl(?:pat|dt|rt|ptt|soat|cbt|ft|imt|oas)-[\w-]{20,}"),
    ("Slack webhook", r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<secret>[\w/+-]+)"),
    ("Slack token", r"(?<![A-Za-z0-9])xox[abposre]-[A-Za-z0-9-]{8,}"),
    ("Slack token", r"(?<![A-Za-z0-9])xapp-[A-Za-z0-9-]{8,}"),
    ("JSON web token", r"(?<![\w-])eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]*"),
    (
        "credentials in a URL",
        r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*://(?P<secret>[^/\s@?#]+)@",
    ),
    (
        "authorization header",
        r"(?i:\b(?:bearer|basic)\s+)(?P<secret>(?=[\w.~+/=-]*[\d.~+/=-])[\w.~+/=-]{8,})",
    ),
    # AWS secret access keys have no prefix: 40 characters of base64 (mixed as keys
    # are: see `_looks_generated`).
    (AWS_SECRET_KEY, r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"),
)
# One alternation, so that a text is scanned once for every shape: alternative `kN`
# is the N-th shape, and its part to hide, if it names one, is group `sN`.
_SHAPE_PATTERN = re.compile(
    "|".join(
        f"(?P<k{index}>{pattern.replace('(?P<secret>', f'(?P<s{index}>')})"
        for index, (_, pattern) in enumerate(_SHAPES)
    )
)
_SHORTEST = 8  # no shape, and no named value, is shorter
# What every shape and every assignment holds somewhere: most spec strings (names,
# paths, commands) hold none of it and are not searched further.
_CANDIDATE = re.compile(
    r"[A-Za-z0-9/+]{16}|[=:@\"]|-----|eyJ|xox|xapp-|gl[a-z]{1,4}-|github_pat_|hooks\.slack"
    r"|(?i:bearer|basic)\s"
)

# Names a credential stands under, as a key, an option or an assignment.
SECRET_NAME = re.compile(
    r"(?i)^[\w.-]*(?:password|passwd|passphrase|secret|token|credential|api[_-]?key"
    r"|access[_-]?key|private[_-]?key|signing[_-]?key|client[_-]?key)s?$"
)
# Patterns start where a run starts (a look-behind), so that a long run of letters
# is scanned once, not once from each of its characters. Assignments may nest
# (`url: https://host/?token=VALUE`): each is matched inside a look-ahead, so that
# one does not swallow the next, and a value ends at the next `=` or `:`, so that
# each separator's value is scanned once and the search stays linear.
_ASSIGNMENT = re.compile(
    r"(?<![\w.-])(?=(?P<name>[\w.-]{1,100})\s*[=:]\s*[\"']?(?P<value>[^\s\"'&;,=:]{1,500}))"
)
# A value under such a name is taken for a secret when it is this long and this varied
# (bits per character, Shannon): words, paths and `${VARIABLE}` references are not.
MIN_NAMED_LENGTH = 8
MIN_NAMED_ENTROPY = 3.0
_NOT_A_VALUE = re.compile(r"[$/{<]|(?i:true|false|none|null|changeme|redacted)$")
SHOWN_CHARACTERS = 4


@dataclass(frozen=True)
class Finding:
    """A secret in a text: its kind and where the part to hide starts and ends."""

    kind: str
    start: int
    end: int


def entropy(value: str) -> float:
    """Shannon entropy of `value`, in bits per character."""
    if not value:
        return 0.0
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def is_named_secret(name: str, value: str) -> bool:
    """Whether `value`, standing under `name` (a key or an option), is a credential."""
    bare = name.lstrip("-")
    return (
        bool(SECRET_NAME.match(bare))
        and len(value) >= MIN_NAMED_LENGTH
        and not _NOT_A_VALUE.match(value)
        and entropy(value) >= MIN_NAMED_ENTROPY
    )


def find_secrets(text: str) -> list[Finding]:
    """Every secret in `text`, by shape or by the name assigned it, first to last."""
    if len(text) < _SHORTEST or not _CANDIDATE.search(text):
        return []
    found: list[Finding] = []
    for match in _SHAPE_PATTERN.finditer(text):
        index = int(str(match.lastgroup)[1:])
        kind = _SHAPES[index][0]
        if kind == AWS_SECRET_KEY and not _looks_generated(match.group()):
            continue
        hide = f"s{index}" if f"s{index}" in _SHAPE_PATTERN.groupindex else 0
        found.append(Finding(kind, match.start(hide), match.end(hide)))
    if "=" in text or ":" in text:
        for match in _ASSIGNMENT.finditer(text):
            if is_named_secret(match["name"], match["value"]):
                start, end = match.span("value")
                found.append(Finding(f"value of {match['name']}", start, end))
    return _without_overlaps(found)


def _looks_generated(value: str) -> bool:
    """Upper and lower case letters and a digit or symbol: a key, not a word or a hex digest."""
    return (
        any(c.isupper() for c in value)
        and any(c.islower() for c in value)
        and any(not c.isalpha() for c in value)
    )


def _without_overlaps(found: list[Finding]) -> list[Finding]:
    kept: list[Finding] = []
    for finding in sorted(found, key=lambda f: (f.start, -f.end)):
        if kept and finding.start < kept[-1].end:
            continue
        kept.append(finding)
    return kept


def hidden(value: str, kind: str) -> str:
    """`value` as it may be shown: a few leading characters and what it is."""
    shown = value[: min(SHOWN_CHARACTERS, len(value) // 4)]
    return f"{shown}...[redacted {kind}]"


def redact(text: str) -> str:
    """`text` with every secret in it hidden."""
    findings = find_secrets(text)
    if not findings:
        return text
    parts: list[str] = []
    position = 0
    for finding in findings:
        secret = text[finding.start : finding.end]
        parts += [text[position : finding.start], hidden(secret, finding.kind)]
        position = finding.end
    parts.append(text[position:])
    return "".join(parts)


def redact_uri(uri: str) -> str:
    """A URI with its user information and query hidden: both may carry credentials
    (`s3://KEY:SECRET@bucket`, a presigned URL's signature)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return redact(uri)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "[redacted credentials]@" + netloc.rsplit("@", 1)[1]
    query = "[redacted query]" if parts.query else ""
    return redact(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))
