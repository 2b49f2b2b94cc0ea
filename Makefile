# fastgeo: `make demo` and `make test` work on a fresh machine with Python 3.11 and make.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: demo test venv dev clean peers bench bench-save bench-compare \
	asv-machine asv-quick asv asv-compare asv-html

$(VENV)/.stamp-base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[plot]'
	touch $@

$(VENV)/.stamp-dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	touch $(VENV)/.stamp-base $@

venv: $(VENV)/.stamp-base
dev: $(VENV)/.stamp-dev

demo: $(VENV)/.stamp-base
	$(VENV)/bin/fastgeo reproduce --plots figures
	@echo "figures: $(CURDIR)/figures/*.png"

test: $(VENV)/.stamp-dev
	$(PY) -m numba -s | grep -iE 'numba version|llvmlite|svml|threading layer' || true
	$(PY) -m pytest -q
	NUMBA_DISABLE_JIT=1 $(PY) -m pytest -q -m kernels -p no:randomly
	# out-of-bounds indexing raises instead of corrupting memory; own cache folder, since
	# cached machine code compiled without bounds checks would otherwise be reused
	NUMBA_BOUNDSCHECK=1 NUMBA_CACHE_DIR=$(VENV)/numba-boundscheck-cache \
		$(PY) -m pytest -q -m kernels -p no:randomly
	# the kernels assume no instruction set: compiled for plain x86-64 (SSE2, no AVX or FMA)
	NUMBA_CPU_NAME=generic NUMBA_CACHE_DIR=$(VENV)/numba-generic-cache \
		$(PY) -m pytest -q -m kernels -p no:randomly

# Peers (torch 2.13.0 CPU, jax, onnx, onnxruntime) for the side-by-side benchmarks.
$(VENV)/.stamp-peers: $(VENV)/.stamp-dev
	$(PIP) install -q -e '.[dev,peers]'
	touch $@

peers: $(VENV)/.stamp-peers

BENCH := $(PY) -m pytest tests/bench --benchmark-only --benchmark-group-by=group \
	--benchmark-columns=min,median,ops,rounds --benchmark-sort=min

bench: $(VENV)/.stamp-peers
	$(BENCH)

bench-save: $(VENV)/.stamp-peers
	$(BENCH) --benchmark-autosave

bench-compare: $(VENV)/.stamp-peers
	$(BENCH) --benchmark-compare --benchmark-compare-fail=median:25%

# asv (benchmarks/, asv.conf.json; docs/benchmarking.md, "Tracking performance with asv"). asv-quick runs
# the suite once in .venv (working tree, results not saved); asv, asv-compare and asv-html
# use asv's own environments under .asv/ and need the full git history and a local main.
ASV  := $(VENV)/bin/asv
BASE ?= main

asv-machine: $(VENV)/.stamp-dev
	test -f $(HOME)/.asv-machine.json || $(ASV) machine --yes

asv-quick: asv-machine
	$(ASV) check --python=same
	$(ASV) run --python=same --quick --dry-run --show-stderr

asv: asv-machine
	$(ASV) run --show-stderr HEAD^!

asv-compare: asv-machine
	$(ASV) continuous --factor 1.25 --show-stderr $(BASE) HEAD

asv-html: asv-machine
	$(ASV) publish
	$(ASV) preview

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
