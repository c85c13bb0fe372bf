"""Whether this machine holds credentials for the object stores a job is about to read or
write, asked before the job touches one.

Without this, the first read of an `s3://` artifact fails deep inside botocore with its
own traceback (`NoCredentialsError`), which names neither the store nor what to set. The
check asks the library's own credential chain (environment, shared files, profile, an
instance or pod role), so it accepts exactly what the later read would use, and it says
what is missing by variable and file names only: no credential's value is ever shown.

S3 only for now: the stores Kiln's Project examples use. Other schemes are left to the
read itself, whose errors the callers already turn into messages.
"""

from __future__ import annotations

from runtime.contract.secrets import redact
from runtime.contract.secrets import redact_uri as shown_uri

S3_SCHEMES = ("s3", "s3a")
AWS_HOW = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE naming a profile of "
    "~/.aws/credentials, or run where an IAM role provides them"
)


def _aws_problem() -> str | None:
    """What AWS's credential chain lacks on this machine, or None when it finds some."""
    try:
        import botocore.session
        from botocore.exceptions import BotoCoreError
    except ImportError:  # no S3 driver at all: the read names the missing package
        return None
    try:
        found = botocore.session.Session().get_credentials()
    except BotoCoreError as exc:  # e.g. a key id without its secret: names the variable
        return f"its AWS credentials are incomplete ({redact(str(exc))}); {AWS_HOW}"
    if found is None:
        return f"no AWS credentials were found; {AWS_HOW}"
    return None


def missing_credentials(stores: dict[str, str]) -> str | None:
    """Why this machine cannot authenticate to the S3 stores among `stores` (what each is
    -> its URI), naming them; None when it can, or when none is on S3."""
    on_s3 = [f"{what} {shown_uri(uri)}" for what, uri in stores.items() if _on_s3(uri)]
    if not on_s3:
        return None
    problem = _aws_problem()  # asked once: the chain may wait on a metadata service
    return None if problem is None else f"cannot reach {' and '.join(on_s3)}: {problem}"


def _on_s3(uri: str) -> bool:
    return "://" in uri and uri.split("://", 1)[0].lower() in S3_SCHEMES
