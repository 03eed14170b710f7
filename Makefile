# DOLPHIN — two commands do all the set-up: `make run` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean-venv venv bytecode

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	$(BIN)/uv pip install -q --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	-@$(BIN)/python -m compileall -q -j 0 $(VENV)/lib >/dev/null
	@touch $(STAMP)

venv: $(STAMP)

# Bytecode is compiled ahead, so that no process (a service, a paper session) compiles its
# imports again, even where PYTHONDONTWRITEBYTECODE is set.
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q src tests benchmarks

run: $(STAMP) bytecode
	$(BIN)/python -m dolphin run
	@rm -rf runs/mesh-demo
	$(BIN)/python -m dolphin mesh up --foreground --duration 60 --speed 3000 --run-dir runs/mesh-demo

test: $(STAMP) bytecode
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q --durations=25

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_scanner.py

clean-venv:
	rm -rf $(VENV)
