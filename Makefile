# The two commands of the README. Both install everything they need into .venv first.
#   make run    install, build or update the index, open the web chat
#   make test   install, then run the whole test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 7860

.PHONY: run test install browser lint eval

install: $(VENV)/.installed

# torch first, pinned to the CPU build on this machine's disk: a plain `torch` requirement
# would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

browser:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

run: install
	$(BIN)/chatbot serve --host $(HOST) --port $(PORT)

test: install browser
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check chatbot tests scripts evaluation
	$(BIN)/mypy

eval: install
	$(BIN)/chatbot eval --mode all
