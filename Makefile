# Everything runs from a virtualenv the Makefile creates, so a fresh clone needs only Python.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install demo demo-jaeger test test-quick test-unit test-client-matrix test-sdk-range pythons test-pythons lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstalled only when the project's dependencies change, so repeated targets start at once.
$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(INSTALLED)

## demo: an embedded broker, a three-stage pipeline run unmodified under opentelemetry-instrument,
## and a waterfall of the traces it made; stops everything it started.
demo: install
	$(BIN)/python demo/run.py

## demo-jaeger: the same pipeline exporting to a local Jaeger (built from the Go module proxy on
## first use, which takes minutes), left up with the links printed until Ctrl-C.
demo-jaeger: install
	$(BIN)/python demo/run.py --jaeger

## test: the whole suite (unit, real-broker integration, subprocess end-to-end) against Apache
## Kafka (fetched from Maven Central on first use; needs Java 17 and Maven), then parts of it on
## the other supported Pythons, then the client tests again on the oldest supported releases of
## each client, then the clients' own test suites with and without kafka-autotrace, then
## coexistence with the upstream contrib Kafka instrumentations.
test: install
	$(BIN)/python -m pytest
	$(MAKE) test-pythons
	$(MAKE) test-client-matrix
	$(MAKE) test-sdk-range
	$(MAKE) test-client-suites
	$(MAKE) test-coexistence

## test-quick: the same suite against the embedded noida-db broker: no JVM, faster start.
test-quick: install
	KAFKA_AUTOTRACE_TEST_BROKER=noida $(BIN)/python -m pytest

test-unit: install
	$(BIN)/python -m pytest tests/unit

# The client releases besides the newest come from the client registry; each gets a virtualenv.
test-client-matrix: install
	@$(BIN)/python -m kafka_autotrace.clients.registry | while read -r client version; do \
		module=$$(echo $$client | tr - _); \
		env=$(VENV)-$$client-$$version; \
		echo "== $$client $$version"; \
		[ -x $$env/bin/python ] || $(PYTHON) -m venv $$env || exit 1; \
		$$env/bin/python -m pip install --quiet -e '.[test]' "$$client==$$version" || exit 1; \
		$$env/bin/python -m pytest tests/contract --client $$client \
			tests/test_$${module}*.py e2e/test_$${module}*_e2e.py || exit 1; \
	done

## test-sdk-range: spans made without the SDK (for those its sampler drops) checked against the
## SDK's own, on the newest OpenTelemetry SDK (the main virtualenv) and on the oldest that
## pyproject.toml allows (OLDEST_OTEL, OLDEST_OTEL_CONTRIB: its lower bounds), in $(VENV)-otel-$(OLDEST_OTEL).
OLDEST_OTEL ?= 1.30.0
OLDEST_OTEL_CONTRIB ?= 0.51b0
SDK_RANGE_TESTS = tests/unit/test_unsampled_spans.py
test-sdk-range: install
	$(BIN)/python -m pytest $(SDK_RANGE_TESTS)
	@env=$(VENV)-otel-$(OLDEST_OTEL); \
	[ -x $$env/bin/python ] || $(PYTHON) -m venv $$env || exit 1; \
	$$env/bin/python -m pip install --quiet -e '.[test]' \
		"opentelemetry-api==$(OLDEST_OTEL)" "opentelemetry-sdk==$(OLDEST_OTEL)" \
		"opentelemetry-proto==$(OLDEST_OTEL)" "opentelemetry-exporter-otlp-proto-http==$(OLDEST_OTEL)" \
		"opentelemetry-semantic-conventions==$(OLDEST_OTEL_CONTRIB)" \
		"opentelemetry-instrumentation==$(OLDEST_OTEL_CONTRIB)" \
		"opentelemetry-distro==$(OLDEST_OTEL_CONTRIB)" \
		"opentelemetry-exporter-prometheus==$(OLDEST_OTEL_CONTRIB)" || exit 1; \
	$$env/bin/python -m pytest $(SDK_RANGE_TESTS)

## test-pythons: the unit and contract suites on every supported Python besides $(PYTHON)'s
## (which `make test` covers), the end-to-end suite too on the oldest and the newest; two
## Pythons at a time (PYTHONS_JOBS), as the suites mostly wait on brokers and subprocesses.
## Against noida-db (PYTHONS_BROKER): what differs here is the Python, and it starts at once.
# Each Python gets a virtualenv $(VENV)-py3.X. Its interpreter is pyenv's
# ($PYENV_ROOT, else ~/.pyenv: versions/3.X.N/bin/python), else a python3.X on PATH that runs
# (a pyenv shim for a version not selected does not); without either the target fails, naming it.
PYTHONS ?= 3.9 3.10 3.11 3.12 3.13
E2E_PYTHONS ?= 3.9 3.13
PYTHONS_JOBS ?= 2
PYTHONS_BROKER ?= noida
MAIN_PYTHON = $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
OTHER_PYTHONS = $(filter-out $(MAIN_PYTHON),$(PYTHONS))

$(VENV)-py%/.installed: pyproject.toml
	@[ -x $(VENV)-py$*/bin/python ] || { \
		python=$$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$*.[0-9]*/bin/python 2>/dev/null \
			| grep -v 't/bin/python$$' | tail -n 1); \
		python=$${python:-python$*}; \
		$$python -c '' 2>/dev/null || { echo "Python $* not found: neither" \
			"$${PYENV_ROOT:-$$HOME/.pyenv}/versions/$*.N nor a python$* on PATH that runs;" \
			"install it (pyenv install $*) or leave it out: make PYTHONS='...'" >&2; exit 1; }; \
		$$python -m venv $(VENV)-py$* && $(VENV)-py$*/bin/python -m pip install --quiet --upgrade pip; \
	}
	$(VENV)-py$*/bin/python -m pip install --quiet -e '.[test]'
	touch $@

## pythons: only the virtualenvs of test-pythons (.ci/run makes them first, to fail early).
pythons: $(foreach version,$(OTHER_PYTHONS),$(VENV)-py$(version)/.installed)

test-pythons: pythons
	$(MAKE) --jobs=$(PYTHONS_JOBS) --output-sync=target \
		$(foreach version,$(OTHER_PYTHONS),test-py$(version))

test-py%: $(VENV)-py%/.installed
	KAFKA_AUTOTRACE_TEST_BROKER=$(PYTHONS_BROKER) $(VENV)-py$*/bin/python -m pytest tests/unit tests/contract $(if $(filter $*,$(E2E_PYTHONS)),e2e)

## bench: throughput and per-message cost, uninstrumented vs upstream contrib vs kafka-autotrace,
## on an in-memory broker (about 10 minutes; BENCH_ARGS=--quick for a short run). Prints a table
## and writes bench/results/latest.json; the extra virtualenvs it needs go under .venvs/.
## The histogram measurement budget's cost at 1k/10k/100k measurements a second (about 20 s):
## $(BIN)/python bench/budget.py
.PHONY: bench
bench: install
	$(BIN)/python -m pip install --quiet -r bench/requirements.txt
	$(BIN)/python bench/run.py $(BENCH_ARGS)

## test-coexistence: the upstream contrib Kafka instrumentations installed and enabled beside
## kafka-autotrace. They pin their own opentelemetry-instrumentation, hence a virtualenv of theirs.
UPSTREAM_CONTRIB ?= 0.66b1
.PHONY: test-coexistence
test-coexistence: install
	@env=$(VENV)-upstream-contrib; \
	[ -x $$env/bin/python ] || $(PYTHON) -m venv $$env || exit 1; \
	$$env/bin/python -m pip install --quiet -e '.[test]' \
		"opentelemetry-instrumentation-kafka-python==$(UPSTREAM_CONTRIB)" \
		"opentelemetry-instrumentation-confluent-kafka==$(UPSTREAM_CONTRIB)" \
		"opentelemetry-instrumentation-aiokafka==$(UPSTREAM_CONTRIB)" || exit 1; \
	$$env/bin/python -m pytest tests/test_reliability_coexistence.py \
		e2e/test_reliability_coexistence_e2e.py

## test-client-suites: the clients' own tests from their PyPI sdists (cached after the first
## run), without and then under opentelemetry-instrument; fails on any outcome that differs
## unexpectedly. kafka-autotrace is installed as users install it (a wheel, not editable), so it
## is reinstalled each run. kafka-python's integration tests run against noida-db (about 2.5
## minutes in all); KAFKA_AUTOTRACE_TEST_BROKER=kafka runs them on Apache Kafka (about 6).
.PHONY: test-client-suites
test-client-suites: install
	@env=$(VENV)-client-suites; \
	[ -x $$env/bin/python ] || $(PYTHON) -m venv $$env || exit 1; \
	$$env/bin/python -m pip install --quiet '.[test]' pytest-mock pytest-timeout \
		'confluent-kafka[avro]' || exit 1; \
	$$env/bin/python -m pip install --quiet --no-deps --force-reinstall . || exit 1; \
	KAFKA_AUTOTRACE_TEST_BROKER=$${KAFKA_AUTOTRACE_TEST_BROKER:-noida} $$env/bin/python tests/client_suites.py

## soak: memory over 500,000 messages per client (and, as a control, without instrumentation),
## memory per send waiting for a broker that is gone (under each in-flight cap), then app
## throughput and exit time with the OTLP collector down or hung (about 30 minutes).
## Prints the figures docs/reliability.md quotes.
.PHONY: soak
soak: install
	$(BIN)/python soak/run.py --control $(SOAK_ARGS)
	$(BIN)/python soak/inflight.py
	$(BIN)/python soak/otlp_outage.py $(OUTAGE_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(VENV)-* .venvs build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
