"""Fresh-machine set-up shared by the README's two commands (stdlib only).

Creates ``.venv`` next to pyproject.toml, installs the package with the given
extras into it (again only when pyproject.toml changed) and, when asked, the
Debian ``chromium`` package for the browser test.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"


# this machine kind's pip.conf names local indexes that may not exist; pip warns per package
_NOISE = "is ignored: it is neither a file nor a directory"


def _run(cmd: list[str], **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    for line in proc.stdout:
        if _NOISE not in line:
            print(line, end="", flush=True)
    if proc.wait():
        raise subprocess.CalledProcessError(proc.returncode, cmd)


def ensure_venv(extras: str, venv: Path = VENV, pins: list[str] | None = None) -> Path:
    """Create ``venv`` and install ``.[extras]`` (plus ``pins``) into it; return its python.

    Installs again only when pyproject.toml, the extras or the pins changed.
    """
    python = venv / "bin" / "python"
    if not python.exists():
        _run([sys.executable, "-m", "venv", str(venv)])
    pins = pins or []
    digest = hashlib.sha256(
        (ROOT / "pyproject.toml").read_bytes() + extras.encode() + "\n".join(pins).encode()
    ).hexdigest()
    stamp = venv / f".installed-{extras}"
    if not stamp.exists() or stamp.read_text() != digest:
        pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q"]
        _run([*pip, "install", "--upgrade", "pip"])
        _run([*pip, "install", "-e", f"{ROOT}[{extras}]", *pins], cwd=ROOT)
        stamp.write_text(digest)
    return python


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def ensure_chromium() -> str | None:
    """Install Debian's chromium when missing (as root, with apt-get); return its path."""
    path = chromium_path()
    if path or not shutil.which("apt-get") or os.geteuid() != 0:
        return path
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-q"], env=env)
    _run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium", "fonts-dejavu-core"], env=env)
    return chromium_path()
