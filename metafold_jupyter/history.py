"""Keep secrets out of IPython's history.

IPython stores a cell's text (``In``/``_ih``, ``_i``/``_iN``, the SQLite history
database) *before* a magic runs, so a secret typed on a magic line is already
recorded when the magic sees it. :func:`looks_secret` recognises such lines and
:func:`scrub_current_cell` rewrites every stored copy of the current cell.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from typing import Any

_LOGGER = logging.getLogger(__name__)

REPLACEMENT = "<removed: held a secret>"

_KEYWORD = re.compile(r"secret|passw(or)?d|token|bearer|api[_-]?key|credential", re.IGNORECASE)
_JWT = re.compile(r"eyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]*")
# a long random-looking word: Auth0 client secrets are 64 base64url characters
_RANDOM = re.compile(r"^(?=.*[A-Za-z])(?=.*\d)[A-Za-z0-9_\-+=~]{24,}$")
# options whose values are paths, URLs or IDs, and may contain anything
_VALUE_OPTIONS = {"--env", "--base-url", "--auth-domain", "--audience", "--project", "-o", "--out", "--q", "--sort"}


def looks_secret(line: str, *, random_words: bool = True) -> bool:
    """True if a magic line seems to carry a secret, a token or a password.

    Looks for a JWT anywhere; an option or ``key=value`` whose name says secret,
    password, token...; and (with ``random_words``) a long random-looking word that
    is not the value of a known option.
    """
    if _JWT.search(line):
        return True
    words = line.split()
    for index, word in enumerate(words):
        if index and words[index - 1] in _VALUE_OPTIONS:
            continue  # e.g. --env ~/secrets/metafold.env is a path, not a secret
        name, sep, value = word.partition("=")
        if (word.startswith("-") or sep) and _KEYWORD.search(name):
            return True
        if random_words and any(_RANDOM.match(part) for part in (word, value) if part):
            return True
    return False


def scrub_current_cell(shell: Any, line: str) -> int:
    """Replace ``line`` (and each of its words) in every stored copy of the current cell.

    Returns:
        How many stored copies were changed (memory and database).
    """
    words = sorted({w for w in re.split(r"[\s=,'\"]+", line) if len(w) >= 4 and not w.startswith("-")}, key=len,
                   reverse=True)

    def clean(text: Any) -> Any:
        if not isinstance(text, str):
            return text
        text = text.replace(line, REPLACEMENT) if line else text
        for word in words:
            text = text.replace(word, REPLACEMENT)
        return text

    hm = getattr(shell, "history_manager", None)
    if hm is None:
        return 0
    # In[n] is cell n, and the running cell was stored last (IPython 8 and 9 differ on
    # when execution_count moves on, so it is not used here)
    number = len(hm.input_hist_parsed) - 1
    changed = 0
    for entries in (hm.input_hist_parsed, hm.input_hist_raw):
        if entries:
            new = clean(entries[-1])
            if new != entries[-1]:
                entries[-1] = new
                changed += 1
    for attr in ("_i00", "_i", "_ii", "_iii"):
        if hasattr(hm, attr):
            setattr(hm, attr, clean(getattr(hm, attr)))
    for key in ("_i", "_ii", "_iii", f"_i{number}"):
        if isinstance(shell.user_ns.get(key), str):
            shell.user_ns[key] = clean(shell.user_ns[key])
    with hm.db_input_cache_lock:  # the saving thread takes the same lock to write
        cache = []
        for num, source, raw in hm.db_input_cache:
            if num == number:
                source, raw = clean(source), clean(raw)
                changed += 1
            cache.append((num, source, raw))
        hm.db_input_cache[:] = cache
        changed += _scrub_database(hm, number, clean)
    _scrub_prompt_toolkit(shell, clean)
    return changed


def _scrub_database(hm: Any, number: int, clean: Any) -> int:
    if not getattr(hm, "enabled", False):
        return 0
    try:
        db = hm.db
        rows = db.execute(
            "SELECT source, source_raw FROM history WHERE session = ? AND line = ?", (hm.session_number, number)
        ).fetchall()
        for source, raw in rows:
            with db:
                db.execute(
                    "UPDATE history SET source = ?, source_raw = ? WHERE session = ? AND line = ?",
                    (clean(source), clean(raw), hm.session_number, number),
                )
        return len(rows)
    except (sqlite3.Error, AttributeError) as exc:  # AttributeError: a DummyDB without execute
        _LOGGER.warning("could not scrub the history database: %s", type(exc).__name__)
        return 0


def _scrub_prompt_toolkit(shell: Any, clean: Any) -> None:
    """The terminal's up-arrow history keeps its own copy of typed lines."""
    history = getattr(getattr(shell, "pt_app", None), "history", None)
    strings = getattr(history, "_loaded_strings", None)
    if isinstance(strings, list):
        strings[:] = [clean(s) for s in strings]
