# The commands a user and CI run. `make test` installs what it needs (nginx) on a fresh machine.
CARGO ?= cargo

.PHONY: test lint build release deps clean demo

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

# paperlb end to end on this machine (loopback only): fake API server, real nginx, updater, controller.
demo: deps
	$(CARGO) build --locked --bin paperlb --example demo
	./target/debug/examples/demo
