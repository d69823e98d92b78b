"""Transport layer: one keep-alive requests.Session per login, retry policy as data,
timeouts on every call, one refresh-and-replay on a 401, errors mapped to APIError.

Retries come only from urllib3 ``Retry`` mounted through ``HTTPAdapter``: reads on
408/429/5xx and dropped connections. Writes (POST, PATCH, DELETE, PUT) are sent once:
retried only when the connection could not be opened, and PATCH/DELETE also on a 429
refusal (see :class:`WriteOnceRetry`). The token exchange has its own adapter,
mounted on the token URL, that may retry its POST on connect errors, 429 and 5xx —
never on 401/403.

The bearer token is attached by :class:`BearerAuth` only to requests for the
configured API origin, and dropped on a redirect to any other origin. The session
does not trust the environment for credentials (``trust_env=False``: ``~/.netrc``
is never read, so no ``Authorization: Basic`` can follow a redirect to another
host), but keeps what users need from it: proxies (``HTTPS_PROXY``, ``NO_PROXY``...,
never for loopback hosts) and the CA bundle (``REQUESTS_CA_BUNDLE`` /
``CURL_CA_BUNDLE``). Every redirect hop must pass the URL policy (https, or http
on loopback). The token request never follows a redirect at all.

Every attempt has an overall deadline (connect + 2 x read timeout, see
:mod:`metafold_jupyter.deadlines`), and server-supplied text is scrubbed of the
session's secret and tokens before it becomes part of an error.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.utils import get_environ_proxies
from urllib3.util.retry import Retry

from . import __version__
from .auth import Credentials
from .config import Secret, Settings, check_secure_url, is_loopback, origin_of
from .deadlines import DeadlineAdapter, DeadlineExceeded, deadline
from .errors import APIError, AuthenticationError, ConfigError, TransportError
from .pacing import paced, parse_retry_after
from .redaction import Scrubber, redact_query_values, redact_url, scrub

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
MAX_REDIRECTS = 5


def attempt_budget(timeout: float | tuple[float, float] | None) -> float:
    """Seconds one attempt (request and whole answer) may take: connect + 2 x read timeout."""
    connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    return (connect or 0.0) + 2 * (read or 0.0) or 60.0


class _Http(requests.Session):
    """requests.Session that trusts the environment for proxies and CA bundles only.

    ``trust_env=False`` turns off ``~/.netrc`` (and everything else requests reads from
    the environment); proxies and the CA bundle are put back by hand, per request and
    per redirect hop. A redirect hop must pass the URL policy, and keeps the
    Authorization header only on the API origin.
    """

    def __init__(self, api_origin: str) -> None:
        super().__init__()
        self.trust_env = False
        self.max_redirects = MAX_REDIRECTS
        self.api_origin = api_origin

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        proxies = dict(proxies or {})
        for key, value in environment_proxies(url).items():
            proxies.setdefault(key, value)
        if verify is True or verify is None:
            verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or verify
        return super().merge_environment_settings(url, proxies, stream, verify, cert)

    def rebuild_proxies(self, prepared_request: Any, proxies: Any) -> Any:
        return super().rebuild_proxies(prepared_request, environment_proxies(prepared_request.url))

    def resolve_redirects(self, resp: Any, req: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("yield_requests"):
            resp._metafold_peek = True  # allow_redirects=False: requests only peeks at the next hop
        return super().resolve_redirects(resp, req, *args, **kwargs)

    def rebuild_auth(self, prepared_request: Any, response: Any) -> None:
        url = prepared_request.url or ""
        if origin_of(url) != self.api_origin:
            prepared_request.headers.pop("Authorization", None)
        if getattr(response, "_metafold_peek", False):
            return
        try:
            check_secure_url(url, "redirect target")
        except ConfigError:
            req = response.request
            raise APIError(
                response.status_code,
                (req.method if req is not None else None) or "GET",
                response.url,
                f"redirected to {origin_of(url) if '://' in url else url!r}, which is not https (nor http on "
                "loopback): not followed",
                hint="the server sent an insecure redirect; report it to whoever runs it",
            ) from None


def environment_proxies(url: str) -> dict[str, str]:
    """Proxies from the environment for ``url`` (``NO_PROXY`` honoured); none for loopback hosts,
    so that plain-http loopback traffic never leaves the machine through a proxy."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return {}
    if is_loopback(host):
        return {}
    return get_environ_proxies(url, no_proxy=None)


class _RedactingFilter(logging.Filter):
    """Removes signed-link query values and credential-shaped text from urllib3's log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        cleaned = scrub(redact_query_values(message))
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


_LOG_FILTER = _RedactingFilter()


def install_log_filter() -> None:
    """Redact URLs in the log lines of urllib3's modules that print them (idempotent)."""
    for name in ("urllib3.connectionpool", "urllib3.connection", "urllib3.poolmanager", "urllib3.util.retry"):
        logger = logging.getLogger(name)
        if _LOG_FILTER not in logger.filters:
            logger.addFilter(_LOG_FILTER)


class BearerAuth(requests.auth.AuthBase):
    """Attach ``Authorization: Bearer`` only to requests for the API origin."""

    def __init__(self, credentials: Credentials, api_origin: str) -> None:
        self._credentials = credentials
        self._origin = api_origin

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if origin_of(request.url or "") == self._origin:
            request.headers["Authorization"] = "Bearer " + self._credentials.token()
        else:
            request.headers.pop("Authorization", None)
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
    install_log_filter()
    http = _Http(settings.api_origin)
    http.headers.update({"Accept": "application/json", "User-Agent": _USER_AGENT})
    # paced: inside a fan-out, a 429 slows every worker down, not only the one that got it
    api_adapter = DeadlineAdapter(max_retries=paced(API_RETRY), pool_maxsize=32)
    http.mount("https://", api_adapter)
    http.mount("http://", api_adapter)
    http.mount(settings.token_url, DeadlineAdapter(max_retries=AUTH_RETRY))
    return http


def exchange_token(http: requests.Session, settings: Settings, scrubber: Scrubber | None = None) -> dict[str, Any]:
    """POST the client-credentials grant and return the auth service's JSON answer.

    The secret stays wrapped until the request body is built inside the send call,
    so no frame of this package holds it (tracebacks may show local variables), and
    the answer's ``access_token`` is wrapped while the JSON is parsed. The request
    never follows a redirect: the secret goes to the token URL and nowhere else.

    Raises:
        AuthenticationError: the auth service refused (401/403/4xx), kept failing
            (429/5xx), redirected, or answered something that is not a token.
        TransportError: it could not be reached or did not answer in time.
    """
    if settings.client_secret is None or not settings.client_id:
        raise AuthenticationError("no client credentials to exchange", error="invalid_request")
    scrubber = scrubber if scrubber is not None else Scrubber(settings.client_secret)
    resp, failure = _post_grant(http, settings)
    if failure is not None:
        raise failure  # raised outside the except block: no context chain into requests' frames
    with resp:
        status = resp.status_code
        if 300 <= status < 400:
            location = resp.headers.get("Location")
            target = origin_of(urljoin(settings.token_url, location)) if location else "no Location"
            raise AuthenticationError(
                f"token exchange at {settings.auth_origin} answered HTTP {status} (a redirect to "
                f"{scrubber.scrub(target)}): not followed, the client secret is sent to the token URL only",
                status=status,
                error="redirect",
                hint="set METAFOLD_AUTH_DOMAIN to the auth service's own address",
            )
        if resp.ok:
            return _token_answer(resp)
        # scrubbed in a helper: the raw body (which may echo the secret) never sits in this frame
        error, description, text = _auth_error_fields(resp, scrubber)
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
        f"token exchange at {settings.auth_origin} refused (HTTP {status}): {description or error or text}",
        status=status,
        error=error,
        error_description=description,
        hint=hint,
    )


def _post_grant(http: requests.Session, settings: Settings) -> tuple[Any, TransportError | None]:
    try:
        with deadline(attempt_budget(settings.timeout)) as call:
            resp = http.post(
                settings.token_url,
                data=_grant_body(settings),
                headers={"Content-Type": "application/json"},
                timeout=settings.timeout,
                auth=NO_AUTH,
                allow_redirects=False,
            )
    except (requests.RequestException, DeadlineExceeded) as exc:
        return None, _transport_error("POST", settings.token_url, exc, settings.timeout, call.expired)
    resp.request.body = None  # the response must not carry the secret around
    resp._next = None  # type: ignore[attr-defined]  # nor requests' prepared next hop of a redirect
    return resp, None


def _grant_body(settings: Settings) -> bytes:
    """The client-credentials grant, built at the last moment (it never raises)."""
    return json.dumps(
        {
            "grant_type": "client_credentials",
            "audience": settings.audience,
            "client_id": settings.client_id,
            "client_secret": settings.client_secret.reveal() if settings.client_secret is not None else "",
        }
    ).encode()


def _token_answer(resp: requests.Response) -> dict[str, Any]:
    try:
        answer = resp.json(object_hook=_wrap_access_token)
    except ValueError:
        raise AuthenticationError(
            "the auth service answered with something that is not JSON",
            status=resp.status_code,
            error="invalid_response",
            hint="check METAFOLD_AUTH_DOMAIN",
        ) from None
    if not isinstance(answer, dict):
        raise AuthenticationError(
            f"the auth service answered with a JSON {type(answer).__name__}, not an object",
            status=resp.status_code,
            error="invalid_response",
            hint="check METAFOLD_AUTH_DOMAIN",
        )
    return answer


def _wrap_access_token(obj: dict[str, Any]) -> dict[str, Any]:
    """json object_hook: tokens are wrapped while parsing, so no dict in any frame holds one raw."""
    for key in ("access_token", "refresh_token", "id_token"):
        if isinstance(obj.get(key), str):
            obj[key] = Secret(obj[key])
    return obj


def _auth_error_fields(resp: requests.Response, scrubber: Scrubber) -> tuple[str | None, str | None, str]:
    """The auth service's ``error`` and ``error_description`` (or its text), scrubbed."""
    body = _json_or_none(resp)
    error = _field(body, "error", scrubber)
    description = _field(body, "error_description", scrubber)
    return error, description, (scrubber.scrub(_text_message(resp)) if not (description or error) else "")


def _field(body: Any, name: str, scrubber: Scrubber) -> str | None:
    value = body.get(name) if isinstance(body, dict) else None
    if value is None:
        return None
    text = " ".join(str(value).split())
    return scrubber.scrub(text if len(text) <= 300 else text[:297] + "...")


class Transport:
    """Sends API requests with the bearer token, timeouts and the replay-once rule."""

    def __init__(
        self, settings: Settings, credentials: Credentials, http: requests.Session, scrubber: Scrubber | None = None
    ) -> None:
        self.settings = settings
        self.credentials = credentials
        self.http = http
        self.timeout = settings.timeout
        self.base_url = settings.base_url
        self.auth = BearerAuth(credentials, settings.api_origin)
        self.scrubber = scrubber if scrubber is not None else Scrubber(settings.client_secret, settings.access_token)

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
            resp, failure = self._send(method, url, body, timeout, authorize, kwargs)
            if failure is not None:
                raise failure  # outside any except block: no context chain into requests' frames
            if resp.status_code != 401 or attempt == 2 or not authorize or not self.credentials.refreshable:
                break
            sent = _bearer_of(resp.request)  # wrapped: a traceback shows this frame's locals
            if sent is None or (body is not None and not callable(data) and _is_stream(body)):
                break
            _LOGGER.info("%s %s answered 401: refreshing the token and replaying once", method,
                         redact_url(resp.request.path_url))
            resp.close()
            self.credentials.invalidate(sent)
        if not resp.ok:
            error = error_from_response(resp, self.scrubber)
            resp.close()
            raise error
        return resp

    def _send(
        self, method: str, url: str, body: Any, timeout: Any, authorize: bool, kwargs: dict[str, Any]
    ) -> tuple[Any, TransportError | None]:
        """One request (urllib3's retries included), each attempt under the overall deadline."""
        try:
            with deadline(attempt_budget(timeout)) as call:
                auth = self.auth if authorize else NO_AUTH
                return self.http.request(method, url, data=body, timeout=timeout, auth=auth, **kwargs), None
        except (requests.RequestException, DeadlineExceeded) as exc:
            return None, _transport_error(method, url, exc, timeout, call.expired)

    def scrub(self, text: Any) -> str:
        """``text`` without this session's secret and tokens, nor anything shaped like a credential."""
        return self.scrubber.scrub(text)

    def close(self) -> None:
        self.http.close()


def error_from_response(resp: requests.Response, scrubber: Scrubber | None = None) -> APIError:
    """Map a non-2xx response to :class:`APIError` with the API's own message (scrubbed)."""
    req = resp.request
    method = (req.method if req is not None else None) or "GET"
    url = (req.url if req is not None else None) or resp.url
    message = api_message(resp)
    if scrubber is not None:
        message, url = scrubber.scrub(message), scrubber.scrub(url)
    error = APIError(resp.status_code, method, url, message)
    error.retry_after = parse_retry_after(resp.headers.get("Retry-After"))
    return error


def _bearer_of(request: Any) -> Secret | None:
    header = request.headers.get("Authorization", "") if request is not None else ""
    return Secret(header[len("Bearer "):]) if header.startswith("Bearer ") else None


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


def _transport_error(method: str, url: str, exc: BaseException, timeout: Any, expired: bool = False) -> TransportError:
    connect_t, read_t = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    text = repr(exc)
    if expired or isinstance(exc, DeadlineExceeded):
        message = (
            f"no complete answer within {attempt_budget(timeout):g} s (connect + 2 x read timeout): "
            "the server answers too slowly"
        )
    elif isinstance(exc, requests.TooManyRedirects):
        message = f"more than {MAX_REDIRECTS} redirects"
    elif isinstance(exc, requests.ConnectTimeout) or "ConnectTimeoutError" in text:
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

