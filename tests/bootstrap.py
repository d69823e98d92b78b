"""Fresh-machine set-up shared by the README's two commands (stdlib only).

Creates virtual environments next to pyproject.toml, installs the package with the
given extras into them (again only when pyproject.toml, the extras, the pins or the
base Python changed), finds the other supported Pythons on this machine and, when
asked, installs Debian's ``chromium`` package for the browser tests.
"""

from __future__ import annotations

import glob
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


def run(cmd: list[str | Path], **kw) -> None:
    """Run ``cmd``, echoing it and its output (without pip's index noise); raise on failure."""
    print("+", " ".join(str(c) for c in cmd), flush=True)
    proc = subprocess.Popen(
        [str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if _NOISE not in line:
            print(line, end="", flush=True)
    if proc.wait():
        raise subprocess.CalledProcessError(proc.returncode, cmd)


def pip(python: Path) -> list[str]:
    """The quiet pip command of the environment whose interpreter is ``python``."""
    return [str(python), "-m", "pip", "--disable-pip-version-check", "-q"]


def create_venv(venv: Path, base: str = sys.executable) -> Path:
    """A new, empty virtual environment made by ``base`` (an old one there is removed)."""
    if venv.exists():
        shutil.rmtree(venv)
    run([base, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    run([*pip(python), "install", "--upgrade", "pip"])
    return python


def ensure_venv(
    extras: str, venv: Path = VENV, pins: list[str] | None = None, base: str = sys.executable
) -> Path:
    """Create ``venv`` with ``base`` and install ``-e .[extras]`` (plus ``pins``); return its python.

    Installs again only when pyproject.toml, the extras or the pins changed; starts
    over when the environment was made by another base Python.
    """
    python = venv / "bin" / "python"
    if not python.exists() or _home(venv) != os.path.dirname(os.path.realpath(base)):
        create_venv(venv, base)
    pins = pins or []
    digest = hashlib.sha256(
        (ROOT / "pyproject.toml").read_bytes() + extras.encode() + "\n".join(pins).encode()
    ).hexdigest()
    stamp = venv / f".installed-{extras}"
    if not stamp.exists() or stamp.read_text() != digest:
        run([*pip(python), "install", "-e", f"{ROOT}[{extras}]", *pins], cwd=ROOT)
        stamp.write_text(digest)
    return python


def _home(venv: Path) -> str | None:
    """The directory of the Python that made ``venv`` (pyvenv.cfg's ``home``)."""
    try:
        lines = (venv / "pyvenv.cfg").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() == "home":
            return os.path.realpath(value.strip())
    return None


# -- other Pythons -----------------------------------------------------------------------------


def find_python(version: str) -> tuple[str | None, str]:
    """An interpreter of ``version`` ("3.10") able to make a venv, and where it was looked for.

    Tries ``pythonX.Y`` on PATH, then pyenv's versions directory ($PYENV_ROOT or
    ~/.pyenv, newest patch release first). Each candidate is run once: a pyenv shim
    for a version that is not selected exists on PATH but fails, and a Debian Python
    without python3-venv cannot make a venv.
    """
    if "%d.%d" % sys.version_info[:2] == version:
        return sys.executable, "this interpreter"
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    candidates = [shutil.which(f"python{version}")]
    found = glob.glob(os.path.join(pyenv_root, "versions", f"{version}.*", "bin", f"python{version}"))
    candidates += sorted(found, key=_patch_level, reverse=True)
    for candidate in filter(None, candidates):
        if _works(candidate, version):
            return candidate, candidate
    return None, f"python{version} on PATH, {pyenv_root}/versions/{version}.*"


def _patch_level(path: str) -> tuple[int, ...]:
    name = Path(path).parent.parent.name  # .../versions/3.10.13/bin/python3.10
    return tuple(int(p) if p.isdigit() else -1 for p in name.split("."))


def _works(python: str, version: str) -> bool:
    probe = "import sys, venv, ensurepip; print('%d.%d' % sys.version_info[:2])"
    try:
        out = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=60)
    except OSError:
        return False
    return out.returncode == 0 and out.stdout.strip() == version


# -- the browser -------------------------------------------------------------------------------


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
    run(["apt-get", "update", "-q"], env=env)
    run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium", "fonts-dejavu-core"], env=env)
    return chromium_path()
