# `make test` and `make app` set everything up on a fresh machine: a .venv with the pinned requirements,
# the project installed into it, and (as root, where missing) Chromium for figure export and browser tests.
VENV     := .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.installed
APP_HOST ?= 127.0.0.1
APP_PORT ?= 8501

.PHONY: test app setup chromium lint clean device-wheels

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $(STAMP)

chromium:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing chromium (figure export and browser tests)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing and this is not root: figure export and browser tests will be skipped"; fi; \
	fi

test: $(STAMP) chromium
	$(PY) -m pytest -q

app: $(STAMP) chromium
	$(VENV)/bin/sleepcore app --host $(APP_HOST) --port $(APP_PORT)

lint: $(STAMP)
	$(VENV)/bin/ruff check sleepcore analysis app tests

# flash-linear-attention's kernels for `sleepcore bench ops` on the lent GPU machine, which cannot download
# (scripts/device_check.sh): fla-core alone, the ops; its layers and models would import the image's transformers
device-wheels: $(STAMP)
	$(PY) -m pip download -q --no-deps --only-binary=:all: -d .whl fla-core==0.5.2

clean:
	rm -rf $(VENV) .pytest_cache
