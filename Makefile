# Two commands on a fresh machine with Python 3.11: `make run` and `make test`.
# Both build .venv from pyproject.toml first; nothing else needs installing by hand
# (`make test` also installs Debian's chromium + chromium-driver for the browser tests).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: run test test-sqlite test-postgres browser-deps lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

## run: the provider on http://localhost:5000 (SQLite, mail to instance/outbox)
run: $(STAMP)
	$(BIN)/idp db upgrade
	$(BIN)/idp clients demo
	$(BIN)/idp serve --host 127.0.0.1 --port 5000

## test: the whole suite twice, against SQLite and against PostgreSQL + Redis, both at
## once (each run is mostly one core; the two share nothing but the machine). Each
## run's output is printed whole when it ends (--output-sync).
test: $(STAMP) browser-deps
	$(MAKE) --no-print-directory -j2 --output-sync=target test-sqlite test-postgres

# Separate temporary folders: two pytest sessions at once must not prune each other's.
test-sqlite: $(STAMP)
	mkdir -p .pytest-tmp
	IDP_TEST_DATABASE=sqlite $(BIN)/pytest --basetemp=.pytest-tmp/sqlite $(PYTEST_ARGS)

test-postgres: $(STAMP)
	mkdir -p .pytest-tmp
	IDP_TEST_DATABASE=postgresql $(BIN)/pytest --basetemp=.pytest-tmp/postgresql $(PYTEST_ARGS)

browser-deps:
	bash scripts/install-browser.sh

## bench-oidc: token/introspection/JWKS/discovery vs node-oidc-provider (benchmarks/oidc/README.md)
.PHONY: bench-oidc
bench-oidc: $(STAMP)
	bash benchmarks/oidc/run.sh

## demo: provider, wallet and shop on loopback, state in instance/demo/ (examples/README.md); Ctrl-C stops all
.PHONY: demo
demo: $(STAMP)
	$(BIN)/python -m examples.demo

clean:
	rm -rf $(VENV) instance .pytest_cache .pytest-tmp
