"""JSON responses and the API's error shapes, as exceptions handlers can raise.

The API answers errors in three JSON shapes (see ``metafold-api.md``):
``{"errors": [{"field", "msg"}]}`` for bad input, ``{"msg": ...}`` for
auth/limit problems, and ``{"code", "name", "description"}`` for 404/405/500.
A sandbox answering like the published reference (``shape``) words every error
as ``{"code", "name", "description"}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Response

from .shape import current_style

__all__ = [
    "ApiError",
    "FieldError",
    "MessageError",
    "StatusError",
    "NotFoundError",
    "json_reply",
    "json_list_reply",
    "status_body",
]

NOT_FOUND_DESCRIPTION = "Resource does not exist"


def json_reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Serialize ``data`` once into an ``application/json`` response."""
    return Response(json.dumps(data), status=status, headers=headers, mimetype="application/json")


def json_list_reply(fragments: Iterable[str], status: int = 200) -> Response:
    """Answer a bare JSON array from already serialized items (cached per resource)."""
    return Response("[" + ",".join(fragments) + "]", status=status, mimetype="application/json")


def status_body(status: int, description: str | None = None) -> dict[str, Any]:
    """The ``{code, name, description}`` shape for ``status``."""
    name = HTTP_STATUS_CODES.get(status, "Unknown Error")
    if description is None:
        description = NOT_FOUND_DESCRIPTION if status == 404 else f"{name} (Metafold sandbox)"
    return {"code": status, "name": name, "description": description}


class ApiError(Exception):
    """An error answer; handlers raise it and the dispatcher turns it into a response."""

    status = 500

    def body(self) -> dict[str, Any]:  # pragma: no cover - overridden
        return status_body(self.status)

    def reference_body(self) -> dict[str, Any]:
        """The ``{code, name, description}`` form the published reference documents."""
        return status_body(self.status, str(self))

    def headers(self) -> dict[str, str]:
        return {}

    def response(self) -> Response:
        """The answer, in the shape of the request being answered (live or reference)."""
        body = self.reference_body() if current_style().reference else self.body()
        return json_reply(body, self.status, self.headers())


class FieldError(ApiError):
    """400 ``{"errors": [{"field": ..., "msg": ...}]}``."""

    status = 400

    def __init__(self, field: str, msg: str) -> None:
        super().__init__(f"{field}: {msg}")
        self.field = field
        self.msg = msg

    def body(self) -> dict[str, Any]:
        return {"errors": [{"field": self.field, "msg": self.msg}]}


class MessageError(ApiError):
    """``{"msg": ...}`` with any status (401 token problems, 403 quota, 400 state conflicts)."""

    def __init__(self, status: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.msg = msg

    def body(self) -> dict[str, Any]:
        return {"msg": self.msg}

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"} if self.status == 401 else {}


class StatusError(ApiError):
    """``{"code", "name", "description"}`` with any status."""

    def __init__(self, status: int, description: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(description or HTTP_STATUS_CODES.get(status, ""))
        self.status = status
        self.description = description
        self._headers = headers or {}

    def body(self) -> dict[str, Any]:
        return status_body(self.status, self.description)

    def reference_body(self) -> dict[str, Any]:
        return self.body()

    def headers(self) -> dict[str, str]:
        return dict(self._headers)


class NotFoundError(StatusError):
    """404 ``{"code": 404, "name": "Not Found", "description": "Resource does not exist"}``."""

    def __init__(self) -> None:
        super().__init__(404, NOT_FOUND_DESCRIPTION)
