"""The explorer in a real browser: JupyterLab on localhost, headless Chromium driven by Playwright.

Opens a notebook that shows the explorer, runs it, moves the frames slider, clicks "Predict memory" and
reads the prediction back from the page, then clicks "Load" (a background action) and reads its result too
(screenshots are saved in the test's tmp dir). Skipped where
/usr/bin/chromium (Debian's chromium package) or the playwright package is missing; Playwright drives
that system Chromium, so no browser download is needed:

    apt-get install -y --no-install-recommends chromium
    .venv/bin/python -m pytest tests/explore/test_browser.py -m browser
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]
NOTEBOOK_SOURCE = """from workbench import explore

view = explore.ExplorerView(explore.Explorer(explore.Selection(device="cpu")))
view"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def jupyter_lab(tmp_path: Path):
    """(base url, token) of a JupyterLab serving a temp folder that holds explore.ipynb; stopped afterwards."""
    root = tmp_path / "lab"
    root.mkdir()
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(NOTEBOOK_SOURCE)], metadata={
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}})
    nbformat.write(notebook, root / "explore.ipynb")
    token, port = secrets.token_hex(16), free_port()
    env = dict(os.environ)
    for name, folder in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                         ("JUPYTERLAB_SETTINGS_DIR", "settings"), ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
                         ("IPYTHONDIR", "ipython")):
        env[name] = str(tmp_path / folder)  # nothing read from or left in the user's own Jupyter folders
    log = (tmp_path / "jupyter.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         *(["--allow-root"] if os.geteuid() == 0 else [])],  # CI containers run as root
        env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not start:\n{(tmp_path / 'jupyter.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield base, token
    finally:
        server.terminate()  # our own child: the server shuts its kernels down on SIGTERM
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def watch_dialogs(page) -> list[str]:
    """Answer any JupyterLab dialog that covers the page (e.g. a kernel restart notice on a loaded machine)
    with its default button, so it cannot block a click; returns the list its texts are collected in."""
    seen: list[str] = []

    def answer(dialog) -> None:
        seen.append(" ".join(dialog.inner_text().split())[:300])
        accept = dialog.locator(".jp-Dialog-button.jp-mod-accept")
        if accept.count():
            accept.first.click()
        else:
            page.keyboard.press("Escape")

    page.add_locator_handler(page.locator(".jp-Dialog"), answer)
    return seen


def run_first_cell(page, editor, attempts: int = 20) -> None:
    """Ctrl+Enter in the first cell until its prompt shows it ran ([*] or [1]): a keypress sent while the
    kernel connection is still settling can be dropped."""
    prompt = page.locator(".jp-Notebook .jp-Cell .jp-InputPrompt").first
    for _ in range(attempts):
        editor.click()
        page.keyboard.press("Control+Enter")
        for _ in range(10):
            if any(mark in prompt.inner_text() for mark in "*0123456789"):
                return
            time.sleep(0.5)
    pytest.fail(f"the notebook's cell did not run (prompt {prompt.inner_text()!r})")


def set_slider(page, readout, value: str, attempts: int = 5) -> None:
    """Type a value into an ipywidgets slider's editable readout (retried: a busy page can drop keys)."""
    for _ in range(attempts):
        readout.click()
        page.keyboard.press("Control+A")
        page.keyboard.type(value)
        page.keyboard.press("Enter")
        for _ in range(10):
            if readout.inner_text().strip() == value:
                return
            time.sleep(0.5)
    pytest.fail(f"the slider shows {readout.inner_text()!r}, not {value!r}")


def test_predict_memory_in_a_browser(jupyter_lab, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
    base, token = jupyter_lab
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            dialogs = watch_dialogs(page)
            page.goto(f"{base}/lab/tree/explore.ipynb?token={token}")
            editor = page.locator(".jp-Notebook .jp-Cell .jp-InputArea-editor").first
            editor.wait_for(timeout=120_000)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
            run_first_cell(page, editor)  # the explorer appears below it

            predict = page.locator(".wb-action-predict")
            predict.wait_for(timeout=180_000)
            readout = page.locator(".wb-control-frames .widget-readout")
            assert readout.inner_text().strip() == "8"
            set_slider(page, readout, "24")

            predict.click()
            status = page.locator(".wb-status-area")
            status.get_by_text("Predicted peak").wait_for(timeout=180_000)
            text = status.inner_text()
            assert "24 frames of 320x240" in text, text
            table = page.locator(".wb-panel-predict table")
            assert table.count() == 1 and "weights" in table.inner_text()
            page.screenshot(path=str(tmp_path / "explorer.png"), full_page=True)

            page.locator(".wb-action-load").click()  # a background action: its updates come from a thread
            status.get_by_text("Loaded qwen2-vl-2b").wait_for(timeout=180_000)
            assert "from tiny" in page.locator(".wb-panel-load").inner_text()
            page.screenshot(path=str(tmp_path / "explorer_loaded.png"), full_page=True)
        except Exception as error:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)  # what the page showed
            if dialogs:
                error.add_note(f"JupyterLab showed {len(dialogs)} dialog(s): {dialogs}")
            raise
        finally:
            browser.close()
    assert (tmp_path / "explorer.png").stat().st_size > 10_000
