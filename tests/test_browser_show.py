"""The 3D view in JupyterLab and Notebook 7: ``%metafold show`` draws WebGL in headless Chromium.

Chromium has no GPU here, so it runs WebGL on SwiftShader, its software renderer
(``--use-angle=swiftshader --enable-unsafe-swiftshader``, and without the
``--disable-gpu`` the login test uses). The kernel logs in from a ``.env`` in the
notebook folder and shows the sandbox's ``gear.glb``. plotly's JupyterLab renderer
(a prebuilt extension inside the plotly wheel, which Notebook 7 loads too) takes the
output: it shows the bundle's PNG at once and builds the WebGL scene when the mouse
comes over it (so a notebook with many views does not run out of WebGL contexts); the
scene must be painted in the mesh's colour and turn when dragged, and the page may
load nothing from beyond loopback (no plotly.js from a CDN). Artefacts:
tests/artifacts/browser-show.png (JupyterLab), browser-show-nb7.png, and
browser-show-failure.png / browser-show-nb7-failure.png when something fails.
"""

from __future__ import annotations

import io
import os
import re
import time

import numpy as np
import pytest
from browser_support import ARTIFACTS, CHROMIUM_ARGS, FRONTENDS, JupyterServer, OfflineGuard, headless_chromium
from test_browser import LAB_SETTINGS, START_TIMEOUT, STEP_TIMEOUT, run_cell, wait_for_kernel

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WEBGL_ARGS = [a for a in CHROMIUM_ARGS if a != "--disable-gpu"] + [
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--ignore-gpu-blocklist",
]
RENDER_TIMEOUT = 30.0  # seconds for plotly to paint the scene with software WebGL


@pytest.fixture(scope="module")
def webgl_browser():
    """Headless Chromium with WebGL on SwiftShader (module scope)."""
    with headless_chromium(WEBGL_ARGS) as browser:
        yield browser


@pytest.fixture(scope="module", params=FRONTENDS, ids=lambda frontend: frontend.id)
def server(request, tmp_path_factory):
    """A private server of each front-end in turn (stopped, with its kernels, after its test)."""
    frontend = request.param
    base = tmp_path_factory.mktemp(f"jupyter-show-{frontend.id}")
    root = base / "notebooks"
    root.mkdir()
    with JupyterServer(frontend, base / "jupyter", root, lab_settings=LAB_SETTINGS) as running:
        yield running


def write_notebook(path, sandbox, asset_id: str) -> None:
    import nbformat

    env = path.parent / ".env"  # the kernel's credentials, as a user keeps them
    env.write_text("".join(f"{key}={value}\n" for key, value in sandbox.env().items()))
    env.chmod(0o600)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext metafold_jupyter"),
        nbformat.v4.new_code_cell("%metafold_login"),
        nbformat.v4.new_code_cell(f"%metafold show {asset_id}"),
    ]
    nbformat.write(nb, str(path))


def mesh_pixels(png: bytes) -> tuple[np.ndarray, float]:
    """The picture as an array, and the share of its pixels in the mesh's blue (#4a90d9, lit)."""
    from PIL import Image

    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    red, green, blue = image[..., 0], image[..., 1], image[..., 2]
    blue_ish = (blue > 90) & (blue > red + 50) & (green > red)
    return image, float(blue_ish.mean())


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def test_show_renders_a_webgl_view_in_frontend(webgl_browser, sandbox, server):
    from playwright.sync_api import expect

    frontend = server.frontend
    (gear,) = [str(a.id) for a in sandbox.store.assets.values()
               if a.filename == "gear.glb" and str(a.project_id) == sandbox.default_project_id]
    name = "browser-show.ipynb"
    write_notebook(server.root_dir / name, sandbox, gear)
    shot = ARTIFACTS / f"browser-show{frontend.suffix}.png"
    failure = ARTIFACTS / f"browser-show{frontend.suffix}-failure.png"
    ARTIFACTS.mkdir(exist_ok=True)
    failure.unlink(missing_ok=True)
    console: list[str] = []
    context = webgl_browser.new_context(viewport={"width": 1280, "height": 1000})
    offline = OfflineGuard(context)
    try:
        page = context.new_page()
        page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}") if msg.type == "error" else None)
        page.set_default_timeout(STEP_TIMEOUT)
        try:
            renderer = page.evaluate(
                "() => { const gl = document.createElement('canvas').getContext('webgl');"
                " if (!gl) return null; const info = gl.getExtension('WEBGL_debug_renderer_info');"
                " return info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : 'webgl'; }"
            )
            assert renderer, "this Chromium has no WebGL, even on SwiftShader"
            page.goto(server.notebook_url(name, workspace="show"), timeout=START_TIMEOUT)
            cells = page.locator(".jp-NotebookPanel:visible .jp-Notebook .jp-Cell")
            expect(cells).to_have_count(3, timeout=START_TIMEOUT)
            wait_for_kernel(page, server, name, expect)
            for i in range(3):
                run_cell(page, cells.nth(i), expect)
            expect(cells.nth(1).locator(".jp-OutputArea-output")).to_contain_text(
                re.compile(r"Logged in to .*sandbox"))

            # plotly's renderer (not the plain image renderer) takes the output: it shows the bundle's
            # PNG at once and builds the WebGL scene when the mouse comes over it
            plot = cells.nth(2).locator(".jp-OutputArea-output.jp-RenderedPlotly")
            expect(plot.locator("img.plot-img")).to_be_visible(timeout=STEP_TIMEOUT)
            plot.hover()
            expect(plot.locator(".plot-container canvas").first).to_be_visible(timeout=STEP_TIMEOUT)
            expect(plot.locator("img.plot-img")).to_be_hidden()
            expect(plot).to_contain_text("gear.glb")
            expect(plot).to_contain_text("192 faces")

            # plotly paints the scene a moment after the canvas appears
            def painted():
                image, share = mesh_pixels(plot.screenshot())
                return (image, share) if share > 0.03 else None

            before, share = wait_for(painted, RENDER_TIMEOUT, "the mesh to be painted on the WebGL canvas")
            page.screenshot(path=str(shot), full_page=True)
            print(f"{frontend.title}: WebGL renderer: {renderer}; mesh covers {share:.0%} of the view; "
                  f"screenshot: {shot}")

            # drag to turn it: the picture changes (the view is live, not a still)
            box = plot.locator(".plot-container").first.bounding_box()
            cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(cx, cy)
            page.mouse.down()
            for step in range(1, 11):
                page.mouse.move(cx + 18 * step, cy + 6 * step)
            page.mouse.up()

            def turned():
                after, _ = mesh_pixels(plot.screenshot())
                return after.shape == before.shape and (np.abs(after - before).sum(axis=2) > 60).mean() > 0.02

            wait_for(turned, RENDER_TIMEOUT, "the view to turn when dragged")
        except Exception as exc:
            try:
                page.screenshot(path=str(failure), full_page=True)
            except Exception:  # noqa: BLE001 - the original error matters more
                pass
            raise AssertionError(
                f"3D view test ({frontend.title}) failed: {exc}\nscreenshot: {failure}\n"
                f"requests beyond loopback:\n{offline.report()}\nbrowser console errors:\n"
                + "\n".join(console[-20:]) + f"\n{frontend.title} log:\n{server.log_tail()}"
            ) from exc
    finally:
        context.close()
        server.shutdown_kernels(name)
        (server.root_dir / ".env").unlink(missing_ok=True)
    offline.check()  # plotly.js and the renderer came from the server, not a CDN
    assert not os.environ.get("METAFOLD_CLIENT_SECRET")  # the .env never reached this process
