"""Tab completion for ``%metafold``: subcommands, options, sort fields, access values, and
project, asset, job and workflow IDs.

IDs are fetched lazily in a background thread and reused for a short time; the
completer waits for them at most a fraction of a second, so a slow network never
freezes the prompt (the next Tab has them).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from IPython.core.completer import CompletionContext, SimpleCompletion, context_matcher

from . import kernel_session
from .errors import MetafoldError
from .lifecycle import ACCESS_VALUES
from .paths import api_path

WAIT_FOR_IDS = 0.3  # seconds the completer may block on a first fetch
FETCH_TIMEOUT = (1.0, 2.0)  # connect/read seconds of a completion fetch

_OPTIONS = {
    "_all": ["-o", "--out", "--project", "--sort", "--q"],
    "run": ["--param", "--asset", "--timeout", "-o", "--out", "--project"],
    "sweep": ["--param", "--asset", "--concurrency", "--timeout", "-o", "--out", "--project"],
    "create": ["--access", "-o", "--out"],
    "duplicate": ["--access", "-o", "--out"],
    "rename": ["--access", "-o", "--out"],
    "cancel": ["--project", "-o", "--out"],
    "delete": ["--yes", "--project", "-o", "--out"],
    **{sub: ["-o", "--out", "--project", "--all-projects", "--sort", "--q"]
       for sub in ("assets", "jobs", "workflows")},
    "show": ["--max-faces", "-o", "--out", "--project"],
    "metrics": ["-o", "--out", "--project"],
}
#: options followed by a value (the value is not a positional word)
_TAKES_VALUE = ("-o", "--out", "--project", "--sort", "--q", "--param", "--asset", "--timeout", "--access",
                "--concurrency", "--max-faces")
#: delete KIND ID: what the ID names, and the field shown next to it
_DELETE_KINDS = {"project": "name", "asset": "filename", "job": "name", "workflow": "state"}
_MESH_SUFFIXES = (".stl", ".obj", ".ply", ".glb")


class IdCache:
    """Values fetched in the background, keyed by what they are, reused for ``ttl`` seconds."""

    def __init__(self, ttl: Callable[[], float]) -> None:
        self._ttl = ttl
        self._lock = threading.Lock()
        self._values: dict[str, tuple[float, list[tuple[str, str]]]] = {}
        self._pending: dict[str, threading.Thread] = {}

    def get(self, key: str, fetch: Callable[[], list[tuple[str, str]]]) -> list[tuple[str, str]]:
        with self._lock:
            hit = self._values.get(key)
            if hit is not None and time.monotonic() - hit[0] < self._ttl():
                return hit[1]
            thread = self._pending.get(key)
            if thread is None:
                thread = threading.Thread(target=self._fill, args=(key, fetch), daemon=True,
                                          name=f"metafold-complete-{key}")
                self._pending[key] = thread
                thread.start()
        thread.join(WAIT_FOR_IDS)
        with self._lock:
            hit = self._values.get(key)
        return hit[1] if hit is not None else []

    def _fill(self, key: str, fetch: Callable[[], list[tuple[str, str]]]) -> None:
        try:
            values = fetch()
        except (MetafoldError, ValueError, KeyError, TypeError):  # no IDs is better than a broken prompt
            values = []
        with self._lock:
            self._values[key] = (time.monotonic(), values)
            self._pending.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


def _records(path: str, label: str) -> list[tuple[str, str]]:
    s = kernel_session.current_session()
    if s is None:
        return []
    records = s.request("GET", path, timeout=FETCH_TIMEOUT).json()
    if not isinstance(records, list):  # null, an object...: nothing to complete
        return []
    return [(str(r["id"]), str(r.get(label, ""))) for r in records if isinstance(r, dict) and r.get("id") is not None]


class MetafoldCompleter:
    """Completes the words of a ``%metafold`` line."""

    def __init__(self, magics: Any) -> None:
        from .magics import SORT_FIELDS, SUBCOMMANDS

        self._subcommands = list(SUBCOMMANDS)
        self._sort_fields = SORT_FIELDS
        self.cache = IdCache(lambda: magics.completion_ttl)

        @context_matcher(identifier="metafold_jupyter.completion")
        def matcher(context: CompletionContext) -> dict[str, Any]:
            return self.complete(context)

        self.matcher = matcher

    def complete(self, context: CompletionContext) -> dict[str, Any]:
        line = context.text_until_cursor.lstrip()
        if not line.startswith(("%metafold ", "%%metafold ", "metafold ")) or line.startswith("%metafold_login"):
            return {"completions": [], "suppress": False}
        words = line.split()
        current = "" if line.endswith((" ", "\t")) else words[-1]
        before = words[1:-1] if current else words[1:]
        candidates = self.candidates(before, current)
        token = context.token
        # completions replace IPython's token, which may be a suffix of our word ("name:" + "1")
        prefix = current[: len(current) - len(token)] if current.endswith(token) else ""
        items = [SimpleCompletion(c[len(prefix):], type=kind) for c, kind in candidates
                 if c.startswith(current) and c.startswith(prefix)]
        return {"completions": items, "suppress": bool(items)}

    def candidates(self, before: list[str], current: str) -> list[tuple[str, str]]:
        positionals = [w for i, w in enumerate(before) if not w.startswith("-")
                       and not (i and before[i - 1] in _TAKES_VALUE)]
        sub = positionals[0] if positionals else None
        previous = before[-1] if before else ""
        if previous == "--project":
            return [(pid, "project") for pid, _ in self.projects()]
        if previous == "--sort":
            fields = self._sort_fields.get(sub or "", ("id", "created"))
            return [(f"{f}:{d}", "sort") for f in fields for d in ("1", "-1")]
        if previous == "--access":
            return [(a, "access") for a in ACCESS_VALUES]
        if previous in _TAKES_VALUE:
            return []
        if current.startswith("-"):
            return [(o, "option") for o in _OPTIONS.get(sub or "", _OPTIONS["_all"])]
        if sub is None:
            return [(name, "subcommand") for name in self._subcommands]
        project = before[before.index("--project") + 1] if "--project" in before[:-1] else None
        if len(positionals) == 1 and sub in ("project", "duplicate", "rename"):
            return [(pid, "project") for pid, _ in self.projects()]
        if len(positionals) == 1 and sub == "download":
            return [(aid, "asset") for aid, _ in self.assets(project)]
        if len(positionals) == 1 and sub == "cancel":
            return [(wid, "workflow") for wid, _ in self.records("workflow", project)]
        if sub == "delete" and len(positionals) == 1:
            return [(kind, "kind") for kind in _DELETE_KINDS]
        if sub == "delete" and len(positionals) == 2 and positionals[1] in _DELETE_KINDS:
            kind = positionals[1]
            found = self.projects() if kind == "project" else self.records(kind, project)
            return [(rid, kind) for rid, _ in found]
        if (sub == "show" and len(positionals) == 1) or sub == "metrics":
            return [(aid, "mesh asset") for aid, name in self.assets(project) if name.lower().endswith(_MESH_SUFFIXES)]
        return []

    def projects(self) -> list[tuple[str, str]]:
        return self.cache.get("projects", lambda: _records("/projects", "name"))

    def assets(self, project: str | None) -> list[tuple[str, str]]:
        return self.records("asset", project)

    def records(self, kind: str, project: str | None) -> list[tuple[str, str]]:
        """IDs (and their name, filename or state) of the assets, jobs or workflows of a project."""
        s = kernel_session.current_session()
        pid = project or (s.project_id if s is not None else None)
        if not pid:
            return []
        return self.cache.get(
            f"{kind}s:{pid}", lambda: _records(api_path(f"/projects/{{pid}}/{kind}s", pid=pid), _DELETE_KINDS[kind])
        )


def install(shell: Any, magics: Any) -> MetafoldCompleter:
    completer = MetafoldCompleter(magics)
    shell.Completer.custom_matchers.append(completer.matcher)
    magics.completer = completer
    return completer


def uninstall(shell: Any) -> None:
    matchers = shell.Completer.custom_matchers
    matchers[:] = [m for m in matchers if getattr(m, "matcher_identifier", None) != "metafold_jupyter.completion"]
