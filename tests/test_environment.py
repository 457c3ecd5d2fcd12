"""The pins stay in step: pyproject's direct dependencies, requirements.lock and environment.yml."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import tomllib

import yaml

from workbench import paths

ROOT = paths.REPO_ROOT


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def _direct_dependencies() -> dict[str, str | None]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    deps = project["dependencies"] + extras["dev"] + extras["footage"]
    out = {}
    for dep in deps:
        match = re.match(r"^([A-Za-z0-9_.\-]+)(?:==([^\s;]+))?", dep)
        out[match.group(1).lower()] = match.group(2)
    return out


def _environment_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "-e ." in pip_section, "environment.yml must install the package with `-e .`"
    return {name.lower(): version for name, version in
            (line.split("==") for line in pip_section if "==" in line)}


def test_lock_pins_every_direct_dependency_at_pyproject_version():
    lock = _lock()
    for name, version in _direct_dependencies().items():
        assert name in lock, f"{name} missing from requirements.lock"
        if version:
            assert lock[name] == version, f"{name}: pyproject {version} != lock {lock[name]}"


def test_environment_yml_has_the_lock_versions_of_all_direct_dependencies():
    lock, env = _lock(), _environment_pins()
    assert set(_direct_dependencies()) <= set(env), set(_direct_dependencies()) - set(env)
    for name, version in env.items():
        assert lock.get(name) == version, f"environment.yml {name}=={version}, lock has {lock.get(name)}"


def test_installed_versions_match_the_lock():
    from importlib import metadata

    lock = _lock()
    for name in ("torch", "transformers", "bitsandbytes", "decord2", "papermill", "webvtt-py"):
        assert metadata.version(name).split("+")[0] == lock[name].split("+")[0], name


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_cli_help_is_fast_and_lists_commands():
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "workbench", "--help"], capture_output=True, text=True,
                          timeout=60)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0
    for command in ("run", "params", "demo", "probe-videos", "models"):
        assert command in proc.stdout
    assert "torch" not in sys.modules or elapsed < 10  # heavy imports stay inside commands
    check = subprocess.run([sys.executable, "-c", "import sys, workbench.__main__; "
                            "print(sorted(m for m in ('torch', 'transformers', 'decord') if m in sys.modules))"],
                           capture_output=True, text=True, timeout=60)
    assert check.stdout.strip() == "[]"
