# Two entry points for a fresh machine (both idempotent, both install what they need):
#   make demo   - a writer and a reader process streaming, printing live throughput
#   make test   - C++ unit tests and the Python conformance suite
# Other targets: make bench (end-to-end and micro benchmarks), make tsan / make asan (the
# C++ tests under ThreadSanitizer / AddressSanitizer), make clean.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
JOBS ?= 2
APT_PACKAGES := libfabric-dev libfabric-bin libhwy-dev libbenchmark-dev libgtest-dev \
                libgmock-dev libzstd-dev liblz4-dev
PIP_PACKAGES := scikit-build-core pybind11 numpy ninja cmake pytest pytest-timeout hypothesis \
                mpich==5.0.2 mpi4py
BENCH_PIP_PACKAGES := adios2 matplotlib
STAMP := $(VENV)/.twinstream-deps
CPP_BUILD := build/cpp

.PHONY: all deps apt-deps build install cpp test test-cpp test-python demo bench tsan asan clean

all: build

# System packages: installed only when missing (root or sudo needed then).
apt-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(STAMP): Makefile | apt-deps
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(PIP_PACKAGES)
	touch $(STAMP)

deps: apt-deps $(STAMP)

# The Python package (with the C++ library, headers and CMake package inside it).
install: deps
	$(PIP) install -q --no-build-isolation .

build: install

# C++ unit tests, built against the same sources.
cpp: deps
	$(VENV)/bin/cmake -S . -B $(CPP_BUILD) -G Ninja -DCMAKE_MAKE_PROGRAM=$(abspath $(VENV))/bin/ninja \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTWINSTREAM_BUILD_TESTS=ON -DTWINSTREAM_BUILD_BENCH=ON >/dev/null
	$(VENV)/bin/cmake --build $(CPP_BUILD) -j $(JOBS)

test-cpp: cpp
	cd $(CPP_BUILD) && ../../$(VENV)/bin/ctest --output-on-failure --timeout 120

test-python: install
	$(PY) -m pytest tests/python

test: test-cpp test-python

demo: install
	$(PY) examples/demo.py

bench: install cpp
	$(PIP) install -q $(BENCH_PIP_PACKAGES)
	$(PY) bench/run_all.py

# Sanitizer runs of the C++ tests (the stream tests run writer, service and reader threads).
tsan asan: deps
	PATH=$(abspath $(VENV))/bin:$$PATH cmake --preset $@ -DCMAKE_MAKE_PROGRAM=$(abspath $(VENV))/bin/ninja >/dev/null
	PATH=$(abspath $(VENV))/bin:$$PATH cmake --build build/$@ -j $(JOBS)
	cd build/$@ && TSAN_OPTIONS="suppressions=$(abspath tests/cpp/tsan.supp) halt_on_error=1" \
	  ../../$(VENV)/bin/ctest --output-on-failure --timeout 300

clean:
	rm -rf build dist *.egg-info
