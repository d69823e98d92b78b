"""The shape of an API answer: a JSON object, or a list of objects — or one APIError line.

A server that answers ``null``, ``[1, 2]`` or ``[[1]]`` where a list of records
belongs (a proxy, a misconfigured base URL, a hostile host) must not surface as a
``TypeError`` deep in pandas: every reader of an answer goes through these checks,
which name the endpoint and what was wrong in one line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from .errors import APIError

if TYPE_CHECKING:  # pragma: no cover
    import requests

__all__ = ["describe", "as_records", "json_of", "records_of", "object_of"]

_HINT = "the API answered in a shape this client cannot use; try again, and report it if it persists"


def describe(value: Any) -> str:
    """How a JSON value reads in a message: ``null``, ``a number (5)``, ``a list``..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})" if len(repr(value)) <= 20 else "a number"
    if isinstance(value, str):
        return f"a string ({value[:20]!r}{'…' if len(value) > 20 else ''})"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def as_records(records: Any, what: str = "objects") -> list[Mapping[str, Any]]:
    """One object, or a list of objects, as a list of objects.

    Raises:
        TypeError: anything else, saying what it was.
    """
    if isinstance(records, Mapping):
        return [records]
    if isinstance(records, (str, bytes)) or not isinstance(records, Iterable):
        raise TypeError(f"expected a JSON object or a list of {what}, got {describe(records)}")
    if not isinstance(records, list):
        records = list(records)
    if not set(map(type, records)) <= {dict}:  # the JSON case is one C-level pass
        for i, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise TypeError(f"expected a list of {what}, but item {i} is {describe(record)}")
    return records


def json_of(resp: requests.Response) -> Any:
    """The parsed JSON body of ``resp``.

    Raises:
        APIError: the body is not JSON.
    """
    try:
        return resp.json()
    except ValueError:
        raise APIError(resp.status_code, _method(resp), resp.url, "the answer is not JSON", hint=_HINT) from None


def records_of(resp: requests.Response, what: str = "objects") -> list[dict[str, Any]]:
    """The JSON array of objects a list endpoint answers (``what`` names them in the message).

    Raises:
        APIError: not JSON, or not a list of objects.
    """
    body = json_of(resp)
    if not isinstance(body, list):
        _refuse(resp, f"expected a list of {what}, got {describe(body)}")
    try:
        return as_records(body, what)  # type: ignore[return-value]  # JSON objects are dicts
    except TypeError as exc:
        _refuse(resp, str(exc))


def object_of(resp: requests.Response) -> dict[str, Any]:
    """The JSON object an endpoint answers.

    Raises:
        APIError: not JSON, or not an object.
    """
    body = json_of(resp)
    if not isinstance(body, dict):
        _refuse(resp, f"expected an object, got {describe(body)}")
    return body


def _refuse(resp: requests.Response, problem: str) -> NoReturn:
    raise APIError(resp.status_code, _method(resp), resp.url, f"unexpected answer: {problem}", hint=_HINT)


def _method(resp: requests.Response) -> str:
    request = getattr(resp, "request", None)
    return (getattr(request, "method", None) or "GET").upper()
