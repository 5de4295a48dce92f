# One-command set-up: `make dse` (set up + run the main job), `make test` (set up + run the tests).
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
APT_PACKAGES := yosys iverilog verilator dataset-fashion-mnist

.PHONY: setup system-packages dse demo test test-all

setup: $(VENV)/.installed

system-packages:
	@if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  dpkg -s $(APT_PACKAGES) >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q $(APT_PACKAGES); }; \
	else echo "skipping apt packages ($(APT_PACKAGES)): not root or no apt-get"; fi

$(VENV)/.installed: pyproject.toml
	$(MAKE) system-packages
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[finn,data,notebooks,test,dse,hw]'
	# FINN+ 1.6.1 pins brevitas==0.13.0 (which forces torch<=2.12): install it without its pins.
	$(PY) -m pip install -q --no-deps 'finn-plus==1.6.1'
	touch $@

dse: setup
	$(VENV)/bin/brevitas-minifloat dse

demo: setup
	$(PY) -m brevitas_minifloat.demo

test: setup
	$(PY) -m pytest -q

test-all: setup
	$(PY) -m pytest -q -m ''
