# Two commands for a fresh machine: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
ARCH   := $(shell uname -m)
# torch wheels that install offline-first on this machine family (see ../shared/FIELD.md)
ifeq ($(ARCH),aarch64)
TORCH_PINS := torch==2.9.1 torchvision==0.24.1
else
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
endif
STAMP := $(VENV)/.cnnviz-setup

.PHONY: setup system demo demo-full test test-fast clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e '.[dev,weights,tensorboard]'
	touch $(STAMP)

# Debian packages: Fashion-MNIST files and Chromium for the browser tests (skipped when present).
system:
	@if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || [ ! -x /usr/bin/chromium ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist chromium >/dev/null; \
	  else echo "note: install the Debian packages dataset-fashion-mnist and chromium for the full suite" >&2; fi; \
	fi

setup: $(STAMP) system

# CIFAR-10 from the shared offline archive when it is there; else `--data auto` tries a download, then Fashion-MNIST.
DEMO_DATA := $(if $(wildcard ../shared/data/cifar10-jpeg.tar.gz),--data-root ../shared/data,)

demo: setup
	$(VENV)/bin/cnnviz demo --quick $(DEMO_DATA) --out demo-out

demo-full: setup
	$(VENV)/bin/cnnviz demo $(DEMO_DATA) --out demo-full

test: setup
	$(PY) -m pytest -q -p no:cacheprovider

test-fast: setup
	$(PY) -m pytest -q -m "not slow" -p no:cacheprovider

clean:
	rm -rf demo-out build *.egg-info
