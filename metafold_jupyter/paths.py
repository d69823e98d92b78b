"""API paths built from IDs: every ID becomes exactly one quoted path segment.

IDs come from users (``use_project("3#")``, a magic line) and from servers (an
asset's ``project_id``). Interpolated raw into a path, ``"1/../../user/license"``
or ``"3#"`` would address another resource; so an ID with a path separator, a
query or fragment mark, a dot segment or a control character is refused before
anything is sent, and everything else is percent-quoted.
"""

from __future__ import annotations

from urllib.parse import quote

from .errors import InvalidIdError

__all__ = ["segment", "api_path"]

_FORBIDDEN = frozenset("/\\#?%")
_MAX_ID = 128


def segment(value: object, what: str = "ID") -> str:
    """``value`` as one percent-quoted path segment.

    Args:
        value: the ID (a string or an int).
        what: what the ID names, for the error message (``"project ID"``).

    Raises:
        InvalidIdError: empty, too long, ``.``/``..``, or holding ``/ \\ # ? %`` or a
            control character.
    """
    text = str(value).strip() if value is not None else ""
    bad = (
        not text
        or len(text) > _MAX_ID
        or text in (".", "..")
        or any(c in _FORBIDDEN or ord(c) < 32 or ord(c) == 127 for c in text)
    )
    if bad:
        shown = repr(text[:40] + ("…" if len(text) > 40 else ""))
        raise InvalidIdError(f"{what} {shown} is not a valid Metafold ID")
    return quote(text, safe="")


def api_path(template: str, **ids: object) -> str:
    """Fill ``template`` (``"/projects/{pid}/assets/{aid}"``) with quoted ID segments.

    Keyword names are used in error messages: ``pid`` reads as "project ID",
    ``aid`` as "asset ID", and so on.
    """
    return template.format(**{key: segment(value, _LABELS.get(key, key)) for key, value in ids.items()})


_LABELS = {
    "pid": "project ID",
    "aid": "asset ID",
    "jid": "job ID",
    "wid": "workflow ID",
}
