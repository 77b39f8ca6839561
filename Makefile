# hud-ray: `make demo` runs a real eval offline on local Ray; `make test` runs the suite.
# The first Python 3.12 that actually runs (a pyenv shim on PATH may exist and fail).
PYTHON ?= $(shell for c in python3.12 $(HOME)/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12 python3; do \
  $$c -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1 && { command -v $$c || echo $$c; } && break; done)
VENV   ?= .venv
BIN    := $(VENV)/bin
export RAY_AUTH_MODE ?= disabled
export RAY_USAGE_STATS_ENABLED ?= 0

.PHONY: setup system-deps hud-venv demo test lint typecheck bench bench-quick clean

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "hud-ray needs Python 3.12: none found that runs; set PYTHON=/path/to/python3.12" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	PYTHONWARNINGS=ignore $(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

# Debian packages the ssh sandboxes, browser and image tests need (root or sudo).
system-deps:
	@if command -v apt-get >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq bubblewrap openssh-client procps util-linux python3 python3-pytest slirp4netns nftables iproute2 chromium buildah debootstrap >/dev/null; \
	  $$SUDO install -D -m 0644 configs/chromium-policy.json /etc/chromium/policies/managed/hud-ray.json; \
	fi

demo: setup
	$(BIN)/hud-ray eval tasksets/letters.py oracle --group-size 4 --out runs/demo-$$(date +%s)

# Tests that start their own Ray clusters run as a second step, never beside the first's Ray;
# the image test (Dockerfile.hud built with buildah, hud-ray eval inside) as a third.
test: setup system-deps hud-venv
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not cluster and not image"
	$(BIN)/python -m pytest -q -p no:cacheprovider -m cluster
	$(BIN)/python -m pytest -q -p no:cacheprovider -m image

# The real HUD SDK in its own venv: tests/hud_compat compares hud-ray's rewards with it
# row by row (and the benchmarks' side-by-side uses it). Skipped by those tests if absent.
HUD_VENV ?= benchmarks/.hud-venv
hud-venv: $(HUD_VENV)/.installed

$(HUD_VENV)/.installed:
	@test -n "$(PYTHON)" || { echo "hud-venv needs Python 3.12; set PYTHON=/path/to/python3.12" >&2; exit 1; }
	$(PYTHON) -m venv $(HUD_VENV)
	$(HUD_VENV)/bin/pip install --quiet hud==0.6.21 typer==0.20.0
	touch $@

lint: setup
	$(BIN)/ruff check hud_ray actors tests benchmarks

typecheck: setup
	$(BIN)/mypy hud_ray actors

bench: setup
	$(BIN)/python -m benchmarks.run --full

bench-quick: setup
	$(BIN)/python -m benchmarks.run --quick

clean:
	rm -rf $(VENV) runs .pytest_cache
