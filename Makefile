# Custody — the two commands that matter: `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: all deps build release test fmt clippy unit demo bench clean

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

## test: what CI runs — deps, format check, lints, every test
test: deps fmt clippy unit

## demo: the whole secure flow end to end on SoftHSM2/swtpm
demo: deps
	@scripts/demo.sh

## bench: throughput and latency figures, each beside a reference run
bench: deps
	@scripts/bench.sh

clean:
	$(CARGO) clean
