# The commands a user and CI run. `make test` installs what it needs (nginx) on a fresh machine.
CARGO ?= cargo

.PHONY: test lint build release deps clean

deps:
	./scripts/install-deps

build:
	$(CARGO) build --locked

test: deps
	$(CARGO) test --locked

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

clean:
	$(CARGO) clean
