"""The demo's shared pages read cleanly in a real browser (headless Chromium driven by Playwright).

Opens the latest executed notebook (notebook.html) of every notebook run in params/demo.yaml, and each sweep's
index.html, and fails on what a colleague should never see there: a Python warning or traceback, a number in
scientific notation in a rendered table, an absolute path of this machine, or a page without its provenance
header. Full-page screenshots go to the test's tmp folder; with $WORKBENCH_PAGE_SHOTS set (docs/screenshots), the
top of each page is also saved there as a small JPEG.

It reads the pages `make demo` (or single `python -m workbench run` calls with the demo's params) left under
the outputs root; without them, or without /usr/bin/chromium or the playwright package, it is skipped.

    .venv/bin/python -m pytest tests/test_pages_browser.py -m browser
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from workbench import paths
from workbench.demo import demo_runs

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]

WARNING_OR_TRACEBACK = re.compile(r"Traceback \(most recent call last\)|\b[A-Z]\w*Warning\b[:(]|\bwarnings\.warn\(")
SCIENTIFIC = re.compile(r"(?<![\w.])[-+]?\d+(\.\d+)?[eE][-+]?\d+(?![\w.])")


def machine_paths() -> list[str]:
    """Absolute folders of this machine a shared page must not show."""
    found = {str(paths.REPO_ROOT), str(paths.outputs_dir())}
    home = str(Path.home())
    if home not in ("/", ""):
        found.add(home + "/")
    return sorted(found, key=len, reverse=True)


def demo_pages() -> list[tuple[str, Path]]:
    """(label, page) for the latest ok run of each demo notebook entry and each demo sweep's index."""
    pages = []
    for entry in demo_runs():
        if "sweep" in entry:
            from workbench.sweep import load_sweep

            index = load_sweep(entry["sweep"]).dir / "index.html"
            if index.exists():
                pages.append((f"sweep {Path(entry['sweep']).stem}", index))
            continue
        params = entry.get("params") or ""
        latest = None
        for manifest in sorted(paths.run_root(entry["notebook"]).glob("*/manifest.json")):
            record = json.loads(manifest.read_text())
            if record.get("status") == "ok" and str(record.get("params_file") or "") == params \
                    and (manifest.parent / "notebook.html").exists():
                latest = manifest.parent / "notebook.html"
        if latest is not None:
            pages.append((f"{entry['notebook']} {Path(params).stem}", latest))
    return list(dict((page, (label, page)) for label, page in pages).values())  # an entry listed twice once


PAGES = demo_pages()


def _commit_id(text: str) -> bool:
    """A short commit id such as 6890e20481 reads like a number in scientific notation; it is not one."""
    import subprocess

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=paths.REPO_ROOT, capture_output=True, text=True).stdout
    return len(text) >= 7 and text in head


def page_problems(page, label: str) -> list[str]:
    """What is wrong with one loaded page (empty when it reads cleanly)."""
    problems = []
    text = page.evaluate("""() => {
        const clone = document.body.cloneNode(true);
        clone.querySelectorAll('details.wb-warnings, script, style').forEach(e => e.remove());
        return clone.innerText;
    }""")
    for match in WARNING_OR_TRACEBACK.finditer(text):
        problems.append(f"{label}: warning or traceback in the page: {text[max(0, match.start() - 80):match.end() + 80]!r}")
    stderr = page.locator("[data-mime-type='application/vnd.jupyter.stderr']").count()
    if stderr:
        problems.append(f"{label}: {stderr} stderr output(s) shown in the page")
    cells = page.evaluate("() => Array.from(document.querySelectorAll('table td, table th')).map(e => e.innerText)")
    for cell in cells:
        if SCIENTIFIC.search(cell) and not _commit_id(SCIENTIFIC.search(cell).group(0)):
            problems.append(f"{label}: number in scientific notation in a table: {cell[:120]!r}")
    html = page.content()
    for folder in machine_paths():
        if folder in text or folder in html:
            where = text if folder in text else html
            at = where.index(folder)
            problems.append(f"{label}: absolute path {folder!r} in the page: {where[max(0, at - 80):at + 120]!r}")
    if "provenance" not in text.lower():
        problems.append(f"{label}: no provenance header")
    return problems


@pytest.mark.skipif(not PAGES, reason="no demo pages under the outputs root: run `make demo` (or the demo's "
                                      "notebooks one by one with `python -m workbench run NB -f PARAMS`) first")
def test_demo_pages_read_cleanly(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
    shots = Path(os.environ["WORKBENCH_PAGE_SHOTS"]) if os.environ.get("WORKBENCH_PAGE_SHOTS") else None
    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            for label, html in PAGES:
                page.goto(html.resolve().as_uri(), wait_until="load", timeout=120_000)
                name = re.sub(r"[^A-Za-z0-9_.-]+", "_", label) + ".png"
                page.screenshot(path=str(tmp_path / name), full_page=True)
                if shots is not None:  # for docs: the top of each page (provenance and first results), small
                    shots.mkdir(parents=True, exist_ok=True)
                    height = min(1800, page.evaluate("() => document.body.scrollHeight"))
                    page.screenshot(path=str(shots / name.replace(".png", ".jpg")), type="jpeg", quality=70,
                                    clip={"x": 0, "y": 0, "width": 1280, "height": height}, full_page=True)
                problems += page_problems(page, label)
        finally:
            browser.close()
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_a_sweep_page_and_its_runs_read_cleanly(tmp_path):
    """A sweep made here (the demo runs none): its index and each linked executed notebook, in the browser."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
    import yaml

    from workbench.sweep import run_sweep

    spec = {"notebook": "tests/data/trivial.ipynb", "name": "browser_check", "workers": 2,
            "zip": {"action": ["ok", "fail"], "value": [3, 4]}}
    (tmp_path / "browser_check.yaml").write_text(yaml.safe_dump(spec))
    sweep_dir = run_sweep(tmp_path / "browser_check.yaml", progress=False)
    index = sweep_dir / "index.html"
    links = re.findall(r'href="([^"]+/notebook\.html)"', index.read_text())
    statuses = {r["run_dir"]: r["status"] for r in map(json.loads, map(Path.read_text, (sweep_dir / "records").glob("*.json")))}
    assert sorted(statuses[str(Path(link).parent)] for link in links) == ["failed", "ok"]
    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(index.resolve().as_uri(), wait_until="load", timeout=120_000)
            page.screenshot(path=str(tmp_path / "sweep_index.png"), full_page=True)
            problems += page_problems(page, "sweep browser_check")
            assert "1 ok, 1 failed" in page.inner_text("body")
            for link in links:
                page.goto((sweep_dir / link).resolve().as_uri(), wait_until="load", timeout=120_000)
                found = page_problems(page, f"sweep run {link}")
                if statuses[str(Path(link).parent)] == "failed":  # its traceback is what a reader needs to see
                    found = [p for p in found if "warning or traceback" not in p and "stderr" not in p]
                problems += found
        finally:
            browser.close()
    assert not problems, "\n".join(problems)


def test_the_checks_catch_what_they_look_for():
    """The patterns themselves: a test that could not fail would prove nothing."""
    assert WARNING_OR_TRACEBACK.search("/x.py:3: UserWarning: Glyph 2 missing")
    assert WARNING_OR_TRACEBACK.search("Traceback (most recent call last):")
    assert not WARNING_OR_TRACEBACK.search("no warning here; FutureWarnings were fixed")
    assert SCIENTIFIC.search("2.500000e-01") and SCIENTIFIC.search("1e-05")
    assert not SCIENTIFIC.search("0.25") and not SCIENTIFIC.search("qwen2-vl-7b") and not SCIENTIFIC.search("1e")
    assert not SCIENTIFIC.search("20261127-103818-52bcf987")  # a run id is not a number
    assert str(paths.REPO_ROOT) in machine_paths()
