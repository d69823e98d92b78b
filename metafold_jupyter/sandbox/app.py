"""The sandbox's API and auth origin as a werkzeug WSGI app.

``SandboxApp`` maps every endpoint of ``metafold-api.md`` (plus
``POST /oauth/token``) with a werkzeug ``Map``; endpoint ``x`` is handled by
``on_x``. Handlers raise ``replies.ApiError`` subclasses for error answers,
and the dispatcher turns them (and werkzeug's 404/405) into the API's JSON
error shapes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from .downloads import LinkSigner
from .query import SPECS, QueryError, apply_list
from .replies import (
    ApiError,
    FieldError,
    MessageError,
    StatusError,
    json_list_reply,
    json_reply,
    status_body,
)
from .shape import AnswerShape, current_style
from .store import Store
from .tokens import TokenError, TokenIssuer
from .uploads import receive_upload

__all__ = ["SandboxApp"]

_LOGGER = logging.getLogger(__name__)


class _Request(Request):
    """A request with the authenticated user (the token's ``sub``)."""

    user: str = ""


def _rules() -> list[Rule]:
    routes = [
        ("/oauth/token", "POST", "token"),
        ("/user/usage", "GET", "usage"),
        ("/user/quota", "GET", "quota"),
        ("/user/license", "GET", "license"),
        ("/projects", "GET", "projects"),
        ("/projects", "POST", "create_project"),
        ("/projects/<pid>", "GET", "project"),
        ("/projects/<pid>", "PATCH", "update_project"),
        ("/projects/<pid>", "DELETE", "delete_project"),
        ("/projects/<pid>/assets", "GET", "assets"),
        ("/projects/<pid>/assets", "POST", "upload_asset"),
        ("/projects/<pid>/assets/<aid>", "GET", "asset"),
        ("/projects/<pid>/assets/<aid>", "DELETE", "delete_asset"),
        ("/projects/<pid>/jobs", "GET", "jobs"),
        ("/projects/<pid>/jobs/<jid>", "GET", "job"),
        ("/projects/<pid>/jobs/<jid>", "DELETE", "delete_job"),
        ("/projects/<pid>/workflows", "GET", "workflows"),
        ("/projects/<pid>/workflows", "POST", "run_workflow"),
        ("/projects/<pid>/workflows/<wid>", "GET", "workflow"),
        ("/projects/<pid>/workflows/<wid>", "DELETE", "delete_workflow"),
        ("/projects/<pid>/workflows/<wid>/status", "GET", "workflow_status"),
        ("/projects/<pid>/workflows/<wid>/cancel", "POST", "cancel_workflow"),
    ]
    return [Rule(path, methods=[method], endpoint=endpoint) for path, method, endpoint in routes]


class SandboxApp:
    """The API + auth WSGI app.

    Args:
        store: the account's resources.
        tokens: issues and verifies access tokens.
        signer: makes signed download links.
        client_id: the one accepted client ID.
        client_secret: its secret.
        audience: the API's audience; the token endpoint also accepts it with a
            trailing slash, and the sandbox's own URL with or without one.
        public_url: returns the sandbox URL once it is serving (None before;
            links then use the request's host).
        shape: how answers are worded (live or reference, date style); see ``shape``.
        max_upload_bytes: largest upload accepted (413 beyond).
    """

    def __init__(
        self,
        store: Store,
        tokens: TokenIssuer,
        signer: LinkSigner,
        *,
        client_id: str,
        client_secret: str,
        audience: str,
        public_url: Callable[[], str | None],
        shape: AnswerShape | None = None,
        max_upload_bytes: int = 1 << 30,
    ) -> None:
        self.store = store
        self.tokens = tokens
        self.signer = signer
        self.client_id = client_id
        self.client_secret = client_secret
        self.audience = audience
        self.public_url = public_url
        self.shape = shape if shape is not None else AnswerShape()
        self.max_upload_bytes = max_upload_bytes
        self.url_map = Map(_rules(), strict_slashes=False)

    # --------------------------------------------------------------- plumbing
    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        return self.wsgi_app(environ, start_response)

    def wsgi_app(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        """Dispatch one request to its ``on_<endpoint>`` handler."""
        request = _Request(environ)
        with self.shape.active():  # one answer, one shape (even if switched meanwhile)
            response = self.dispatch_request(request)
        return response(environ, start_response)

    def dispatch_request(self, request: _Request) -> Response:
        """Match the URL, check the token (except on /oauth/token) and call the handler."""
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            endpoint, values = adapter.match()
            if endpoint != "token":
                request.user = self._authenticate(request)
            return getattr(self, f"on_{endpoint}")(request, **values)
        except ApiError as exc:
            return exc.response()
        except MethodNotAllowed as exc:
            return json_reply(
                status_body(405, "The method is not allowed for the requested URL."),
                405,
                {"Allow": ", ".join(exc.valid_methods or [])},
            )
        except HTTPException as exc:
            code = exc.code or 500
            return json_reply(status_body(code, None if code == 404 else exc.description), code)
        except Exception:  # noqa: BLE001 - a server answers 500 rather than dropping the request
            _LOGGER.exception("sandbox handler failed: %s %s", request.method, request.path)
            return StatusError(500, "The sandbox hit an internal error (see its log)").response()

    def _authenticate(self, request: _Request) -> str:
        header = request.headers.get("Authorization")
        if not header:
            raise MessageError(401, "Missing Authorization Header")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MessageError(401, "Bad Authorization header. Expected 'Authorization: Bearer <JWT>'")
        try:
            claims = self.tokens.verify(token.strip())
        except TokenError as exc:
            raise MessageError(401, str(exc)) from exc
        return str(claims["sub"])

    @staticmethod
    def _json_body(request: _Request) -> Any:
        if not request.get_data(cache=True):
            return {}
        data = request.get_json(force=True, silent=True)
        if data is None:
            raise FieldError("body", "Invalid JSON body")
        return data

    @staticmethod
    def _listing(request: _Request, kind: str, rows: list[Any]) -> list[Any]:
        try:
            return apply_list(rows, SPECS[kind], q=request.args.get("q"), sort=request.args.get("sort"))
        except QueryError as exc:
            raise FieldError(exc.field, exc.msg) from exc

    def _status_link(self, request: _Request, project_id: int, workflow_id: int) -> str:
        base = self.public_url() or request.host_url.rstrip("/")
        return f"{base}/projects/{project_id}/workflows/{workflow_id}/status"

    # ------------------------------------------------------------------- auth
    def on_token(self, request: _Request) -> Response:
        """``POST /oauth/token``: the client-credentials exchange, answered like Auth0."""
        if request.mimetype == "application/json":
            body = request.get_json(silent=True)
            if not isinstance(body, dict):
                return self._auth0_error(400, "invalid_request", "Invalid JSON body")
            params = {k: v for k, v in body.items() if isinstance(v, str)}
        else:
            params = request.form.to_dict()
        if request.authorization is not None and request.authorization.type == "basic":
            params.setdefault("client_id", request.authorization.username or "")
            params.setdefault("client_secret", request.authorization.password or "")
        grant_type = params.get("grant_type")
        if not grant_type:
            return self._auth0_error(400, "invalid_request", "Missing required parameter: grant_type")
        if grant_type != "client_credentials":
            return self._auth0_error(
                400, "unsupported_grant_type", f"Grant type '{grant_type}' not allowed for the client."
            )
        for name in ("client_id", "client_secret", "audience"):
            if not params.get(name):
                return self._auth0_error(400, "invalid_request", f"Missing required parameter: {name}")
        if params["client_id"] != self.client_id or params["client_secret"] != self.client_secret:
            return self._auth0_error(401, "access_denied", "Unauthorized")
        audience = params["audience"]
        if not self._is_own_audience(audience):
            return self._auth0_error(
                403,
                "access_denied",
                f'Client is not authorized to access "{audience}". You need to create a "client-grant" '
                "associated to this API. See: https://auth0.com/docs/api/v2#!/Client_Grants/post_client_grants",
            )
        token = self.tokens.issue(self.client_id)
        return json_reply(
            {"access_token": token, "token_type": "Bearer", "expires_in": int(self.tokens.lifetime)},
            200,
            {"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    def _is_own_audience(self, audience: str) -> bool:
        # The official SDK's client-credentials mode sends its base URL as the
        # audience: "https://api.metafold3d.com/" against the real service, this
        # sandbox's own URL (with the slash) against the sandbox.
        own = {self.audience.rstrip("/")}
        url = self.public_url()
        if url:
            own.add(url.rstrip("/"))
        return audience.removesuffix("/") in own

    @staticmethod
    def _auth0_error(status: int, error: str, description: str) -> Response:
        return json_reply({"error": error, "error_description": description}, status, {"Cache-Control": "no-store"})

    # ------------------------------------------------------------------- user
    def on_usage(self, request: _Request) -> Response:
        """``GET /user/usage``: lifetime counts."""
        with self.store.lock:
            return json_reply(dict(self.store.usage))

    def on_quota(self, request: _Request) -> Response:
        """``GET /user/quota``: remaining counts."""
        return json_reply(self.store.quota())

    def on_license(self, request: _Request) -> Response:
        """``GET /user/license``."""
        return json_reply(self.store.license())

    # --------------------------------------------------------------- projects
    def on_projects(self, request: _Request) -> Response:
        """``GET /projects`` with ``sort`` and ``q``."""
        # Serialize under the lock: a concurrent PATCH must not leave a stale cached JSON.
        with self.store.lock:
            rows = self._listing(request, "projects", self.store.visible_projects(request.user))
            return json_list_reply(p.to_json() for p in rows)

    def on_create_project(self, request: _Request) -> Response:
        """``POST /projects``: create, or duplicate with ``source``."""
        body = self._json_body(request)
        with self.store.lock:
            record = self.store.create_project(request.user, body)
            return Response(record.to_json(), 201, mimetype="application/json")

    def on_project(self, request: _Request, pid: str) -> Response:
        """``GET /projects/{pid}``."""
        with self.store.lock:
            return Response(self.store.project(request.user, pid).to_json(), mimetype="application/json")

    def on_update_project(self, request: _Request, pid: str) -> Response:
        """``PATCH /projects/{pid}``."""
        body = self._json_body(request)
        with self.store.lock:
            record = self.store.update_project(request.user, pid, body)
            return Response(record.to_json(), mimetype="application/json")

    def on_delete_project(self, request: _Request, pid: str) -> Response:
        """``DELETE /projects/{pid}`` (with its assets, jobs and workflows)."""
        self.store.delete_project(request.user, pid)
        return json_reply({"msg": f"Project {pid} deleted"})

    # ----------------------------------------------------------------- assets
    def on_assets(self, request: _Request, pid: str) -> Response:
        """``GET /projects/{pid}/assets`` with ``sort`` and ``q``."""
        rows = self._listing(request, "assets", self.store.project_assets(request.user, pid))
        if current_style().reference:  # the reference lists a download link on every item
            return json_list_reply(json.dumps({**a.to_dict(), "link": self.signer.link(a)}) for a in rows)
        return json_list_reply(a.to_json() for a in rows)

    def on_asset(self, request: _Request, pid: str, aid: str) -> Response:
        """``GET /projects/{pid}/assets/{aid}``; with ``download=true`` adds a signed ``link``."""
        asset = self.store.asset(request.user, pid, aid)
        if request.args.get("download", "").lower() not in ("true", "1", "yes"):
            return Response(asset.to_json(), mimetype="application/json")
        # Downloads are free: the export quota counts export jobs (mesh/from-volume), not fetches.
        data = asset.to_dict()
        data["link"] = self.signer.link(asset)
        return json_reply(data)

    def on_upload_asset(self, request: _Request, pid: str) -> Response:
        """``POST /projects/{pid}/assets``: multipart part ``file``, streamed into one file in the store."""
        self.store.project(request.user, pid)  # 404 before reading the upload

        def target(filename: str) -> Path:
            self.store.check_upload(request.user, pid, filename)  # taken name, quota: before any byte
            return self.store.upload_path()

        upload = receive_upload(request, "file", target, self.max_upload_bytes)
        asset = self.store.import_upload(request.user, pid, upload.filename, upload.path, upload.size, upload.checksum)
        return Response(asset.to_json(), 201, mimetype="application/json")

    def on_delete_asset(self, request: _Request, pid: str, aid: str) -> Response:
        """``DELETE /projects/{pid}/assets/{aid}``."""
        self.store.delete_asset(request.user, pid, aid)
        return json_reply({"msg": f"Asset {aid} deleted"})

    # ------------------------------------------------------------------- jobs
    def on_jobs(self, request: _Request, pid: str) -> Response:
        """``GET /projects/{pid}/jobs`` with ``sort`` and ``q``."""
        with self.store.lock:
            rows = self._listing(request, "jobs", self.store.project_jobs(request.user, pid))
            return json_list_reply(json.dumps(self.store.job_dict(j)) for j in rows)

    def on_job(self, request: _Request, pid: str, jid: str) -> Response:
        """``GET /projects/{pid}/jobs/{jid}``."""
        with self.store.lock:
            return json_reply(self.store.job_dict(self.store.job(request.user, pid, jid)))

    def on_delete_job(self, request: _Request, pid: str, jid: str) -> Response:
        """``DELETE /projects/{pid}/jobs/{jid}``."""
        self.store.delete_job(request.user, pid, jid)
        return json_reply({"msg": f"Job {jid} deleted"})

    # -------------------------------------------------------------- workflows
    def on_workflows(self, request: _Request, pid: str) -> Response:
        """``GET /projects/{pid}/workflows`` with ``sort`` and ``q``."""
        with self.store.lock:
            rows = self._listing(request, "workflows", self.store.project_workflows(request.user, pid))
            return json_list_reply(json.dumps(w.to_dict()) for w in rows)

    def on_workflow(self, request: _Request, pid: str, wid: str) -> Response:
        """``GET /projects/{pid}/workflows/{wid}``."""
        with self.store.lock:
            return json_reply(self.store.workflow(request.user, pid, wid).to_dict())

    def on_run_workflow(self, request: _Request, pid: str) -> Response:
        """``POST /projects/{pid}/workflows``: dispatch; 202 with the status ``link``.

        400 for a bad request, 403 for an expired licence or exhausted quota, 429
        with ``Retry-After`` past the sandbox's in-flight limit; none of them creates
        anything.
        """
        with self.store.lock:
            workflow = self.store.dispatch(request.user, pid, self._json_body(request))
            link = None if current_style().reference else self._status_link(request, workflow.project_id, workflow.id)
            return json_reply(workflow.to_dict(link), 202)  # the reference's 202 schema has no link

    def on_workflow_status(self, request: _Request, pid: str, wid: str) -> Response:
        """``GET .../workflows/{wid}/status``: 202 ``{"state"}`` while running, 201 the workflow once finished."""
        with self.store.lock:
            workflow = self.store.workflow(request.user, pid, wid)
            if not workflow.done:
                return json_reply({"state": workflow.state}, 202)
            return json_reply(workflow.to_dict(self._status_link(request, workflow.project_id, workflow.id)), 201)

    def on_cancel_workflow(self, request: _Request, pid: str, wid: str) -> Response:
        """``POST .../workflows/{wid}/cancel``."""
        with self.store.lock:
            return json_reply(self.store.cancel_workflow(request.user, pid, wid).to_dict())

    def on_delete_workflow(self, request: _Request, pid: str, wid: str) -> Response:
        """``DELETE .../workflows/{wid}`` (and its jobs)."""
        self.store.delete_workflow(request.user, pid, wid)
        return json_reply({"msg": f"Workflow {wid} deleted"})
