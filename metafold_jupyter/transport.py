"""Transport layer: one keep-alive requests.Session per login, retry policy as data,
timeouts on every call, one refresh-and-replay on a 401, errors mapped to APIError.

Retries come only from urllib3 ``Retry`` mounted through ``HTTPAdapter``: reads on
408/429/5xx and dropped connections. Writes (POST, PATCH, DELETE, PUT) are sent once:
retried only when the connection could not be opened, and PATCH/DELETE also on a 429
refusal (see :class:`WriteOnceRetry`). The token exchange has its own adapter,
mounted on the token URL, that may retry its POST on connect errors, 429 and 5xx —
never on 401/403.

The bearer token is attached by :class:`BearerAuth` only to requests for the
configured API origin. Passing an explicit ``auth`` also means requests never
consults ``~/.netrc`` for these calls, and requests itself drops the
Authorization header on a redirect to another host or port.
"""

from __future__ import annotations

import html
import logging
import re
from typing import Any
from urllib.parse import urljoin

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from . import __version__
from .auth import Credentials
from .config import Settings, origin_of
from .errors import APIError, AuthenticationError, TransportError
from .pacing import paced

_LOGGER = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

#: Methods that may be sent again after the server may have acted on them.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class WriteOnceRetry(Retry):
    """``Retry`` that never sends a write again once the server may have acted on it.

    Reads (``allowed_methods``) are retried as ``Retry`` does. Every other method is a
    write: urllib3 still retries it when the connection could not be opened (nothing
    was sent), but never after a 5xx or a connection dropped after sending — the
    server may have acted, and a replayed DELETE would report a 404 for a delete that
    worked, a replayed POST create a second project. The one exception is data:
    :attr:`WRITE_REFUSALS`, statuses that mean the server refused the request without
    acting on it. 429 is such a refusal (a rate limiter answers before the request is
    handled, RFC 6585 §4); 503 is not, even with Retry-After, because a gateway may
    send it after the backend acted. POST is left out: its body may be a one-shot
    stream (uploads) that urllib3 cannot send again.
    """

    #: method -> statuses after which that write may be sent again (it was refused).
    WRITE_REFUSALS: dict[str, frozenset[int]] = {"PATCH": frozenset({429}), "DELETE": frozenset({429})}

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if self._is_method_retryable(method):
            return super().is_retry(method, status_code, has_retry_after)
        return status_code in self.WRITE_REFUSALS.get(method.upper(), ())


#: API calls: reads retried on dropped connections and RETRY_STATUSES; writes sent once.
#: One read retry only: urllib3 counts a read timeout as a read error too, and a
#: user should wait at most twice the read timeout for a server that never answers.
API_RETRY = WriteOnceRetry(
    total=5,
    connect=3,
    read=1,
    status=4,
    other=0,
    redirect=5,
    allowed_methods=READ_METHODS,
    status_forcelist=RETRY_STATUSES,
    backoff_factor=0.25,
    backoff_max=8.0,
    backoff_jitter=0.25,
    respect_retry_after_header=True,
    retry_after_max=30,
    raise_on_status=False,
    raise_on_redirect=False,
)

#: The token exchange: its POST may be retried on connect errors, 429 and 5xx.
AUTH_RETRY = API_RETRY.new(
    allowed_methods=frozenset({"POST"}),
    status_forcelist=RETRY_STATUSES - {408},
    read=0,
)

_USER_AGENT = f"metafold-jupyter/{__version__} python-requests/{requests.__version__}"


class BearerAuth(requests.auth.AuthBase):
    """Attach ``Authorization: Bearer`` only to requests for the API origin."""

    def __init__(self, credentials: Credentials, api_origin: str) -> None:
        self._credentials = credentials
        self._origin = api_origin

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if origin_of(request.url or "") == self._origin:
            request.headers["Authorization"] = "Bearer " + self._credentials.token()
        return request

    def __repr__(self) -> str:
        return f"<BearerAuth origin={self._origin!r}>"


class NoAuth(requests.auth.AuthBase):
    """No credentials at all (and, being explicit, no ~/.netrc lookup)."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


NO_AUTH = NoAuth()


def build_http(settings: Settings) -> requests.Session:
    """A requests.Session with the API retry policy and the token exchange's own adapter."""
    http = requests.Session()
    http.headers.update({"Accept": "application/json", "User-Agent": _USER_AGENT})
    # paced: inside a fan-out, a 429 slows every worker down, not only the one that got it
    api_adapter = HTTPAdapter(max_retries=paced(API_RETRY), pool_maxsize=32)
    http.mount("https://", api_adapter)
    http.mount("http://", api_adapter)
    http.mount(settings.token_url, HTTPAdapter(max_retries=AUTH_RETRY))
    return http


def exchange_token(http: requests.Session, settings: Settings) -> dict[str, Any]:
    """POST the client-credentials grant and return the auth service's JSON answer.

    Raises:
        AuthenticationError: the auth service refused (401/403/4xx) or kept failing (429/5xx).
        TransportError: it could not be reached or did not answer in time.
    """
    if settings.client_secret is None or not settings.client_id:
        raise AuthenticationError("no client credentials to exchange", error="invalid_request")
    payload = {
        "grant_type": "client_credentials",
        "audience": settings.audience,
        "client_id": settings.client_id,
        "client_secret": settings.client_secret.reveal(),
    }
    try:
        resp = http.post(settings.token_url, json=payload, timeout=settings.timeout, auth=NO_AUTH)
    except requests.RequestException as exc:
        raise _transport_error("POST", settings.token_url, exc, settings.timeout) from None
    if resp.ok:
        try:
            return resp.json()
        except ValueError:
            raise AuthenticationError(
                "the auth service answered with something that is not JSON",
                status=resp.status_code,
                error="invalid_response",
                hint="check METAFOLD_AUTH_DOMAIN",
            ) from None
    body = _json_or_none(resp)
    error = body.get("error") if isinstance(body, dict) else None
    description = body.get("error_description") if isinstance(body, dict) else None
    status = resp.status_code
    if status in (401, 403):
        hint = (
            "check METAFOLD_CLIENT_ID / METAFOLD_CLIENT_SECRET (or create a new client on the account page)"
            if status == 401
            else "check METAFOLD_AUDIENCE, or that this client may use the Metafold API"
        )
    elif status == 429:
        hint = "too many token requests; wait a minute (tokens are cached, so this should be rare)"
    elif status >= 500:
        hint = "the auth service is unavailable; try again in a moment"
    else:
        hint = "check METAFOLD_AUTH_DOMAIN and METAFOLD_AUDIENCE"
    raise AuthenticationError(
        f"token exchange at {settings.auth_origin} refused (HTTP {status}): "
        f"{description or error or _text_message(resp)}",
        status=status,
        error=error,
        error_description=description,
        hint=hint,
    )


class Transport:
    """Sends API requests with the bearer token, timeouts and the replay-once rule."""

    def __init__(self, settings: Settings, credentials: Credentials, http: requests.Session) -> None:
        self.settings = settings
        self.credentials = credentials
        self.http = http
        self.timeout = settings.timeout
        self.base_url = settings.base_url
        self.auth = BearerAuth(credentials, settings.api_origin)

    def url_for(self, path: str) -> str:
        """Resolve ``path`` against the base URL (absolute URLs are kept as they are)."""
        return urljoin(self.base_url, path)

    def request(
        self,
        method: str,
        path: str,
        *,
        data: Any = None,
        timeout: float | tuple[float, float] | None = None,
        authorize: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one request; on a 401, refresh the token and replay once.

        ``data`` may be a zero-argument callable returning a fresh body (a stream that
        can only be read once), so that the replay can send it again. With
        ``authorize=False`` no token is sent at all (signed download links).

        Raises:
            APIError: any non-2xx answer, with the API's own message.
            TransportError: no answer (refused, dropped, timed out).
            AuthenticationError: a token could not be obtained.
        """
        method = method.upper()
        url = self.url_for(path)
        timeout = timeout or self.timeout
        for attempt in (1, 2):
            body = data() if callable(data) else data
            try:
                auth = self.auth if authorize else NO_AUTH
                resp = self.http.request(method, url, data=body, timeout=timeout, auth=auth, **kwargs)
            except requests.RequestException as exc:
                raise _transport_error(method, url, exc, timeout) from None
            if resp.status_code != 401 or attempt == 2 or not authorize or not self.credentials.refreshable:
                break
            sent = resp.request.headers.get("Authorization", "")
            if not sent.startswith("Bearer ") or (body is not None and not callable(data) and _is_stream(body)):
                break
            _LOGGER.info("%s %s answered 401: refreshing the token and replaying once", method, resp.request.path_url)
            resp.close()
            self.credentials.invalidate(sent[len("Bearer ") :])
        if not resp.ok:
            raise error_from_response(resp)
        return resp

    def close(self) -> None:
        self.http.close()


def error_from_response(resp: requests.Response) -> APIError:
    """Map a non-2xx response to :class:`APIError` with the API's own message."""
    req = resp.request
    method = (req.method if req is not None else None) or "GET"
    url = (req.url if req is not None else None) or resp.url
    return APIError(resp.status_code, method, url, api_message(resp))


def api_message(resp: requests.Response) -> str:
    """The API's message from any of its three error shapes, or a non-JSON body."""
    body = _json_or_none(resp)
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            parts = []
            for item in errors:
                if isinstance(item, dict):
                    field, msg = item.get("field"), item.get("msg") or item.get("message")
                    parts.append(f"{field}: {msg}" if field else str(msg))
                else:
                    parts.append(str(item))
            return "; ".join(parts)
        for key in ("msg", "description", "error_description", "message", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
    return _text_message(resp)


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")


def _text_message(resp: requests.Response) -> str:
    try:
        text = resp.text or ""
    except (requests.RequestException, ValueError):
        text = ""
    if "<" in text and ">" in text:  # an HTML page from a proxy: its title says it best
        title = _TITLE.search(text)
        text = title.group(1) if title else _TAGS.sub(" ", text)
        text = html.unescape(text)
    text = " ".join(text.split())
    if len(text) > 200:
        text = text[:197] + "..."
    return text or resp.reason or f"HTTP {resp.status_code}"


def _json_or_none(resp: requests.Response) -> Any:
    if "json" not in resp.headers.get("Content-Type", ""):
        return None
    try:
        return resp.json()
    except ValueError:
        return None


def _is_stream(body: Any) -> bool:
    return hasattr(body, "read") or (hasattr(body, "__iter__") and not isinstance(body, (bytes, str, dict, list)))


def _transport_error(method: str, url: str, exc: BaseException, timeout: Any) -> TransportError:
    connect_t, read_t = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    text = repr(exc)
    if isinstance(exc, requests.ConnectTimeout) or "ConnectTimeoutError" in text:
        message = f"could not connect within {connect_t:g} s"
    elif isinstance(exc, requests.ReadTimeout) or "ReadTimeoutError" in text:
        # after the read retry, requests reports a read timeout as a ConnectionError
        message = f"no answer within {read_t:g} s (read timeout)"
    elif isinstance(exc, requests.ConnectionError):
        if "Connection refused" in text or "NewConnectionError" in text:
            message = "connection refused (is the server running?)"
        elif "NameResolution" in text or "Name or service not known" in text:
            message = "host not found"
        elif "RemoteDisconnected" in text or "ProtocolError" in text or "Connection aborted" in text:
            message = "the server closed the connection without answering"
        elif "SSLError" in text or "CERTIFICATE" in text:
            message = "TLS/certificate error"
        else:
            message = "connection failed"
    else:
        message = f"request failed ({type(exc).__name__})"
    _LOGGER.debug("%s %s: %s (%s)", method, url.split("?")[0], message, type(exc).__name__)
    return TransportError(method, url, message)

