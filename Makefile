# The two commands of the README: `make demo` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LIB := keras_pkkd/ops/_adder_ops.so
STAMP := $(VENV)/.requirements-installed
CORE_SOURCES := $(wildcard custom_ops/adder/cc/kernels/*) $(wildcard custom_ops/adder/cc/ops/*) custom_ops/build.py
# The TFLite kernel (external delegate) for exported models: no TensorFlow inside.
DELEGATE := keras_pkkd/export/_adder_delegate.so
DELEGATE_SOURCES := $(wildcard custom_ops/adder/cc/kernels/*) $(wildcard export/tflite/*) export/build.py

.PHONY: venv build test demo bench bench-loop clean results

venv: $(STAMP) $(LIB) $(DELEGATE)

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e . \
	  || echo "note: editable install skipped; the checkout is used from the repo root"
	@touch $(STAMP)

$(LIB): $(STAMP) $(CORE_SOURCES)
	$(PY) custom_ops/build.py

$(DELEGATE): $(STAMP) $(DELEGATE_SOURCES)
	$(PY) export/build.py

build: $(STAMP)
	$(PY) custom_ops/build.py
	$(PY) export/build.py

test: venv
	$(PY) -m pytest tests -q

demo: venv
	$(PY) -m keras_pkkd.demo

# Issue #12's evidence runs (experiments/plan.py; hours on a CPU, resumable: rerun to continue),
# then the feature-space numbers of the finished networks and docs/results.md from the finished
# runs. The report is written even when a run crashed.
results: venv
	$(PY) -m experiments.run; status=$$?; $(PY) -m experiments.features; \
	$(PY) -m experiments.report && exit $$status

bench: venv
	$(PY) benchmarks/bench_adder_op.py

# The kernels' inner loops against conv's, registers and L1 only (no TensorFlow needed).
bench-loop:
	@mkdir -p build
	$(CXX) -O2 -std=c++17 -mavx512f -mavx512dq -mfma -o build/bench_inner_loop \
	  benchmarks/bench_inner_loop.cc
	build/bench_inner_loop

clean:
	rm -rf build $(LIB) keras_pkkd/ops/_adder_ops.json $(DELEGATE)
