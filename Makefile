# Everything runs from a virtualenv the Makefile creates, so a fresh clone needs only Python.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# kafka-python releases the instrumentation is tested against besides the newest.
KAFKA_PYTHON_MATRIX ?= 2.0.2 2.3.3

.PHONY: install test test-unit test-kafka-python-matrix lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'

## test: the whole suite (unit, real-broker integration, subprocess end-to-end), then the
## kafka-python tests again on the other supported kafka-python releases.
test: install
	$(BIN)/python -m pytest
	$(MAKE) test-kafka-python-matrix

test-unit: install
	$(BIN)/python -m pytest tests/unit

test-kafka-python-matrix: install
	@for version in $(KAFKA_PYTHON_MATRIX); do \
		env=$(VENV)-kafka-python-$$version; \
		echo "== kafka-python $$version"; \
		[ -x $$env/bin/python ] || $(PYTHON) -m venv $$env || exit 1; \
		$$env/bin/python -m pip install --quiet -e '.[test]' "kafka-python==$$version" || exit 1; \
		$$env/bin/python -m pytest tests/test_kafka_python.py e2e/test_kafka_python_e2e.py || exit 1; \
	done

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(VENV)-kafka-python-* build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
