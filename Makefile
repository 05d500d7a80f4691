# Custody — the two commands that matter: `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: all deps build release test fmt clippy unit units selinux demo bench deb deb-test clean

all: build

## deps: install the Debian packages the project needs (only the missing ones)
deps:
	@scripts/deps.sh

build: deps
	$(CARGO) build --workspace

release: deps
	$(CARGO) build --workspace --release

fmt:
	$(CARGO) fmt --all -- --check

clippy: deps
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit: deps
	$(CARGO) test --workspace

## units / selinux: the systemd units' exposure score and the policy module build (< 1 s)
units: deps
	@scripts/check-units.sh

selinux: deps
	@scripts/check-selinux.sh

## test: what CI runs — deps, format check, lints, unit/policy checks, every test
test: deps fmt clippy units selinux unit

## demo: the whole secure flow end to end on SoftHSM2/swtpm
demo: deps
	@scripts/demo.sh

## bench: throughput and latency figures, each beside a reference run
bench: deps
	@scripts/bench.sh

## deb: the three .deb packages (release build), in target/debian/
deb: deps
	@scripts/build-debs.sh

## deb-test: install the .debs on this machine, check files, modes and users, purge (root)
deb-test: deb
	@scripts/test-debs.sh

clean:
	$(CARGO) clean
