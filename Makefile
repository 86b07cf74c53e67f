# Developer entry points. `make run` and `make test` install what they need first.
PY := .venv/bin/python

.PHONY: bootstrap run test lint format bench soak clean

bootstrap:
	@scripts/bootstrap

run: bootstrap
	$(PY) -m shared.devstack

test: bootstrap
	$(PY) -m pytest $(PYTEST_ARGS)

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

format: bootstrap
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

bench: bootstrap
	$(PY) -m bench

soak: bootstrap
	$(PY) -m bench.soak --seconds 180 --write-docs

clean:
	rm -rf .data .pytest_cache .mypy_cache .ruff_cache
