# The commands a user and CI run. `make test` installs what it needs (nginx) on a fresh machine.
CARGO ?= cargo
DOCKER ?= docker
IMAGE ?= ghcr.io/paperlb/paperlb:$(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)

# Static release binary. Only the glibc target's std is installed (no musl), so glibc is linked
# statically with crt-static; the explicit --target keeps build scripts and proc-macros dynamic.
# Static glibc resolves names itself (files + dns built in): it reads /etc/hosts, /etc/resolv.conf and
# /etc/nsswitch.conf if present, which kubelet mounts into every container; it loads no NSS modules.
# MAX_RELEASE_BYTES (3 MiB) is a size target that is warned about, not enforced: static glibc alone
# is ~0.9 MiB of it (what each setting saves: README.md, "Binary size").
RELEASE_TARGET := x86_64-unknown-linux-gnu
RELEASE_BIN := target/$(RELEASE_TARGET)/release/paperlb
MAX_RELEASE_BYTES := 3145728
# Packed relative relocations (DT_RELR) shrink the static-pie's relocation table from ~110 KB to ~1 KB
# and keep it position independent (ASLR). The static-pie relocates itself with the glibc it links,
# which applies DT_RELR from 2.36 on; with an older glibc the flag is left out (check-static also runs
# the binary, so a broken one cannot pass).
GLIBC_VERSION := $(shell getconf GNU_LIBC_VERSION 2>/dev/null | sed -n 's/^glibc //p')
RELR_FLAGS := $(shell printf '%s\n2.36\n' "$(GLIBC_VERSION)" | sort -V | head -n 1 | grep -qx '2.36' && echo '-C link-arg=-Wl,-z,pack-relative-relocs')
RELEASE_RUSTFLAGS := -C target-feature=+crt-static $(RELR_FLAGS)

.PHONY: test lint build release bundle image deps clean demo bench chaos

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
	RUSTFLAGS="$(RELEASE_RUSTFLAGS)" $(CARGO) build --release --locked --target $(RELEASE_TARGET)
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
# BENCH_KUBECONFIG=PATH: instead, the same controller workload against that kubeconfig's apiserver
# (part `kube`; a loopback server only, unless BENCH_ARGS=--allow-remote; BENCH_ARGS=--runs 3).
bench:
	$(CARGO) build --release --locked --bin paperlb --example bench
	./target/release/examples/bench $(if $(BENCH_KUBECONFIG),kube --kubeconfig $(BENCH_KUBECONFIG) $(BENCH_ARGS))

# Seeded chaos runs end to end (loopback only; see examples/chaos.rs): the debug controller and two
# LB hosts (nginx-updater + real nginx each) against the fake API server, while objects change and
# the controller, watches, API calls and updaters fail on purpose; then the invariants must hold.
# SEEDS: the seeds to run; DURATION: seconds of chaos per seed. Exits 1 naming the failed seed.
# LATENCY: the fake API server's latency profile (off, etcd, or read=MS,write=MS,jitter=PCT,writes=N).
SEEDS ?= 1 2 3
DURATION ?= 20
LATENCY ?= off
chaos: deps
	$(CARGO) build --locked --bin paperlb --example chaos
	./target/debug/examples/chaos --duration $(DURATION) --latency $(LATENCY) $(SEEDS)
