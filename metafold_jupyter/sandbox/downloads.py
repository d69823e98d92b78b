"""Signed download links and the download origin that serves them.

A link is ``<download origin>/blobs/<asset id>/<filename>?expires=<unix>&sig=<hex>``
where ``sig`` is an HMAC-SHA256 (per-sandbox random key) over the asset ID,
the filename and the expiry. The download origin ignores any Authorization
header, like a storage bucket behind pre-signed URLs, and answers errors as
S3-style XML. Files are streamed from disk in 1 MiB blocks.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import os
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response
from werkzeug.wsgi import wrap_file

from .faults import s3_error
from .resources import Asset
from .store import Store

__all__ = ["LinkSigner", "DownloadApp"]

_LOGGER = logging.getLogger(__name__)
_BLOCK = 1 << 20


class LinkSigner:
    """Makes and checks signed links.

    Args:
        origin: returns the download origin (``http://127.0.0.1:PORT``).
        lifetime: seconds a link stays valid.
        clock: returns the current POSIX time.
    """

    def __init__(self, origin: Callable[[], str], lifetime: float, clock: Callable[[], float] = time.time) -> None:
        self._origin = origin
        self.lifetime = lifetime
        self._clock = clock
        self._key = secrets.token_bytes(32)

    def _sign(self, asset_id: int, filename: str, expires: int) -> str:
        message = f"{asset_id}\n{filename}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def link(self, asset: Asset) -> str:
        """Return a signed link to ``asset`` valid for ``lifetime`` seconds (rounded up)."""
        expires = math.ceil(self._clock() + self.lifetime)
        sig = self._sign(asset.id, asset.filename, expires)
        return f"{self._origin()}/blobs/{asset.id}/{quote(asset.filename, safe='')}?expires={expires}&sig={sig}"

    def check(self, asset_id: int, filename: str, expires: str | None, sig: str | None) -> Response | None:
        """Return an XML error response for a bad or expired link, or None if it is good."""
        if not expires or not sig:
            return s3_error(403, "AccessDenied", "Query-string authentication requires the expires and sig parameters")
        try:
            expires_at = int(expires)
        except ValueError:
            return s3_error(403, "AccessDenied", "Invalid expires parameter")
        if not hmac.compare_digest(self._sign(asset_id, filename, expires_at), sig):
            return s3_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        if self._clock() > expires_at:
            return s3_error(403, "AccessDenied", "Request has expired")
        return None


class DownloadApp:
    """The WSGI app of the download origin (no token needed).

    Args:
        store: the sandbox store (assets are looked up by ID).
        signer: the link signer shared with the API app.
    """

    def __init__(self, store: Store, signer: LinkSigner, rate_mib_s: float = 0.0) -> None:
        self.store = store
        self.signer = signer
        self.rate_mib_s = rate_mib_s  # 0: as fast as loopback goes; else a link speed to emulate
        self.url_map = Map([Rule("/blobs/<int:asset_id>/<path:filename>", endpoint="blob", methods=["GET"])])

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        return self.wsgi_app(environ, start_response)

    def wsgi_app(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        request = Request(environ)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            endpoint, values = adapter.match()
            response = getattr(self, f"on_{endpoint}")(request, **values)
        except HTTPException as exc:
            code = exc.code or 500
            if code == 404:
                response = s3_error(404, "NoSuchKey", "The specified key does not exist.")
            elif code == 405:
                response = s3_error(
                    405, "MethodNotAllowed", "The specified method is not allowed against this resource."
                )
            else:
                response = s3_error(code, "Error", exc.description or "Error")
        return response(environ, start_response)

    def on_blob(self, request: Request, asset_id: int, filename: str) -> Response:
        """Stream an asset's bytes for a valid signed link."""
        error = self.signer.check(asset_id, filename, request.args.get("expires"), request.args.get("sig"))
        if error is not None:
            return error
        asset = self.store.asset_by_id(asset_id)
        if asset is None or asset.filename != filename:
            return s3_error(404, "NoSuchKey", "The specified key does not exist.")
        try:
            fh = open(asset.path, "rb")
        except FileNotFoundError:
            return s3_error(404, "NoSuchKey", "The specified key does not exist.")
        size = os.fstat(fh.fileno()).st_size
        body = _paced(fh, self.rate_mib_s) if self.rate_mib_s > 0 else wrap_file(request.environ, fh, buffer_size=_BLOCK)
        response = Response(
            body,
            mimetype="application/octet-stream",
            direct_passthrough=True,
        )
        response.headers["Content-Length"] = str(size)
        response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(filename, safe='')}"
        response.headers["ETag"] = f'"{asset.checksum.split(":", 1)[-1][:32]}"'
        return response


def _paced(fh: Any, rate_mib_s: float) -> Iterable[bytes]:
    """Yield the file in blocks no faster than ``rate_mib_s`` (a network link's speed)."""
    started = time.monotonic()
    sent = 0
    with fh:
        while block := fh.read(_BLOCK):
            ahead = sent / (rate_mib_s * _BLOCK) - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
            yield block
            sent += len(block)
