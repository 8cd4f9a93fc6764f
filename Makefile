# The commands a user and CI run. `make test` installs what it needs (nginx) on a fresh machine.
CARGO ?= cargo
DOCKER ?= docker
IMAGE ?= ghcr.io/paperlb/paperlb:$(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)

# Static release binary. Only the glibc target's std is installed (no musl), so glibc is linked
# statically with crt-static; the explicit --target keeps build scripts and proc-macros dynamic.
# Static glibc resolves names itself (files + dns built in): it reads /etc/hosts, /etc/resolv.conf and
# /etc/nsswitch.conf if present, which kubelet mounts into every container; it loads no NSS modules.
# MAX_RELEASE_BYTES (3 MiB) is a size target that is warned about, not enforced: static glibc alone
# is ~0.9 MiB of it.
RELEASE_TARGET := x86_64-unknown-linux-gnu
RELEASE_BIN := target/$(RELEASE_TARGET)/release/paperlb
MAX_RELEASE_BYTES := 3145728

.PHONY: test lint build release bundle image deps clean demo bench

deps:
	./scripts/install-deps

build:
	$(CARGO) build --locked

# The empty-root test (tests/manifests/empty_root.rs) runs the static release binary: build it first
# and hand its path over. A plain `cargo test` has no static binary, and that test fails saying so.
test: deps release
	PAPERLB_STATIC_BIN=$(CURDIR)/$(RELEASE_BIN) $(CARGO) test --locked

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

# A fully static paperlb for x86_64 Linux; fails unless it is static, warns above 3 MiB.
release:
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release --locked --target $(RELEASE_TARGET)
	./scripts/check-static $(RELEASE_BIN) $(MAX_RELEASE_BYTES)

# manifests/paperlb.yaml from the resources of manifests/kustomization.yaml (a test checks for drift).
bundle:
	./scripts/bundle

# The FROM scratch image (needs a Docker engine; `make release` first).
image: release
	$(DOCKER) build -t $(IMAGE) .

clean:
	$(CARGO) clean

# paperlb end to end on this machine (loopback only): fake API server, real nginx, updater, controller.
demo: deps
	$(CARGO) build --locked --bin paperlb --example demo
	./target/debug/examples/demo

# Performance figures of the release binary against the fake API server (loopback only, a few
# minutes); prints a table and writes target/bench/results.json. See bench/README.md.
bench:
	$(CARGO) build --release --locked --bin paperlb --example bench
	./target/release/examples/bench
