"""The exception tree of metafold_jupyter (names fixed by the public interface).

Every message is built from non-secret parts only: the client secret and access
tokens are never passed to these constructors, server-supplied text is scrubbed by
the session before it gets here, and every message and hint is scrubbed again of
anything shaped like a credential (:func:`metafold_jupyter.redaction.scrub`). URLs
are stripped of query values that look like credentials (signed download links
carry one).

``str()`` of every error is one line: what failed, then `` — `` and what to do
(its ``hint``), so Python users read the remedy as magic users do.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .redaction import redact_url, scrub

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
    "InvalidValueError",
    "PartialResultError",
    "DestinationExistsError",
    "redact_url",
]

HINT_SEPARATOR = " — "


class MetafoldError(Exception):
    """Base class of every error raised by metafold_jupyter.

    ``hint`` says what the user can do about it; ``str()`` ends with it, and
    :attr:`message` is the part before it.
    """

    hint: str = ""

    def __init__(self, message: str = "", *, hint: str | None = None) -> None:
        super().__init__(scrub(message))
        if hint is not None:
            self.hint = scrub(hint)

    @property
    def message(self) -> str:
        """What failed, without the hint."""
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        text = str(self.args[0]) if self.args else ""
        hint = self.hint
        if not hint or text.endswith(hint):
            return text
        return f"{text}{HINT_SEPARATOR}{hint}" if text else hint


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


class InvalidValueError(MetafoldError, ValueError):
    """An argument the API would refuse (an ``access`` outside private/public/org...), caught before sending."""


class DestinationExistsError(MetafoldError, FileExistsError):
    """A download would replace an existing file (pass ``overwrite=True`` / ``--overwrite``)."""

    hint = "pass overwrite=True (%metafold download ... --overwrite) to replace it, or choose another destination"


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
        self.error = None if error is None else scrub(error)
        self.error_description = None if error_description is None else scrub(error_description)

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
        retry_after: seconds the answer's ``Retry-After`` asked for (429, 503), else None.
    """

    retry_after: float | None = None

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
        self.url = scrub(redact_url(url))
        self.api_message = scrub(message)
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


class PartialResultError(MetafoldError):
    """Some of the calls behind one result failed (an account-wide frame with failed projects).

    Nothing is silently missing: the rows that came back and what failed travel together.

    Attributes:
        frame: the rows that came back (the usual schema and dtypes).
        failures: a DataFrame with one row per failed call: ``project_id``, ``status``
            (Int64, ``<NA>`` when there was no answer) and ``message`` (the API's own).
    """

    def __init__(self, message: str, *, frame: object, failures: object, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.frame = frame
        self.failures = failures

    def __reduce__(self) -> tuple:
        return (_partial_result_error, (self.message, self.frame, self.failures, self.hint))

    def __repr__(self) -> str:
        return f"PartialResultError({self.message!r})"


def _partial_result_error(message: str, frame: object, failures: object, hint: str) -> PartialResultError:
    return PartialResultError(message, frame=frame, failures=failures, hint=hint)

def _hint_for(status: int | None) -> str:
    return {
        400: "check the arguments",
        401: "log in again with %metafold_login",
        403: "the licence's usage limit is reached (or its quota is used up); "
        "see %metafold quota and %metafold license (mf.quota(), mf.license())",
        404: "check the ID (and the project with --project)",
        409: "choose another name",
        429: "too many requests; wait a moment and try again",
    }.get(status or 0, "try again later" if (status or 0) >= 500 else "")
