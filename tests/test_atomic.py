"""Atomic writes: a killed or failing writer never leaves a half-written file that reads as valid."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import pytest

from workbench import atomic


def test_exception_mid_write_leaves_old_content_and_no_temp(tmp_path):
    target = tmp_path / "results.json"
    atomic.write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text('{"v": 2, "partial')
            raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_sigkill_mid_write_never_exposes_partial_file(tmp_path):
    target = tmp_path / "table.csv"
    script = textwrap.dedent(f"""
        import sys, time
        from workbench import atomic
        with atomic.atomic_path({str(target)!r}) as tmp:
            with open(tmp, "w") as handle:
                handle.write("a,b\\n1,")
                handle.flush()
                print("half-written", flush=True)
                time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "half-written"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert not target.exists()
    leftovers = list(tmp_path.iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".table.csv.") and leftovers[0].name.endswith(".tmp")


def test_atomic_dir_only_appears_complete(tmp_path):
    target = tmp_path / "twin"
    with pytest.raises(RuntimeError):
        with atomic.atomic_dir(target) as tmp:
            (tmp / "config.json").write_text("{}")
            raise RuntimeError("fabrication failed")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic.atomic_dir(target) as tmp:
        (tmp / "config.json").write_text("{}")
    assert (target / "config.json").read_text() == "{}"


def test_atomic_dir_replace_swaps_whole_folders(tmp_path):
    target = tmp_path / "twin"
    target.mkdir()
    (target / "old.safetensors").write_text("old")
    with atomic.atomic_dir(target) as tmp:  # the default: a finished folder wins
        (tmp / "new.safetensors").write_text("new")
    assert [p.name for p in target.iterdir()] == ["old.safetensors"]
    with pytest.raises(RuntimeError):
        with atomic.atomic_dir(target, replace=True) as tmp:
            (tmp / "new.safetensors").write_text("new")
            raise RuntimeError("training failed")
    assert [p.name for p in target.iterdir()] == ["old.safetensors"]
    with atomic.atomic_dir(target, replace=True) as tmp:
        (tmp / "new.safetensors").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["twin"]  # no hidden .tmp or .old folder left


def test_finished_files_get_ordinary_permissions(tmp_path):
    import os
    import stat

    mask = os.umask(0o022)
    try:
        path = atomic.write_text(tmp_path / "shared.csv", "a\n")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
