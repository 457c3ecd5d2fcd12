"""A time limit for a headless run, and the kernel's Python stacks at the moment it ends one.

Some hangs raise nothing: native code that deadlocks or spins while holding the GIL (video decoders have such
bugs), a kernel waiting for something that never answers. A cell timeout cannot see where; with a time limit
(`python -m workbench run --time-limit`, `make demo`'s `time_limit_s`) the runner's watchdog thread, when the
limit passes, asks the kernel for the Python stack of every thread (faulthandler, registered for SIGUSR1 as the
kernel starts: it answers from a C signal handler, even while native code holds the GIL), writes them to the run
folder's `stacks.txt`, and kills the kernel and everything it started. The run is sealed as 'timeout' with an
error naming the cell line and the innermost frame the notebook was in.
"""

from __future__ import annotations

import os
import re
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from workbench import paths

STACKS_NAME = "stacks.txt"
# A cell's code as the kernel runs it: /tmp/ipykernel_<pid>/<hash>.py
_CELL_FILE = re.compile(r'File "[^"]*ipykernel_\d+/\d+\.py", line (\d+)')
_FRAME = re.compile(r'File "([^"]+)", line (\d+) in (\S+)')


def format_limit(seconds: float) -> str:
    """The limit in a reader's units.

    >>> format_limit(600), format_limit(90), format_limit(2.5)
    ('10 min', '90 s', '2.5 s')
    """
    if seconds >= 120 and seconds % 60 == 0:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:g} s"


def short_paths(text: str) -> str:
    """Stacks without this machine's folders: the repository's files relative to it, installed packages from
    their `site-packages/`, the standard library from `python3.X/`.

    >>> short_paths('File "/opt/py/lib/python3.11/site-packages/av/open.py", line 3')
    'File "site-packages/av/open.py", line 3'
    >>> short_paths('File "/usr/lib/python3.11/threading.py", line 1045')
    'File "python3.11/threading.py", line 1045'
    """
    text = text.replace(f"{paths.REPO_ROOT}{os.sep}", "")
    text = re.sub(r'"[^"]*?/(site-packages|dist-packages)/', r'"\1/', text)
    text = re.sub(r'"[^"]*?/(python3\.\d+)/', r'"\1/', text)
    return re.sub(r'"[^"]*?/(ipykernel_\d+/)', r'"\1', text)


def cell_thread(stacks: str) -> str | None:
    """The stack of the kernel thread that was running a cell, from a stacks.txt or a faulthandler dump."""
    return next((block.strip() for block in stacks.split("\n\n") if _CELL_FILE.search(block)), None)


def where(stacks: str) -> str | None:
    """Where the notebook was in a faulthandler dump: the cell line and the innermost frame of the thread
    running the cell (None when no thread was in a cell).

    >>> dump = '''Thread 0x1 (most recent call first):
    ...   File "site-packages/zmq/sugar/__init__.py", line 21 in device
    ...
    ... Current thread 0x2 (most recent call first):
    ...   File "<frozen importlib._bootstrap>", line 241 in _call_with_frames_removed
    ...   File "workbench/video.py", line 801 in _decode
    ...   File "/tmp/ipykernel_7/123.py", line 4 in <module>
    ...   File "site-packages/IPython/core/interactiveshell.py", line 3823 in run_code'''
    >>> where(dump)
    'cell line 4, in _decode (workbench/video.py:801)'
    """
    block = cell_thread(stacks)
    if block is not None:
        cell = _CELL_FILE.search(block)
        innermost = next((f for f in _FRAME.finditer(block) if not f.group(1).startswith("<frozen")), None)
        text = f"cell line {cell.group(1)}"
        if innermost and innermost.start() < cell.start():
            file, line, function = innermost.groups()
            text += f", in {function} ({file}:{line})"
        return text
    return None


class Watchdog:
    """Ends a run at its time limit: `kernel_arguments()` go to the kernel's command line, `start()` when the
    kernel is about to start, `stop()` when the run ended; `fired` and `error` say whether it ended the run.

    `limit_s` (> 0, checked by the runner before the run folder is made); `children()` lists the processes the
    run started (its kernel among them); `kill(pid)` kills one and all below it.
    """

    def __init__(self, limit_s: float, run_dir: Path, children: Callable[[], list[Any]],
                 kill: Callable[[int], Any]):
        self.limit_s = float(limit_s)
        self.run_dir = Path(run_dir)
        self.children = children
        self.kill = kill
        self.fired = False
        self.where: str | None = None
        handle, name = tempfile.mkstemp(prefix="workbench-stacks-", suffix=".txt")
        os.close(handle)
        self._dump = Path(name)  # the kernel appends its stacks here; moved into the run folder, shortened
        self._lock = threading.Lock()
        self._stopped = False
        self._timer = threading.Timer(self.limit_s, self._fire)
        self._timer.daemon = True

    def kernel_arguments(self) -> list[str]:
        """IPython kernel options that register faulthandler for SIGUSR1, writing to this watchdog's file."""
        code = (f"import faulthandler as _f, signal as _s; _f.register(_s.SIGUSR1, file=open({str(self._dump)!r}, "
                f"'a'), all_threads=True); del _f, _s")
        return [f"--IPKernelApp.code_to_run={code}"]

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        """The run ended (or the limit's work is done): no firing from now on; the kernel's file removed."""
        with self._lock:
            self._stopped = True
            fired = self.fired
        self._timer.cancel()
        if fired and self._timer is not threading.current_thread():
            self._timer.join()  # the stacks are written and the kernel killed before the file goes
        self._dump.unlink(missing_ok=True)

    @property
    def error(self) -> str:
        at = f"; it was at {self.where}" if self.where else ""
        return (f"the run passed its time limit of {format_limit(self.limit_s)} and was stopped{at} (the Python "
                f"stacks of its kernel: {STACKS_NAME} in the run folder)")

    def _fire(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self.fired = True
        kernels = [p for p in self.children() if _is_kernel(p)]
        for kernel in kernels:
            try:
                os.kill(kernel.pid, signal.SIGUSR1)
            except OSError:
                pass
        kernel_text = self._wait_for_dump() if kernels else ""
        self.where = where(kernel_text)
        sections = [f"# The run passed its time limit of {format_limit(self.limit_s)}. Python stacks, most recent "
                    f"call first.", "## The kernel", kernel_text.strip() or "(no kernel was running, or it did "
                    "not answer)"]
        runner = _own_stacks()
        sections += ["## The runner (papermill's side)", runner.strip()]
        (self.run_dir / STACKS_NAME).write_text(short_paths("\n\n".join(sections)) + "\n", encoding="utf-8")
        for process in self.children():
            self.kill(process.pid)

    def _wait_for_dump(self, wait_s: float = 5.0) -> str:
        """The kernel's dump once it stops growing (a few ms; up to `wait_s`)."""
        deadline = time.monotonic() + wait_s
        size = -1
        while time.monotonic() < deadline:
            time.sleep(0.2)
            now = self._dump.stat().st_size if self._dump.exists() else 0
            if now and now == size:
                break
            size = now
        return self._dump.read_text(encoding="utf-8", errors="replace") if self._dump.exists() else ""


def _is_kernel(process: Any) -> bool:
    try:
        return any("ipykernel" in part for part in process.cmdline())
    except Exception:
        return False


def _own_stacks() -> str:
    """This process's threads, as faulthandler writes them."""
    import faulthandler

    with tempfile.TemporaryFile(mode="w+") as handle:
        faulthandler.dump_traceback(handle, all_threads=True)
        handle.seek(0)
        return handle.read()

