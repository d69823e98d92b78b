"""Fault injection: scripted wrong answers for the next N matching requests.

Faults are kept in the order they were added; a request takes the first one
that matches its origin, method and path (exact or an ``fnmatch`` glob), and a
fault disappears once it has hit ``count`` requests. Default bodies follow the
shapes of whoever answers there: Auth0 on ``/oauth/token``, the API elsewhere
on the API origin, S3-style XML on the download origin.
"""

from __future__ import annotations

import fnmatch
import json
import threading
import time
from dataclasses import dataclass, replace

from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Response

from .replies import status_body

__all__ = ["Fault", "FaultInjector", "fault_response", "s3_error"]

ORIGINS = ("api", "download")


@dataclass
class Fault:
    """One scripted fault (see ``Sandbox.inject``)."""

    path: str
    method: str | None = None
    status: int | None = None
    count: int = 1
    retry_after: float | str | None = None
    body: str | bytes | None = None
    content_type: str | None = None
    drop: bool = False
    delay: float = 0.0
    redirect: str | None = None
    origin: str = "api"
    truncate: int | None = None

    def matches(self, origin: str, method: str, path: str) -> bool:
        """Whether a request is hit by this fault."""
        if origin != self.origin:
            return False
        if self.method is not None and method.upper() != self.method.upper():
            return False
        return path == self.path or fnmatch.fnmatchcase(path, self.path)

    @property
    def answers(self) -> bool:
        """Whether the fault replaces the answer (rather than only delaying it)."""
        return self.status is not None or self.redirect is not None or self.body is not None


class FaultInjector:
    """A thread-safe, ordered list of faults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        """Validate and append a fault.

        Raises:
            ValueError: on an unknown origin, a count below 1, a bad status, or a
                fault that would do nothing.
        """
        if fault.origin not in ORIGINS:
            raise ValueError(f"origin must be one of {ORIGINS}, not {fault.origin!r}")
        if fault.count < 1:
            raise ValueError("count must be at least 1")
        if fault.delay < 0:
            raise ValueError("delay must not be negative")
        if fault.truncate is not None and fault.truncate < 0:
            raise ValueError("truncate must not be negative")
        if fault.redirect is not None:
            if fault.status is None:
                fault.status = 307
            elif not 300 <= fault.status < 400:
                raise ValueError("a redirect needs a 3xx status (default 307)")
        if fault.status is not None and not 100 <= fault.status <= 599:
            raise ValueError(f"status must be an HTTP status code, not {fault.status!r}")
        if fault.body is not None and fault.status is None:
            raise ValueError("body= needs status=")
        if not (fault.answers or fault.drop or fault.delay or fault.truncate is not None):
            raise ValueError("a fault needs status=, redirect=, drop=True, delay= or truncate=")
        with self._lock:
            self._faults.append(fault)

    def take(self, origin: str, method: str, path: str) -> Fault | None:
        """Consume one hit of the first matching fault and return it (or None)."""
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.matches(origin, method, path):
                    fault.count -= 1
                    if fault.count <= 0:
                        del self._faults[i]
                    return replace(fault)
        return None

    def clear(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[Fault]:
        """Copies of the faults still waiting (with their remaining counts)."""
        with self._lock:
            return [replace(f) for f in self._faults]


def s3_error(status: int, code: str, message: str) -> Response:
    """An S3-style XML error, as storage behind signed links answers."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<RequestId>SANDBOX0000000000</RequestId></Error>"
    )
    return Response(body, status=status, mimetype="application/xml")


_S3_CODES = {
    400: ("InvalidRequest", "Invalid request"),
    403: ("AccessDenied", "Access Denied"),
    404: ("NoSuchKey", "The specified key does not exist."),
    429: ("SlowDown", "Please reduce your request rate."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    503: ("SlowDown", "Please reduce your request rate."),
}

_AUTH0_ERRORS = {
    400: ("invalid_request", "Invalid request"),
    401: ("access_denied", "Unauthorized"),
    403: ("access_denied", "Forbidden"),
    429: ("too_many_requests", "Global limit has been reached"),
}


def _api_body(status: int) -> dict:
    if status == 400:
        return {"errors": [{"field": "request", "msg": "Injected fault (Metafold sandbox)"}]}
    if status == 401:
        return {"msg": "Token has expired"}
    if status == 403:
        return {"msg": "Forbidden (injected by the Metafold sandbox)"}
    if status == 429:
        return {"msg": "Too many requests"}
    return status_body(status, f"{HTTP_STATUS_CODES.get(status, 'Error')} (injected by the Metafold sandbox)")


def fault_response(fault: Fault, path: str) -> Response:
    """Build the answer of a fault that replaces the response."""
    status = fault.status or 500
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        value = fault.retry_after
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        headers["Retry-After"] = str(value)
        if fault.origin == "api" and path == "/oauth/token" and status == 429:
            seconds = float(value) if isinstance(value, (int, float)) else 1.0
            headers["X-RateLimit-Limit"] = "30"
            headers["X-RateLimit-Remaining"] = "0"
            headers["X-RateLimit-Reset"] = str(int(time.time() + seconds))
    if fault.redirect is not None:
        headers["Location"] = fault.redirect
    if fault.body is not None:
        mimetype = fault.content_type or ("application/json" if _looks_json(fault.body) else "text/plain")
        return Response(fault.body, status=status, headers=headers, content_type=_with_charset(mimetype))
    if fault.redirect is not None:
        return Response(json.dumps({"msg": f"Moved to {fault.redirect}"}), status=status, headers=headers,
                        mimetype="application/json")
    if fault.origin == "download":
        code, message = _S3_CODES.get(status, ("Error", HTTP_STATUS_CODES.get(status, "Error")))
        response = s3_error(status, code, message)
        response.headers.update(headers)
        return response
    if path == "/oauth/token":
        error, description = _AUTH0_ERRORS.get(
            status, ("server_error" if status >= 500 else "invalid_request", HTTP_STATUS_CODES.get(status, "Error"))
        )
        body = {"error": error, "error_description": description}
    else:
        body = _api_body(status)
    return Response(json.dumps(body), status=status, headers=headers, mimetype="application/json")


def _looks_json(body: str | bytes) -> bool:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return text.lstrip()[:1] in ("{", "[")


def _with_charset(mimetype: str) -> str:
    if "charset" in mimetype or not (mimetype.startswith("text/") or mimetype.endswith("json")):
        return mimetype
    return f"{mimetype}; charset=utf-8"
