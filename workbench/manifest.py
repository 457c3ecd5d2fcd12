"""What a run records about itself: code version, software, hardware, inputs, timing, outcome.

Nothing from the environment is copied wholesale: the manifest names versions and hardware, and
`redact` removes the values of secret-looking environment variables from any text written to a run
folder, so an HF token never lands in a shared notebook.
"""

from __future__ import annotations

import hashlib
import json
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
# Environment variables whose values must never be written anywhere (TOKENIZERS_PARALLELISM is a setting).
SECRET_NAME = re.compile(r"TOKEN(?!IZER)|SECRET|PASSW|CREDENTIAL|API_?KEY|ACCESS_KEY|PRIVATE", re.IGNORECASE)
# The floor: a secret-named variable's value is redacted from this length on. Shorter values (and flag
# words such as "true" or "0") cannot be told apart from ordinary text, so they are not searched for.
MIN_SECRET_LENGTH = 3
FLAG_WORDS = {"true", "false", "yes", "no", "on", "off", "none", "null", "1", "0"}
REDACTED = "[redacted]"
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
        changes = [line for line in git("status", "--porcelain", "--untracked-files=all").splitlines() if line]
    except (subprocess.SubprocessError, FileNotFoundError, OSError):
        return {"commit": None, "dirty": None}
    untracked = sum(line.startswith("??") for line in changes)
    # an untracked notebook or module changes what runs as much as an edited one (ignored files do not count)
    return {"commit": commit, "dirty": bool(changes), "modified_files": len(changes) - untracked,
            "untracked_files": untracked}


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
    """Values of secret-looking environment variables, longest first: every value of a secret-named
    variable from MIN_SECRET_LENGTH characters (flag words aside), and any value that looks like an HF token."""
    environ = dict(os.environ if environ is None else environ)
    values = {v.strip() for k, v in environ.items()
              if SECRET_NAME.search(k) and len(v.strip()) >= MIN_SECRET_LENGTH and v.strip().lower() not in FLAG_WORDS}
    values |= {v for v in environ.values() if v.startswith("hf_") and len(v) >= 10}
    return sorted(values, key=len, reverse=True)


def escaped_forms(secret: str) -> list[str]:
    """The secret as it appears after the escaping that writing it changes: in a Python string literal
    (papermill's injected parameters), inside a JSON string (also ASCII-only JSON), in HTML text or
    attributes, and the combinations (a notebook's JSON shown in HTML), longest first.

    >>> sorted(escaped_forms('a"b<c'), key=len)[:3]
    ['a"b<c', 'a\\\\"b<c', 'a"b&lt;c']
    """
    import html

    forms = {secret, repr(secret)[1:-1]}  # papermill injects parameters as Python literals
    forms |= {json.dumps(f, ensure_ascii=a)[1:-1] for f in list(forms) for a in (True, False)}
    for form in list(forms):
        forms |= {html.escape(form, quote=True), html.escape(form, quote=False),
                  html.escape(form, quote=True).replace("&#x27;", "&#39;")}
    return sorted(forms, key=lambda f: (-len(f), f))


def redact(text: str, secrets: list[str] | None = None) -> str:
    """Replace every secret value in `text`, also in its JSON- and HTML-escaped forms, with '[redacted]'.

    >>> redact("token=hf_abcdefghijk used", ["hf_abcdefghijk"])
    'token=[redacted] used'
    >>> redact('{"p": "say a\\"b&lt;"}', ['a"b<'])
    '{"p": "say [redacted]"}'
    """
    for secret in secret_values() if secrets is None else secrets:
        for form in escaped_forms(secret):
            if form in text:
                text = text.replace(form, REDACTED)
    return text


def redact_value(value: Any, secrets: list[str] | None = None) -> Any:
    """A copy of a JSON-like value with every secret removed from its strings (keys too).

    >>> redact_value({"prompt": "use hf_abcdefghijk", "n": [1, "hf_abcdefghijk"]}, ["hf_abcdefghijk"])
    {'prompt': 'use [redacted]', 'n': [1, '[redacted]']}
    """
    secrets = secret_values() if secrets is None else secrets
    if not secrets:
        return value
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {redact_value(k, secrets): redact_value(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v, secrets) for v in value]
    return value


def write_manifest(path: str | Path, record: dict[str, Any]) -> Path:
    """Write a manifest (or any record) as strict JSON with every secret removed from its strings:
    parameters and overrides can hold a token typed into a prompt as well as argv can."""
    from workbench import atomic

    secrets = secret_values()
    return atomic.write_text(path, redact(atomic.dumps_strict(redact_value(record, secrets)), secrets) + "\n")


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
        "pid_started": _process_started(),
        "host": platform.node(),
        "argv": [redact(a) for a in sys.argv],
    }


def _process_started() -> float | None:
    """This process's start time (seconds since the epoch), to tell it from a later one with the same pid."""
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:  # no psutil, or no /proc: the pid alone is recorded
        return None


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
