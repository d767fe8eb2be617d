# Quick start: `make run` (daemon in the foreground, SQLite under ./var) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.deps-installed
NODE_CLIENTS := tests/node/node_modules/.package-lock.json
PYTEST_ARGS ?=

.PHONY: setup run test lint bench crash-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Dependencies are reinstalled only when the packaging files change.
$(STAMP): setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q '.[test,lint]'
	touch $(STAMP)

# POS client libraries from the npm registry that tests print with (tests/node/package.json).
$(NODE_CLIENTS): tests/node/package.json tests/node/package-lock.json
	npm ci --prefix tests/node --no-audit --no-fund --loglevel=error

# The PNG renderer's CJK glyphs (Debian's fonts-droid-fallback); without it PNGs draw boxes.
CJK_FONT := /usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf

# The package itself is reinstalled every time so the twistd plugin matches the source tree.
setup: $(STAMP) $(CJK_FONT) $(NODE_CLIENTS)
	$(BIN)/pip install -q --no-deps --no-build-isolation --force-reinstall .
	@rm -rf build

$(CJK_FONT):
	$$([ "$$(id -u)" -eq 0 ] || echo sudo) apt-get install -y -qq fonts-droid-fallback \
	    || echo "could not install fonts-droid-fallback: PNG renderings will draw CJK as boxes"

run: setup
	mkdir -p var
	$(BIN)/twistd --nodaemon --pidfile= printerd

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Types (mypy, with the zope plugin for interfaces) and ruff's checks, both as configured.
lint: setup
	$(BIN)/ruff check src tests bench twisted
	$(BIN)/mypy

bench: setup
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build src/*.egg-info tests/node/node_modules
