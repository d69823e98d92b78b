"""The embedded Metafold sandbox: a local stand-in for the auth service and the API.

``from metafold_jupyter.sandbox import Sandbox`` loads the server machinery
(werkzeug, cheroot, PyJWT, PyYAML) on first use only; importing this package itself is
cheap. The sandbox shares nothing with the rest of metafold_jupyter but the
contract in ``metafold-api.md``.

Example::

    with Sandbox() as sb:
        print(sb.url, sb.client_id, sb.client_secret)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .constants import AUDIENCE, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

__all__ = ["Sandbox", "RequestRecord", "SANDBOX_CLIENT_ID", "SANDBOX_CLIENT_SECRET", "AUDIENCE"]

_LAZY = {"Sandbox": "server", "RequestRecord": "middleware"}

if TYPE_CHECKING:  # pragma: no cover
    from .middleware import RequestRecord
    from .server import Sandbox


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
