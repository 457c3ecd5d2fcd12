# Two commands do all the set-up: `make demo` and `make test`. Each creates or refreshes .venv from the
# pinned requirements.lock (exact versions of everything), then runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.8
# uv lives beside the environment, not in it: `uv pip sync` removes every package the lock does not name.
UV := $(VENV)/.tools/bin/uv

.PHONY: demo demo-full test test-all venv lock bench lab clean-outputs

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed, found " + sys.version.split()[0]'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(PYTHON) -m pip install -q --disable-pip-version-check --target $(VENV)/.tools uv==$(UV_VERSION)
	$(UV) pip sync -q --python $(BIN)/python requirements.lock
	$(UV) pip install -q --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m workbench demo

# The short demo, then the longer runs (sweeps, every family, real footage): about half an hour on 2 cores.
demo-full: $(STAMP)
	$(BIN)/python -m workbench demo --full

# Two workers, each test file on one of them (its module fixtures load once); the tests marked slow are left
# out: `make test-all` (what .ci/run does) runs them after.
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile

test-all: test
	$(BIN)/python -m pytest -n 2 --dist loadfile -m slow --durations=15

bench: $(STAMP)
	for script in benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

# Re-resolve requirements.lock from pyproject.toml (then commit it).
lock: $(STAMP)
	$(UV) pip compile pyproject.toml --extra dev --extra ray --extra footage --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 -o requirements.lock

clean-outputs:
	find outputs -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
