"""What a run records about itself: code version, software, hardware, inputs, timing, outcome.

Nothing from the environment is copied wholesale: the manifest names versions and hardware, and
`redact` removes the values of secret-looking environment variables from any text written to a run
folder, so an HF token never lands in a shared notebook.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from workbench.paths import REPO_ROOT

MANIFEST_VERSION = 1
PACKAGES = ("workbench", "torch", "torchvision", "transformers", "accelerate", "bitsandbytes", "decord2",
            "av", "papermill", "numpy", "pandas")
# Environment variables whose values must never be written anywhere.
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|CREDENTIAL|API_?KEY|ACCESS_KEY|PRIVATE", re.IGNORECASE)
# Environment variables worth recording (they change results), by exact name.
RECORDED_ENV = ("CUDA_VISIBLE_DEVICES", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "OMP_NUM_THREADS",
                "PYTORCH_CUDA_ALLOC_CONF", "CUBLAS_WORKSPACE_CONFIG")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def describe_input(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        digest = hashlib.sha256()
        for file in files:
            digest.update(str(file.relative_to(path)).encode())
            digest.update(sha256_file(file).encode())
        return {"path": str(path), "kind": "folder", "files": len(files), "sha256": digest.hexdigest()}
    return {"path": str(path), "kind": "file", "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def git_state(repo: Path = REPO_ROOT) -> dict[str, Any]:
    """Commit and dirty flag of the code that ran (None where this is not a git checkout)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              check=True, timeout=20).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (subprocess.SubprocessError, FileNotFoundError, OSError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def hardware(probe_gpu: bool = True) -> dict[str, Any]:
    """CPU model, cores, RAM and (if torch sees one) each GPU with its memory."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "ram_bytes": _ram_bytes(),
        "gpus": [],
    }
    if probe_gpu:
        try:
            import torch

            if torch.cuda.is_available():
                for index in range(torch.cuda.device_count()):
                    props = torch.cuda.get_device_properties(index)
                    info["gpus"].append({"name": props.name, "memory_bytes": int(props.total_memory),
                                         "capability": f"{props.major}.{props.minor}"})
            info["cuda"] = torch.version.cuda
        except ImportError:
            pass
    return info


def recorded_environment() -> dict[str, str]:
    return {name: os.environ[name] for name in RECORDED_ENV if name in os.environ}


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values of secret-looking environment variables (long enough to be worth hiding), longest first."""
    environ = dict(os.environ if environ is None else environ)
    values = {v for k, v in environ.items() if SECRET_NAME.search(k) and len(v) >= 6}
    values |= {v for v in environ.values() if v.startswith("hf_") and len(v) >= 10}
    return sorted(values, key=len, reverse=True)


def redact(text: str, secrets: list[str] | None = None) -> str:
    """Replace every secret value in `text` with '[redacted]'.

    >>> redact("token=hf_abcdefghijk used", ["hf_abcdefghijk"])
    'token=[redacted] used'
    """
    for secret in secret_values() if secrets is None else secrets:
        text = text.replace(secret, "[redacted]")
    return text


def start_manifest(notebook: str, parameters: dict[str, Any], run_id: str, runner: str,
                   inputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "manifest_version": MANIFEST_VERSION,
        "run_id": run_id,
        "notebook": notebook,
        "runner": runner,
        "status": "running",
        "error": None,
        "parameters": parameters,
        "seed": parameters.get("seed"),
        "git": git_state(),
        "versions": package_versions(),
        "hardware": hardware(),
        "environment": recorded_environment(),
        "inputs": inputs or [],
        "started_at": now_iso(),
        "ended_at": None,
        "duration_s": None,
        "pid": os.getpid(),
        "argv": [redact(a) for a in sys.argv],
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
