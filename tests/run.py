#!/usr/bin/env python3
"""The test command: set up a fresh machine and run every test.

    python3 tests/run.py                      all stages below
    python3 tests/run.py [pytest arguments]   set-up, then the suite with those arguments only
    python3 tests/run.py --stage NAME[,NAME]  only these stages (set-up always runs first)

Stages, in order (each prints its name and how long it took; a summary closes the run):

setup      .venv on this Python (3.11 here) with the ``test`` extra (pandas 3, the
           official SDK, JupyterLab, Notebook 7, nbclient, Playwright, mypy, build, twine),
           and Debian's chromium for the browser tests when it is missing (apt-get, as root).
typecheck  mypy over metafold_jupyter (configured in pyproject.toml), one line per error.
suite      the whole pytest suite: sandbox, core, helpers, magics, notebooks in real
           kernels, benchmarks (small), the login widget and a 3D view in JupyterLab and
           Notebook 7 in Chromium.
py3.10     the core suite (everything but the browser tests and the benchmarks) on the
           lowest supported Python with the lowest supported pandas, 2.2, in .venv-py3.10
           (pandas 3 needs Python >= 3.11, and the official SDK too, so its tests skip).
           Without a Python 3.10 the same run happens on this Python in .venv-pandas2.2,
           so pandas 2.2 is always checked.
py3.13     the core suite on the highest supported Python (pandas 3), in .venv-py3.13;
           skipped with one line when the machine has no Python 3.13.
package    sdist and wheel built with ``python -m build`` into dist/, ``twine check``ed;
           the sdist holds every tracked file the tests, notebooks and Binder need, the
           wheel only the package (with py.typed and the licence); every version agrees.
wheel      the wheel installed (not editable) into a fresh venv in a temporary directory
           outside the checkout, and run there with the checkout off sys.path: a smoke
           test (tests/smoke_installed.py) and the demo command's notebook on the sandbox.

Other Pythons are found as pythonX.Y on PATH or in pyenv's versions directory.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bootstrap import ROOT, create_venv, ensure_chromium, ensure_venv, find_python, pip, run

CORE = ["tests", "-m", "not browser and not slow"]  # the matrix subset (see the docstring)
LOWEST, HIGHEST = "3.10", "3.13"
PANDAS_LOWEST = "pandas>=2.2,<2.3"
DIST = ROOT / "dist"
SMOKE = ROOT / "tests" / "smoke_installed.py"
DEMO = ROOT / "notebooks" / "demo.py"
DEMO_NOTEBOOK = ROOT / "notebooks" / "01-getting-started.ipynb"
# tracked files that need not be in the sdist
SDIST_OMITS = {".gitignore"}
# never in any distribution: local settings (secrets), caches, environments
JUNK = re.compile(r"(^|/)(\.env|\.venv[^/]*|__pycache__|\.ipynb_checkpoints|\.mypy_cache|\.pytest_cache)(/|$)|\.pyc$")


class StageFailed(Exception):
    """A stage could not do its job; the message says what and why."""


class StageSkipped(Exception):
    """A stage has nothing to run on this machine; the message says why."""


@dataclass
class Run:
    """What the stages share: the main environment, the results, the pytest reports."""

    argv: list[str]
    env: dict[str, str]
    stage: str = ""
    python: Path | None = None
    wheel: Path | None = None
    reports: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="metafold-tests-")))

    def pytest(self, python: Path, args: list[str], cwd: Path = ROOT, env: dict[str, str] | None = None) -> None:
        """Run pytest (once per stage); its report counts in the totals; raise StageFailed on failure."""
        report = self.reports / f"{self.stage}.xml"
        cmd = [str(python), "-m", "pytest", *args, f"--junitxml={report}"]
        print("+", " ".join(cmd), flush=True)
        with step("pytest"):
            status = subprocess.call(cmd, cwd=cwd, env=env or self.env)
        if status:
            raise StageFailed(f"pytest exited with {status}")


@dataclass
class Stage:
    name: str
    summary: str
    action: Callable[[Run], None]


# -- the stages -------------------------------------------------------------------------------


def setup(r: Run) -> None:
    with step("venv"):
        r.python = ensure_venv("test")
    with step("chromium"):
        chromium = ensure_chromium()
    if chromium:
        r.env["METAFOLD_TEST_CHROMIUM"] = chromium


def typecheck(r: Run) -> None:
    assert r.python
    cmd = [str(r.python), "-m", "mypy", "--no-error-summary"]
    print("+", " ".join(cmd), flush=True)
    out = subprocess.run(cmd, cwd=ROOT, env=r.env, capture_output=True, text=True)
    # one line per error: mypy's notes (hints, links) would double the list
    errors = [line for line in out.stdout.splitlines() if line and ": note: " not in line]
    print("\n".join(errors) or "mypy: no errors", flush=True)
    if out.returncode:
        print(out.stderr, end="")
        raise StageFailed(
            f"{len(errors)} type errors (a third-party package without types goes into "
            "[[tool.mypy.overrides]] in pyproject.toml, with a comment)"
        )


def suite(r: Run) -> None:
    assert r.python
    r.pytest(r.python, ["tests", "--durations=5", *r.argv])


def lowest(r: Run) -> None:
    base, where = find_python(LOWEST)
    venv = ROOT / f".venv-py{LOWEST}"
    if base is None:
        print(f"Python {LOWEST} not found ({where}): pandas 2.2 is checked on this Python instead", flush=True)
        base, venv = sys.executable, ROOT / ".venv-pandas2.2"
    with step(f"venv {venv.name}"):
        python = ensure_venv("test", venv=venv, pins=[PANDAS_LOWEST], base=base)
    r.pytest(python, [*CORE, "--durations=5", "-p", "no:cacheprovider"])


def highest(r: Run) -> None:
    base, where = find_python(HIGHEST)
    if base is None:
        raise StageSkipped(f"no Python {HIGHEST} on this machine (looked for {where})")
    venv = ROOT / f".venv-py{HIGHEST}"
    with step(f"venv {venv.name}"):
        python = ensure_venv("test", venv=venv, base=base)
    r.pytest(python, [*CORE, "--durations=5", "-p", "no:cacheprovider"])


def package(r: Run) -> None:
    assert r.python
    for old in DIST.glob("metafold_jupyter-*"):
        old.unlink()
    with step("build"):
        # the standard frontend; it builds the sdist, then the wheel from the sdist
        run([r.python, "-m", "build", "--outdir", DIST, ROOT], env=r.env)
    sdists, wheels = sorted(DIST.glob("metafold_jupyter-*.tar.gz")), sorted(DIST.glob("metafold_jupyter-*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        raise StageFailed(f"expected one sdist and one wheel in {DIST}, found {[p.name for p in DIST.iterdir()]}")
    with step("twine check"):
        run([r.python, "-m", "twine", "check", "--strict", sdists[0], wheels[0]], env=r.env)
    version = checkout_version()
    problems = check_sdist(sdists[0], version) + check_wheel(wheels[0], version)
    for problem in problems:
        print(f"  {problem}")
    if problems:
        raise StageFailed(f"{len(problems)} problems with the distributions")
    print(f"sdist and wheel of version {version}: contents and metadata as expected")
    r.wheel = wheels[0]


def wheel(r: Run) -> None:
    if r.wheel is None:
        raise StageSkipped("no wheel was built (the package stage did not pass)")
    # Outside the checkout, as a user has it: a fresh venv in a temporary directory, and
    # the smoke test, demo.py and the notebook copied next to it and run from there.
    with tempfile.TemporaryDirectory(prefix="metafold-wheel-") as tmp:
        work = Path(tmp)
        venv = work / "venv"
        with step("fresh venv, wheel installed"):
            python = create_venv(venv)
            run([*pip(python), "install", f"{r.wheel}[sdk,notebooks]", "pytest>=8.0", "pytest-timeout>=2.3"])
        for source in (SMOKE, DEMO, DEMO_NOTEBOOK):
            shutil.copy(source, work / source.name)
        (work / "pytest.ini").write_text("[pytest]\ntimeout = 300\n")  # no config from above tmp
        env = {k: v for k, v in r.env.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"  # kernels start this python
        env.update(SMOKE_CHECKOUT=str(ROOT), SMOKE_WHEEL=str(r.wheel), SMOKE_VERSION=checkout_version())
        r.pytest(python, ["-p", "no:cacheprovider", SMOKE.name], cwd=work, env=env)


STAGES = [
    Stage("setup", "venv (Python %d.%d, editable, test extra) and chromium" % sys.version_info[:2], setup),
    Stage("typecheck", "mypy over metafold_jupyter", typecheck),
    Stage("suite", "every test on this Python", suite),
    Stage(f"py{LOWEST}", f"core suite on Python {LOWEST} with pandas 2.2", lowest),
    Stage(f"py{HIGHEST}", f"core suite on Python {HIGHEST}", highest),
    Stage("package", "sdist + wheel: build, twine check, contents, versions", package),
    Stage("wheel", "the wheel installed in a fresh venv: smoke test and demo notebook", wheel),
]


# -- checks of the distributions --------------------------------------------------------------


def checkout_version() -> str:
    text = (ROOT / "metafold_jupyter" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"', text, re.M)
    if not match:
        raise StageFailed("no __version__ = \"...\" line in metafold_jupyter/__init__.py")
    return match.group(1)


def tracked_files() -> set[str] | None:
    """The files git tracks in this checkout, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return {name for name in out.stdout.decode().split("\0") if name and (ROOT / name).is_file()}


def check_sdist(path: Path, version: str) -> list[str]:
    problems = []
    prefix = f"metafold_jupyter-{version}/"
    if path.name != f"metafold_jupyter-{version}.tar.gz":
        problems.append(f"sdist {path.name}: version is not {version}")
    with tarfile.open(path) as tar:
        names = {m.name for m in tar.getmembers() if m.isfile()}
        pkg_info = tar.extractfile(prefix + "PKG-INFO") if prefix + "PKG-INFO" in names else None
        meta = pkg_info.read().decode() if pkg_info else ""
    inside = {n[len(prefix):] for n in names if n.startswith(prefix)}
    problems += [f"sdist: {n} is outside {prefix}" for n in sorted(names) if not n.startswith(prefix)]
    problems += [f"sdist: {n} must not be shipped" for n in sorted(inside) if JUNK.search(n)]
    if f"\nVersion: {version}\n" not in meta:
        problems.append(f"sdist PKG-INFO: Version is not {version}")
    tracked = tracked_files()
    if tracked is None:
        print("  (not a git checkout: the sdist's completeness is not checked)")
    else:
        missing = sorted(tracked - inside - SDIST_OMITS)
        problems += [f"sdist: tracked file {n} is missing (add it to [tool.hatch.build.targets.sdist])"
                     for n in missing]
    for needed in ("LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "tests/run.py",
                   "notebooks/01-getting-started.ipynb", "metafold_jupyter/py.typed"):
        if needed not in inside:
            problems.append(f"sdist: {needed} is missing")
    return problems


def check_wheel(path: Path, version: str) -> list[str]:
    problems = []
    info = f"metafold_jupyter-{version}.dist-info/"
    if path.name != f"metafold_jupyter-{version}-py3-none-any.whl":
        problems.append(f"wheel {path.name}: not a pure-Python wheel of version {version}")
    with zipfile.ZipFile(path) as whl:
        names = set(whl.namelist())
        meta = whl.read(info + "METADATA").decode() if info + "METADATA" in names else ""
    problems += [f"wheel: {n} is not part of the package" for n in sorted(names)
                 if not n.startswith(("metafold_jupyter/", info))]
    problems += [f"wheel: {n} must not be shipped" for n in sorted(names) if JUNK.search(n)]
    if f"\nVersion: {version}\n" not in meta:
        problems.append(f"wheel METADATA: Version is not {version}")
    if "\nLicense-Expression: MIT\n" not in meta:
        problems.append("wheel METADATA: no License-Expression: MIT")
    if info + "licenses/LICENSE" not in names:
        problems.append("wheel: the LICENSE file is missing from the dist-info")
    tracked = tracked_files()
    package_files = ({n for n in tracked if n.startswith("metafold_jupyter/")} if tracked is not None else
                     {p.relative_to(ROOT).as_posix() for p in (ROOT / "metafold_jupyter").rglob("*")
                      if p.is_file() and not JUNK.search(p.as_posix())})
    problems += [f"wheel: {n} is missing" for n in sorted(package_files - names)]
    if "metafold_jupyter/py.typed" not in names:
        problems.append("wheel: metafold_jupyter/py.typed is missing")
    return problems


# -- running the stages -----------------------------------------------------------------------


class step:
    """Times a part of a stage: ``with step("venv"): ...`` prints its name and duration."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        self.start = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        print(f"--- {self.name}: {_duration(time.monotonic() - self.start)}", flush=True)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 60 else f"{int(seconds // 60)} min {seconds % 60:02.0f} s"


def _totals(reports: Path, names: list[str]) -> tuple[dict[str, str], list[int]]:
    """Per-stage "N passed, ..." texts and the overall [passed, failed, skipped] from the reports."""
    per_stage, total = {}, [0, 0, 0]
    for name in names:
        report = reports / f"{name}.xml"
        if not report.exists():
            continue
        counts = [0, 0, 0]
        for suite in ET.parse(report).getroot().iter("testsuite"):
            tests, skipped = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
            failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            counts = [counts[0] + tests - failed - skipped, counts[1] + failed, counts[2] + skipped]
        total = [a + b for a, b in zip(total, counts)]
        per_stage[name] = f"{counts[0]} passed, {counts[1]} failed, {counts[2]} skipped"
    return per_stage, total


def main(argv: list[str]) -> int:
    stages = STAGES
    if argv[:1] == ["--stage"] and len(argv) > 1:
        wanted = set(argv[1].split(","))
        if "wheel" in wanted:
            wanted.add("package")  # the wheel stage tests what the package stage built
        unknown = wanted - {s.name for s in STAGES}
        if unknown:
            print(f"unknown stage {', '.join(sorted(unknown))}; stages: {', '.join(s.name for s in STAGES)}")
            return 2
        stages, argv = [s for s in STAGES if s.name in wanted or s.name == "setup"], argv[2:]
    elif argv:  # pytest arguments: a developer's quick run of the suite
        stages = [s for s in STAGES if s.name in ("setup", "suite")]
    # this checkout is what is tested: no PYTHONPATH may put another one first
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = Run(argv=argv, env=env)
    results: list[tuple[str, float, str]] = []
    started = time.monotonic()
    for number, stage in enumerate(stages, 1):
        print(f"\n=== [{number}/{len(stages)}] {stage.name}: {stage.summary}", flush=True)
        r.stage = stage.name
        t0 = time.monotonic()
        try:
            stage.action(r)
            outcome = "passed"
        except StageSkipped as exc:
            outcome = f"skipped: {exc}"
        except (StageFailed, subprocess.CalledProcessError) as exc:
            outcome = f"FAILED: {exc}"
        elapsed = time.monotonic() - t0
        print(f"=== {stage.name}: {outcome} ({_duration(elapsed)})", flush=True)
        results.append((stage.name, elapsed, outcome))
        if stage.name == "setup" and outcome != "passed":
            break  # nothing else can run without the environment
    per_stage, (passed, failed, skipped) = _totals(r.reports, [name for name, *_ in results])
    shutil.rmtree(r.reports, ignore_errors=True)
    print("\n=== summary")
    for name, elapsed, outcome in results:
        counts = f"  ({per_stage[name]})" if name in per_stage else ""
        print(f"  {name:<10} {_duration(elapsed):>12}  {outcome}{counts}")
    print(f"  {'total':<10} {_duration(time.monotonic() - started):>12}")
    failures = sum(1 for *_, outcome in results if outcome.startswith("FAILED"))
    print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failures or failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
