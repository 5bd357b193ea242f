# Set-up and the everyday commands. `make test` and `make demo` each do all the set-up they need.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# CPU build of torch by default; on a GPU machine: make setup TORCH_SPEC=torch (README, "GPU machines").
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup dev test test-fast lint demo bench browser clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -e ".[test]"
	touch $@

# ruff and mypy (the `dev` extra) for `make lint`.
dev: $(VENV)/.installed-dev

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -q -e ".[test,dev]"
	touch $@

# Headless Chromium + ChromeDriver (Debian packages) for the HTML report test; where apt is not
# usable (not root, not Debian) the test is skipped with its reason.
BROWSER_PKGS := chromium chromium-driver
browser:
	@{ command -v chromium && command -v chromedriver; } >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get install -y -q $(BROWSER_PKGS) >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $(BROWSER_PKGS) >/dev/null 2>&1)) \
	  || echo "note: chromium/chromedriver not installed; the HTML browser test will be skipped"; }

# The full suite (CI runs this one), and the everyday subset without the tests marked `slow`
# (end-to-end stage runs, seconds to minutes each).
test: setup browser
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

# Lint, formatting and types, configured in pyproject.toml; all three run, any finding fails.
lint: dev
	@status=0; \
	$(BIN)/ruff check . || status=1; \
	$(BIN)/ruff format --check . || status=1; \
	$(BIN)/mypy || status=1; \
	exit $$status

demo: setup
	$(BIN)/fpsynth demo

bench: setup
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) workspace workspace-demo
