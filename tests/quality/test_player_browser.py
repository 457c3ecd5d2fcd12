"""The captions player page in a real browser: headless Chromium (Debian's) driven by Playwright.

The page is opened straight from disk (file://), as someone who received a run folder would: the video
loads and plays, and each caption track holds one cue per timeline window with the window's times.
Skipped without /usr/bin/chromium or playwright (`apt-get install -y --no-install-recommends chromium`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from workbench.probe_videos import write_index_video
from workbench.quality import references

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


def test_player_plays_the_video_with_one_cue_per_window(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    video = write_index_video(tmp_path / "clip.mp4", 45, 10)  # 4.5 s, H.264
    windows = [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.5)]
    table = pd.DataFrame({"window": range(4), "start_s": [w[0] for w in windows], "end_s": [w[1] for w in windows],
                          "caption": ["first <second>", "", "third & more", "last"],
                          "status": ["ok", "error", "ok", "ok"]})
    other = table.assign(caption=["another model"] * 4, status="ok")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    page = references.write_player(run_dir, video, [
        ("model A", references.vtt_text(references.timeline_cues(table))),
        ("model B", references.vtt_text(references.timeline_cues(other)))], "clip")

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=["--autoplay-policy=no-user-gesture-required"])
        try:
            tab = browser.new_page()
            errors: list[str] = []
            tab.on("pageerror", lambda err: errors.append(str(err)))
            tab.goto(page.as_uri())
            tab.wait_for_function("document.getElementById('player').readyState >= 2", timeout=20_000)
            duration = tab.evaluate("document.getElementById('player').duration")
            assert duration == pytest.approx(4.5, abs=0.15)
            tab.wait_for_function("document.getElementById('player').textTracks[0].cues "
                                  "&& document.getElementById('player').textTracks[0].cues.length > 0",
                                  timeout=10_000)
            cues = tab.evaluate("""Array.from(document.getElementById('player').textTracks).map(track => ({
                label: track.label, mode: track.mode,
                cues: Array.from(track.cues || []).map(c => [c.startTime, c.endTime, c.getCueAsHTML().textContent])}))""")
            assert [track["label"] for track in cues] == ["model A", "model B"]
            assert cues[0]["mode"] == "showing"
            assert [(c[0], c[1]) for c in cues[0]["cues"]] == windows
            assert [c[2] for c in cues[0]["cues"]] == ["first <second>", "[error]", "third & more", "last"]

            tab.evaluate("document.getElementById('player').muted = true; document.getElementById('player').play()")
            tab.wait_for_function("document.getElementById('player').currentTime > 1.2", timeout=20_000)
            assert tab.evaluate("document.getElementById('player').error") is None
            tab.wait_for_function("document.getElementById('cue').textContent.length > 0", timeout=10_000)

            tab.select_option("#track", "1")  # the other model's timeline
            modes = tab.evaluate("Array.from(document.getElementById('player').textTracks).map(t => t.mode)")
            assert modes == ["disabled", "showing"]
            tab.wait_for_function("document.getElementById('cue').textContent === 'another model'", timeout=10_000)
            tab.screenshot(path=str(tmp_path / "player.png"))
            assert errors == []
        finally:
            browser.close()
