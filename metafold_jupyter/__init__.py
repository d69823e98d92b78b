"""metafold-jupyter: the Metafold 3D REST API in Jupyter and IPython.

``import metafold_jupyter as mf`` is cheap: it does no network and imports none of
requests, pandas, ipywidgets, IPython, werkzeug, numpy, trimesh or plotly. The public names below are
loaded on first use (PEP 562).

The kernel-level session lives in ``kernel_session`` (not ``session``) because
``mf.session()`` is a public function: a submodule of the same name would be
bound over it by the import system.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    APIError,
    AuthenticationError,
    ConfigError,
    DestinationExistsError,
    IntegrityError,
    InvalidIdError,
    MetafoldError,
    MissingCredentialsError,
    NotLoggedInError,
    PartialResultError,
    PollTimeout,
    TransportError,
)

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "login": "kernel_session",
    "logout": "kernel_session",
    "session": "kernel_session",
    "Session": "kernel_session",
    "usage": "frames",
    "quota": "frames",
    "license": "frames",
    "projects": "frames",
    "project": "frames",
    "assets": "frames",
    "jobs": "frames",
    "workflows": "frames",
    "download_asset": "operations",
    "upload_asset": "operations",
    "run_workflow": "operations",
    "sdk_client": "operations",
    "create_project": "lifecycle",
    "duplicate_project": "lifecycle",
    "update_project": "lifecycle",
    "delete_project": "lifecycle",
    "job": "lifecycle",
    "workflow": "lifecycle",
    "cancel_workflow": "lifecycle",
    "delete_asset": "lifecycle",
    "delete_job": "lifecycle",
    "delete_workflow": "lifecycle",
    "grid": "studies",
    "run_workflows": "studies",
    "load_mesh": "geometry",
    "show": "geometry",
    "mesh_metrics": "geometry",
}

__all__ = [
    "__version__",
    "load_ipython_extension",
    "unload_ipython_extension",
    "MetafoldError",
    "NotLoggedInError",
    "ConfigError",
    "AuthenticationError",
    "APIError",
    "TransportError",
    "PollTimeout",
    "PartialResultError",
    "MissingCredentialsError",
    "IntegrityError",
    "InvalidIdError",
    "DestinationExistsError",
    *_LAZY,
]

if TYPE_CHECKING:  # pragma: no cover
    from .frames import assets, jobs, license, project, projects, quota, usage, workflows
    from .lifecycle import (
        cancel_workflow,
        create_project,
        delete_asset,
        delete_job,
        delete_project,
        delete_workflow,
        duplicate_project,
        job,
        update_project,
        workflow,
    )
    from .geometry import load_mesh, mesh_metrics, show
    from .operations import download_asset, run_workflow, sdk_client, upload_asset
    from .studies import grid, run_workflows
    from .kernel_session import Session, login, logout, session


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (``%load_ext metafold_jupyter``); idempotent."""
    from .magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics (``%unload_ext metafold_jupyter``)."""
    from .magics import unload

    unload(ipython)
