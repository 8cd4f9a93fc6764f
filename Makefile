# The commands a user and CI run. `make test` installs what it needs (nginx) on a fresh machine.
CARGO ?= cargo

.PHONY: test lint build release deps clean bench

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

# Performance figures of the release binary against the fake API server (loopback only, a few
# minutes); prints a table and writes target/bench/results.json. See bench/README.md.
bench:
	$(CARGO) build --release --locked --bin paperlb --example bench
	./target/release/examples/bench
