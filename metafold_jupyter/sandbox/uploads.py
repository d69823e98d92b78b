"""Receiving an upload: one multipart part streamed into one file, hashed on the way, size-limited.

werkzeug's form parser would first spool the part to a temporary file of its own,
and the handler would then copy it into the store: twice the disk for every
upload. Here werkzeug's multipart decoder feeds the part straight into the one
file the store later renames into place, hashing it as it goes.

A refused upload (a bad filename, a taken name, no quota) is still read to its
end before the answer, so the client, which sends its whole body before reading,
gets the answer rather than a reset connection. Only a body larger than the
limit is cut short: it is answered 413 at once, and the server closes the
connection after a 413.
"""

from __future__ import annotations

import hashlib
import posixpath
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from werkzeug.sansio.multipart import NEED_DATA, Data, Epilogue, Field, File, MultipartDecoder
from werkzeug.wrappers import Request

from .replies import ApiError, FieldError, StatusError

__all__ = ["Upload", "receive_upload", "clean_filename"]

_BLOCK = 1 << 20
# Room for the multipart framing around the file (boundaries, part headers, other fields).
_FRAMING = 64 * 1024
_MAX_NAME_BYTES = 255  # longest file name common file systems store


@dataclass(frozen=True)
class Upload:
    """A received file: its cleaned name, where it is, its size and ``sha256:<hex>`` checksum."""

    filename: str
    path: Path
    size: int
    checksum: str


def too_large(limit: int) -> StatusError:
    """The 413 answer for an upload over ``limit`` bytes."""
    mib = limit / (1 << 20)
    shown = f"{mib:.0f}" if mib >= 10 or mib.is_integer() else f"{mib:.2g}"
    return StatusError(413, f"The upload is larger than this sandbox's limit of {shown} MiB")


def clean_filename(field: str, raw: str | None) -> str:
    """The name an uploaded file is stored under: the last path component of what the client sent.

    Raises:
        FieldError: (400) for an empty name, ``.``, ``..``, control characters
            (NUL, line breaks, ...) or a name over 255 bytes, which no client could
            save under that name again.
    """
    name = posixpath.basename((raw or "").replace("\\", "/")).strip()
    if not name:
        raise FieldError(field, "The file part has no filename")
    if name in (".", ".."):
        raise FieldError(field, f"Invalid filename '{name}': give the file a name")
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise FieldError(field, "Invalid filename: it contains control characters (such as NUL or a line break)")
    if len(name.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES:
        raise FieldError(field, f"Invalid filename: longer than {_MAX_NAME_BYTES} bytes")
    return name


def receive_upload(request: Request, field: str, target: Callable[[str], Path], limit: int) -> Upload:
    """Stream the multipart part ``field`` of ``request`` into the file ``target(filename)`` names.

    Args:
        request: a ``multipart/form-data`` request.
        field: the part that carries the file (the first part of that name counts).
        target: called with the cleaned filename before any byte is written;
            returns the path to write (and raises an ``ApiError`` to refuse).
        limit: the largest file accepted, in bytes.

    Returns:
        The received file. The caller owns ``path`` from here on.

    Raises:
        ApiError: 400 (no such part, bad filename, malformed body, or whatever
            ``target`` raised), 413 (over ``limit``). No file is left behind.
    """
    boundary = request.mimetype_params.get("boundary") if request.mimetype == "multipart/form-data" else None
    if not boundary:
        _drain(request, limit)
        raise FieldError(field, "Field is required")
    declared = request.content_length
    if declared is not None and declared > limit + _FRAMING:
        raise too_large(limit)  # answered before reading: the server closes the connection after a 413

    decoder = MultipartDecoder(boundary.encode("latin-1"), max_form_memory_size=4 * _BLOCK, max_parts=64)
    refusal: ApiError | None = None
    found = False
    writing = False
    path: Path | None = None
    out: IO[bytes] | None = None
    digest = hashlib.sha256()
    size = 0
    received = 0
    try:
        while True:
            chunk = request.stream.read(_BLOCK)
            received += len(chunk)
            if received > limit + _FRAMING:
                raise too_large(limit)
            decoder.receive_data(chunk or None)
            event = decoder.next_event()
            while event is not NEED_DATA and not isinstance(event, Epilogue):
                if isinstance(event, File) and event.name == field and not found:
                    found = writing = True
                    try:
                        filename = clean_filename(field, event.filename)
                        path = target(filename)
                    except ApiError as exc:
                        refusal, writing = exc, False  # read on, answer at the end
                    else:
                        out = open(path, "wb")  # noqa: SIM115 - closed below on every path
                elif isinstance(event, (Field, File)):
                    writing = False
                elif isinstance(event, Data) and writing and out is not None:
                    size += len(event.data)
                    if size > limit:
                        raise too_large(limit)
                    digest.update(event.data)
                    out.write(event.data)
                event = decoder.next_event()
            if not chunk or isinstance(event, Epilogue):
                break
        if refusal is not None:
            raise refusal
        if not found or out is None or path is None:
            raise FieldError(field, "Field is required")
        out.close()
        return Upload(filename, path, size, "sha256:" + digest.hexdigest())
    except ValueError as exc:  # malformed multipart body
        raise FieldError(field, f"Malformed multipart body: {exc}") from exc
    finally:
        if out is not None and not out.closed:
            out.close()
            if path is not None:
                path.unlink(missing_ok=True)


def _drain(request: Request, limit: int) -> None:
    """Read (and drop) what is left of a body up to a bound, so the answer reaches the client."""
    remaining = limit + _FRAMING
    while remaining > 0:
        chunk = request.stream.read(min(_BLOCK, remaining))
        if not chunk:
            return
        remaining -= len(chunk)
