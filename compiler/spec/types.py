"""Field types shared by every kind of spec.

Each type validates its own syntax and fails with a stable Kiln code, so that a
bad value is reported as `error[KILN12xx]` at the line that holds it. The JSON
Schema of each type carries the same pattern so editors flag it too.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import date
from decimal import Decimal
from functools import cache
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from compiler.spec.cron import longest_gap_seconds
from runtime.contract.durations import DURATION, duration_seconds, is_duration
from runtime.contract.monitor_config import secret_key_problem
from runtime.contract.secrets import redact
from runtime.contract.steps import env_name_pattern, env_name_problem

API_VERSION = "kiln/v1alpha1"


class SpecModel(BaseModel):
    """Base of every spec block: unknown fields are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def shown(value: Any, limit: int = 200) -> str:
    """A value as a message quotes it, cut at `limit` characters: long enough for any
    digest or URI a person writes, short enough that a huge value in a spec never
    floods the terminal or a pull request comment. A secret in it is redacted before
    it is cut, so that no part of one survives the cut unrecognised."""
    if isinstance(value, str):
        value = redact(value)
    text = value.isoformat() if isinstance(value, date) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# The context key that carries, through pydantic, the field a check of a whole block
# faults (parse.translate reports the diagnostic there).
AT = "kiln_at"


def fail(code: str, message: str, at: str | None = None) -> PydanticCustomError:
    """A validation failure that keeps its Kiln code through pydantic. `at`: the dotted
    path, below the validated block, of the field at fault (a model validator's own
    location is the block's first line)."""
    if at is None:
        return PydanticCustomError(code, message)
    # pydantic fills `{kiln_at}` in a message with the context; no message says that.
    return PydanticCustomError(code, message, {AT: at})


def _matcher(
    code: str, pattern: str, what: str, hint: str, max_len: int | None = None
) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise fail(code, f"{shown(value)} is not {what}; {hint}")
        if max_len is not None and len(value) > max_len:
            raise fail(
                code, f"{shown(value)} is {len(value)} characters; {what} has at most {max_len}"
            )
        return value

    return AfterValidator(check)


DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
Name = Annotated[
    str,
    _matcher(
        "KILN1201",
        DNS_LABEL,
        "a DNS-1123 label",
        "use lower-case letters, digits and '-', starting and ending with a letter or digit",
        63,
    ),
    WithJsonSchema({"type": "string", "pattern": f"^{DNS_LABEL}$", "maxLength": 63}),
]

# Kubernetes label keys, node-selector keys, taint keys and extended resource names are
# qualified names: an optional DNS-subdomain prefix and '/', then at most 63 of
# [A-Za-z0-9-_.] starting and ending alphanumeric (apimachinery's IsQualifiedName).
# Checked here because each becomes a YAML key or a resource name in the output.
_QUALIFIED_PART = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
QUALIFIED_NAME = rf"({DNS_LABEL}(\.{DNS_LABEL})*/)?{_QUALIFIED_PART}"


def _check_qualified_name(value: str) -> str:
    prefix, _, _ = value.rpartition("/")
    if not re.fullmatch(QUALIFIED_NAME, value) or len(prefix) > 253:
        raise fail(
            "KILN1213",
            f"{shown(value, 80)} is not a Kubernetes qualified name; write an optional "
            "DNS prefix and '/', then up to 63 letters, digits, '-', '_' or '.', starting and "
            "ending with a letter or digit (e.g. nvidia.com/gpu)",
        )
    return value


QualifiedName = Annotated[
    str,
    AfterValidator(_check_qualified_name),
    WithJsonSchema({"type": "string", "pattern": f"^{QUALIFIED_NAME}$"}),
]

LABEL_VALUE = rf"({_QUALIFIED_PART})?"
LabelValue = Annotated[
    str,
    _matcher(
        "KILN1214",
        LABEL_VALUE,
        "a Kubernetes label value",
        "use up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
    ),
    WithJsonSchema({"type": "string", "pattern": f"^{LABEL_VALUE}$"}),
]

# An extended resource name (a GPU's) is a qualified name whose DNS prefix is required.
PREFIXED_NAME = rf"{DNS_LABEL}(\.{DNS_LABEL})*/{_QUALIFIED_PART}"
ResourceName = Annotated[
    str,
    _matcher(
        "KILN1213",
        PREFIXED_NAME,
        "an extended resource name",
        "write domain/name, such as nvidia.com/gpu or amd.com/gpu",
    ),
    WithJsonSchema({"type": "string", "pattern": f"^{PREFIXED_NAME}$"}),
]

COLUMN = r"[A-Za-z_][A-Za-z0-9_]*"
ColumnName = Annotated[
    str,
    _matcher("KILN1211", COLUMN, "a column name", "use letters, digits and '_'"),
    WithJsonSchema({"type": "string", "pattern": f"^{COLUMN}$"}),
]

# Kubernetes resource quantity, as the apimachinery parser accepts it.
QUANTITY = r"[+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+|[KMGTPE]i|[numkMGTPE])?"


def _quantity_from_number(value: Any) -> Any:
    if isinstance(value, bool):
        return value  # let the str check reject it
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # Every digit kept: `format(x, "g")` would round 17179869184.5 to 1.71799e+10.
        text = format(Decimal(repr(value)), "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    return value


Quantity = Annotated[
    str,
    BeforeValidator(_quantity_from_number),
    _matcher(
        "KILN1202",
        QUANTITY,
        "a Kubernetes quantity",
        "write it like '500m', '4', '16Gi'",
    ),
    WithJsonSchema({"type": ["string", "number"], "pattern": f"^{QUANTITY}$"}),
]


# The longest duration the targets hold: Go's time.Duration (Argo Rollouts' pauses and
# intervals) and Prometheus' durations (a rule's `for`) are int64 nanoseconds, about
# 292 years; Kiln writes them in whole seconds.
GO_DURATION_MAX_SECONDS = (2**63 - 1) // 10**9  # 9,223,372,036


def _check_duration(value: str) -> str:
    if re.fullmatch(r"(\d+(ms|s|m|h|d))+", value) and not is_duration(value):
        raise fail(
            "KILN1203",
            f"{shown(value, 40)} has a number of over 15 digits; write a duration Go and "
            "Prometheus can hold, such as '30d' or '365d'",
        )
    if not is_duration(value) or duration_seconds(value) <= 0:
        raise fail(
            "KILN1203",
            f"{shown(value)} is not a duration; write a positive number with a unit "
            "(ms, s, m, h, d), for example '30s', '10m', '1h30m', '7d'",
        )
    return _within(value, GO_DURATION_MAX_SECONDS, "Go and Prometheus hold (about 292 years)")


def _within(value: str, limit: int, holder: str) -> str:
    seconds = duration_seconds(value)
    if seconds > limit:
        raise fail(
            "KILN1203",
            f"{shown(value, 40)} is {seconds:.0f} seconds, longer than {holder}: "
            f"{limit} seconds; write a shorter duration",
        )
    return value


def _whole_seconds(limit: int, holder: str) -> AfterValidator:
    """A duration its target counts in whole seconds, at most `limit` of them."""

    def check(value: str) -> str:
        if not float(duration_seconds(value)).is_integer():
            raise fail(
                "KILN1203",
                f"{shown(value, 40)} is not a whole number of seconds, and this field is "
                "written in seconds; round it, for example '1s' or '2s'",
            )
        return _within(value, limit, holder)

    return AfterValidator(check)


Duration = Annotated[
    str,
    AfterValidator(_check_duration),
    WithJsonSchema({"type": "string", "pattern": f"^{DURATION}$"}),
]
# Durations the targets read as whole seconds: Argo Rollouts' pauses and intervals,
# Prometheus' `for`; and one Kubernetes keeps in an int32 (scaleDownDelaySeconds).
Seconds = Annotated[
    Duration, _whole_seconds(GO_DURATION_MAX_SECONDS, "Go and Prometheus hold (about 292 years)")
]
Int32Seconds = Annotated[Duration, _whole_seconds(2**31 - 1, "an int32 of seconds holds")]

_CRON_FIELD = r"[\d*/,\-A-Za-z?]+"
_CRON_RANGES = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day", 1, 31),
    ("month", 1, 12),
    ("weekday", 0, 7),
)


_VALID_CRONS: set[str] = set()  # models share schedules: check each expression once


def _check_cron(value: str) -> str:
    if value in _VALID_CRONS:
        return value
    from croniter import croniter  # imported here: only specs with schedules pay for it

    fields = value.split()
    if len(fields) != 5 or not all(re.fullmatch(_CRON_FIELD, f) for f in fields):
        raise fail(
            "KILN1204",
            f"{shown(value)} is not a 5-field cron expression (minute hour day month weekday)",
        )
    for (what, low, high), text in zip(_CRON_RANGES, fields, strict=True):
        for part in text.split(","):
            for number in re.findall(r"\d+", part.split("/")[0]):
                if not low <= int(number) <= high:
                    raise fail(
                        "KILN1204",
                        f"{shown(value)} is not a valid cron expression: {what} {number} is "
                        f"outside {low}-{high}",
                    )
    if not croniter.is_valid(value):
        raise fail("KILN1204", f"{shown(value)} is not a valid cron expression")
    if longest_gap_seconds(value) is None:
        raise fail("KILN1204", f"{shown(value)} never runs: no date matches its day and month")
    _VALID_CRONS.add(value)
    return value


Cron = Annotated[str, AfterValidator(_check_cron), WithJsonSchema({"type": "string"})]


@cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _check_time_zone(value: str) -> str:
    if value not in _time_zones():
        import difflib

        close = difflib.get_close_matches(value, sorted(_time_zones()), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise fail("KILN1205", f"{shown(value)} is not an IANA time zone{hint}")
    return value


TimeZone = Annotated[str, AfterValidator(_check_time_zone), WithJsonSchema({"type": "string"})]

SHA256 = r"[0-9a-f]{64}"
Sha256 = Annotated[
    str,
    _matcher(
        "KILN1206",
        SHA256,
        "a sha256 digest",
        "write the 64 lower-case hex digits of `sha256sum`, without a prefix",
    ),
    WithJsonSchema({"type": "string", "pattern": f"^{SHA256}$"}),
]

URI_SCHEMES = ("s3", "gs", "gcs", "az", "abfs", "http", "https", "file")
_URI = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<rest>\S*)")
_RELATIVE_PATH = re.compile(r"[^\s:]+")


def _check_uri(value: str) -> str:
    # Credentials in a URI are refused with every other secret (compiler.inert_text).
    if "$(" in value:
        # Store URIs reach container commands through Argo parameters, after Kiln's
        # escaping: Kubernetes would expand `$(NAME)` there. No store needs it.
        raise fail(
            "KILN1207",
            f"{shown(value)} holds '$(', which Kubernetes expands in container commands; "
            "rename the path",
        )
    match = _URI.fullmatch(value)
    if match:
        if match["scheme"] not in URI_SCHEMES:
            raise fail(
                "KILN1207",
                f"{shown(value)} uses the unsupported scheme {match['scheme']!r}; "
                f"use one of {', '.join(URI_SCHEMES)}",
            )
        if not match["rest"] or (match["scheme"] != "file" and match["rest"].startswith("/")):
            raise fail("KILN1207", f"{shown(value)} has no host or bucket")
        return value
    if _RELATIVE_PATH.fullmatch(value) and not value.startswith("/"):
        return value  # relative to the environment's storage root
    raise fail(
        "KILN1207",
        f"{shown(value)} is not a URI; write scheme://bucket/path or a path relative "
        "to the environment's storage",
    )


Uri = Annotated[str, AfterValidator(_check_uri), WithJsonSchema({"type": "string"})]

# A branch, tag or commit, and a folder of the repository, as Argo CD and Argo's git
# artifact take them. A subset of what git allows, without the characters a shell, a
# template or Kubernetes' `$(VAR)` expansion would act on: the revision also reaches a
# container command through an Argo parameter, where no escape applies.
GIT_REVISION = r"[A-Za-z0-9_][A-Za-z0-9._/+-]*"


def _check_git_text(value: str) -> str:
    parts = value.split("/")
    if not re.fullmatch(GIT_REVISION, value) or ".." in value or "" in parts:
        raise fail(
            "KILN1215",
            f"{shown(value, 80)} is not a git revision or repository folder; use letters, "
            "digits, '.', '_', '+', '-' and '/' (no '..', no empty folder)",
        )
    return value


GitText = Annotated[
    str,
    AfterValidator(_check_git_text),
    WithJsonSchema({"type": "string", "pattern": f"^{GIT_REVISION}$"}),
]

# registry/repository[:tag][@sha256:digest], as the distribution reference grammar allows.
IMAGE = (
    r"(?P<name>[a-z0-9]+([._-][a-z0-9]+)*(:\d+)?(/[a-z0-9]+([._-]{1,2}[a-z0-9]+)*)*)"
    r"(:(?P<tag>[\w][\w.-]{0,127}))?(@sha256:(?P<digest>[0-9a-f]{64}))?"
)
_IMAGE = re.compile(IMAGE)


def _check_image(value: str) -> str:
    match = _IMAGE.fullmatch(value)
    if not match or not (match["tag"] or match["digest"]):
        raise fail(
            "KILN1208",
            f"{shown(value)} is not an image reference with a tag or digest; "
            "write registry/repository:tag or registry/repository@sha256:<digest>",
        )
    return value


def image_has_digest(value: str) -> bool:
    match = _IMAGE.fullmatch(value)
    return bool(match and match["digest"])


Image = Annotated[
    str, AfterValidator(_check_image), WithJsonSchema({"type": "string", "pattern": f"^{IMAGE}$"})
]

FEATURE_REF = r"(?P<name>" + DNS_LABEL + r")@(?P<version>\d+)"
FeatureRef = Annotated[
    str,
    _matcher(
        "KILN1210",
        FEATURE_REF,
        "a FeatureSet reference",
        "write name@version, for example car-loan-applicant@1",
    ),
    WithJsonSchema({"type": "string", "pattern": f"^{FEATURE_REF}$"}),
]

# Counts end up in int32 fields of Triton's protobuf (and in Kubernetes objects);
# a larger number would crash the renderer instead of being reported here.
INT32_MAX = 2**31 - 1
PositiveInt = Annotated[int, Field(ge=1, le=INT32_MAX)]
NonNegativeInt = Annotated[int, Field(ge=0, le=INT32_MAX)]
# GPUs of one pod: each is enumerated in Triton's instance groups. 64 leaves room
# for nodes that expose MIG slices as separate devices.
MAX_GPUS_PER_POD = 64
GpuCount = Annotated[int, Field(ge=0, le=MAX_GPUS_PER_POD)]
Fraction = Annotated[float, Field(ge=0, le=1)]


def _check_secret_key(value: str) -> str:
    problem = secret_key_problem(value)
    if problem is not None:
        raise fail("KILN1105", problem)
    return value


SecretKey = Annotated[str, AfterValidator(_check_secret_key), WithJsonSchema({"type": "string"})]


class SecretRef(SpecModel):
    """A key of a Kubernetes Secret in the environment's namespace."""

    name: Name = Field(description="Name of the Kubernetes Secret.")
    key: SecretKey = Field(
        description="Key inside the Secret: letters, digits, '-', '_', '.' (not '.' or '..')."
    )


def _check_env_name(value: str) -> str:
    problem = env_name_problem(value)
    if problem is not None:
        raise fail("KILN1630", problem)
    return value


EnvVarName = Annotated[
    str,
    AfterValidator(_check_env_name),
    WithJsonSchema({"type": "string", "pattern": env_name_pattern()}),
]


class Schedule(SpecModel):
    """When a job runs."""

    cron: Cron = Field(description="Five-field cron expression.")
    timezone: TimeZone = Field("UTC", description="IANA time zone the cron is read in.")
