# Quick start: `make run` (daemon in the foreground, SQLite under ./var) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.deps-installed
NODE_CLIENTS := tests/node/node_modules/.package-lock.json
PYTEST_ARGS ?=

.PHONY: setup run test lint lock bench crash-test clean

# Exact versions with hashes: dev.lock (runtime, test and lint extras, build tools) for make
# setup and CI; runtime.lock (the same versions: runtime and build tools) for the container image.
DEV_LOCK     := requirements/dev.lock
RUNTIME_LOCK := requirements/runtime.lock
COMPILE      := $(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras \
                --no-emit-index-url --no-emit-find-links

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Dependencies are reinstalled only when the lock changes; a lock older than setup.cfg's
# dependencies stops here (make lock refreshes it).
$(STAMP): setup.cfg pyproject.toml $(DEV_LOCK) $(RUNTIME_LOCK) | $(BIN)/python
	$(PYTHON) requirements/lockcheck.py check $(DEV_LOCK) $(RUNTIME_LOCK)
	$(BIN)/pip install -q --require-hashes -r $(DEV_LOCK)
	touch $(STAMP)

# POS client libraries from the npm registry that tests print with (tests/node/package.json).
$(NODE_CLIENTS): tests/node/package.json tests/node/package-lock.json
	npm ci --prefix tests/node --no-audit --no-fund --loglevel=error

# The PNG renderer's fonts for what DejaVu Sans Mono lacks (Debian's packages): Hebrew and
# Arabic, CJK and half-width kana, Thai.  Without them PNGs draw those characters as boxes.
FALLBACK_FONTS := /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf \
    /usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf \
    /usr/share/fonts/truetype/tlwg/TlwgMono.ttf
FONT_PACKAGES := fonts-dejavu-core fonts-droid-fallback fonts-tlwg-mono-ttf

# The package itself is reinstalled every time so the twistd plugin matches the source tree.
setup: $(STAMP) $(FALLBACK_FONTS) $(NODE_CLIENTS)
	$(BIN)/pip install -q --no-deps --no-build-isolation --force-reinstall .
	@rm -rf build

$(FALLBACK_FONTS):
	$$([ "$$(id -u)" -eq 0 ] || echo sudo) apt-get install -y -qq $(FONT_PACKAGES) \
	    || echo "could not install $(FONT_PACKAGES): PNG renderings will draw boxes for" \
	        "the scripts only they have"

run: setup
	mkdir -p var
	$(BIN)/printerd run

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Types (mypy, with the zope plugin for interfaces) and ruff's checks, both as configured.
lint: setup
	$(BIN)/ruff check src tests bench twisted
	$(BIN)/mypy

# Re-resolves every dependency to its newest allowed version and rewrites both locks.
lock: | $(BIN)/python
	$(BIN)/pip install -q 'pip-tools>=7.4'
	$(COMPILE) --extra test --extra lint -o $(DEV_LOCK) setup.cfg requirements/build.in
	$(COMPILE) -c $(DEV_LOCK) -o $(RUNTIME_LOCK) setup.cfg requirements/build.in
	$(PYTHON) requirements/lockcheck.py stamp $(DEV_LOCK) $(RUNTIME_LOCK)

bench: setup
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build src/*.egg-info tests/node/node_modules
