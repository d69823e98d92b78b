"""The exception tree of metafold_jupyter (names fixed by the public interface).

Every message is built from non-secret parts only: the client secret and access
tokens are never passed to these constructors, and URLs are stripped of query
values that look like credentials (signed download links carry one).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "MetafoldError",
    "NotLoggedInError",
    "ConfigError",
    "MissingCredentialsError",
    "AuthenticationError",
    "APIError",
    "TransportError",
    "PollTimeout",
    "IntegrityError",
    "InvalidIdError",
    "redact_url",
]

_SENSITIVE_QUERY = re.compile(
    r"(sig|signature|token|secret|key|credential|password|auth|x-amz-.*|expires)$",
    re.IGNORECASE,
)


def redact_url(url: str) -> str:
    """Return ``url`` with credential-like query values replaced by ``REDACTED``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    if not parts.query:
        return url
    query = [
        (k, "REDACTED" if _SENSITIVE_QUERY.search(k) else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*:")))


class MetafoldError(Exception):
    """Base class of every error raised by metafold_jupyter.

    ``hint`` says what the user can do about it; magics show it after the message.
    """

    hint: str = ""

    def __init__(self, message: str = "", *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class NotLoggedInError(MetafoldError):
    """No kernel-level session exists (never logged in, or logged out)."""

    hint = "run %metafold_login (or mf.login()) first"

    def __init__(self, message: str = "not logged in to Metafold", *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)


class ConfigError(MetafoldError):
    """Missing or invalid settings, including an insecure (plain-http) URL."""


class InvalidIdError(MetafoldError, ValueError):
    """An ID that cannot name one Metafold resource (a ``/``, ``#``, ``?``, ``..``, empty...)."""

    hint = "IDs are plain values such as 123, as shown in the id column of %metafold projects / assets"


class MissingCredentialsError(ConfigError):
    """No client ID/secret pair (nor access token) was found anywhere: a prompt may ask."""


class AuthenticationError(MetafoldError):
    """The auth service rejected the token exchange, or a token can no longer be used.

    Attributes:
        status: HTTP status of the auth service's answer (``None`` if there was none).
        error: the auth service's ``error`` code, e.g. ``access_denied``.
        error_description: its ``error_description``.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: str | None = None,
        error_description: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.error = error
        self.error_description = error_description

    def __repr__(self) -> str:
        return (
            f"AuthenticationError(status={self.status!r}, error={self.error!r}, "
            f"error_description={self.error_description!r})"
        )


class APIError(MetafoldError):
    """The API answered with a non-2xx status.

    Attributes:
        status: HTTP status code (``None`` for a :class:`TransportError`).
        method: HTTP method of the request.
        url: the request URL, with credential-like query values redacted.
        message: the API's own message, whichever error shape it came in.
    """

    def __init__(
        self,
        status: int | None,
        method: str,
        url: str,
        message: str,
        *,
        hint: str | None = None,
    ) -> None:
        self.status = status
        self.method = method.upper()
        self.url = redact_url(url)
        self.api_message = message
        super().__init__(self._format(), hint=hint if hint is not None else _hint_for(status))

    @property
    def message(self) -> str:  # the API's own text, as the interface names it
        return self.api_message

    @property
    def path(self) -> str:
        parts = urlsplit(self.url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def _format(self) -> str:
        status = f"HTTP {self.status}" if self.status is not None else "no answer"
        return f"{self.method} {self.path} failed ({status}): {self.api_message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, method={self.method!r}, "
            f"url={self.url!r}, message={self.api_message!r})"
        )


class TransportError(APIError):
    """No usable answer: connection refused or dropped, or a timeout (``status`` is None)."""

    def __init__(self, method: str, url: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(
            None,
            method,
            url,
            message,
            hint=hint or "check the network and the base URL, then run the cell again",
        )


class PollTimeout(MetafoldError):
    """A workflow did not finish within the timeout.

    Attributes:
        workflow_id: the ID of the workflow that is still running.
        timeout: the timeout in seconds.
    """

    def __init__(self, workflow_id: str, timeout: float, state: str | None = None) -> None:
        self.workflow_id = workflow_id
        self.timeout = timeout
        self.state = state
        where = f" (last state: {state})" if state else ""
        super().__init__(
            f"workflow {workflow_id} did not finish within {timeout:g} s{where}",
            hint=f"it keeps running remotely; check it later with %metafold workflows --q id:{workflow_id}",
        )


class IntegrityError(MetafoldError):
    """A download does not match the size or the checksum the API announced."""

    def __init__(self, message: str, *, expected: str | None = None, actual: str | None = None) -> None:
        super().__init__(message, hint="download it again; if this persists the stored asset may be damaged")
        self.expected = expected
        self.actual = actual


def _hint_for(status: int | None) -> str:
    return {
        400: "check the arguments",
        401: "log in again with %metafold_login",
        403: "the licence or quota does not allow this; see %metafold quota",
        404: "check the ID (and the project with --project)",
        409: "choose another name",
        429: "too many requests; wait a moment and try again",
    }.get(status or 0, "try again later" if (status or 0) >= 500 else "")
