# apiusers — the two commands are `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
CADDY := ./caddy
QUICKSTART := caddyfile-examples/quickstart/Caddyfile
export APIUSERS_DATA ?= $(CURDIR)/.data/apiusers

.PHONY: run test bench build deps-test vet screenshots fuzz fuzz-short

build:
	$(GO) build -o $(CADDY) ./cmd/caddy

# Serve the quickstart on the embedded store. The first run bootstraps the
# first superadmin, a person (EMAIL, default admin@example.com), and prints
# the console's address and the one-time link that sets its password; it
# also makes a superadmin API key for curl and prints it once. (The
# bootstrap command needs the store while Caddy is not holding it.)
# `make run EMAIL=you@example.com` later invites another person.
EMAIL ?= admin@example.com
CONSOLE := http://localhost:8080/admin/
run: build
	@mkdir -p "$(APIUSERS_DATA)"
	@if [ ! -f "$(APIUSERS_DATA)/.bootstrapped" ] || [ "$(origin EMAIL)" = "command line" ]; then \
		link=$$($(CADDY) apiusers bootstrap --config $(QUICKSTART) --adapter caddyfile --workspace demo --email "$(EMAIL)") || exit 1; \
		if [ ! -f "$(APIUSERS_DATA)/.bootstrapped" ]; then \
			key=$$($(CADDY) apiusers bootstrap --config $(QUICKSTART) --adapter caddyfile --workspace demo --username admin) || exit 1; \
		fi; \
		touch "$(APIUSERS_DATA)/.bootstrapped"; \
		echo; echo "The console:  $(CONSOLE)"; echo; \
		echo "Open this one-time link (valid 7 days) to set the password of $(EMAIL), then sign in:"; \
		echo "  $$link"; echo; \
		if [ -n "$$key" ]; then \
			echo "A superadmin API key for curl (shown once; keep it):"; echo "  $$key"; \
			echo "Try:  curl -H 'Authorization: Bearer $$key' $(CONSOLE)me"; echo; \
		fi; \
	else \
		echo; echo "The console:  $(CONSOLE)  (bootstrapped before; sign in there)."; \
		echo "To invite another person as superadmin, stop Caddy and run:  make run EMAIL=you@example.com"; echo; \
	fi
	@echo "Serving $(QUICKSTART) on http://localhost:8080 (console and admin API under /admin/, protected API under /api/)"
	$(CADDY) run --config $(QUICKSTART) --adapter caddyfile

# Tests need redis-server (the Redis store and end-to-end tests run against a
# real one), chromium (the console's browser tests) and npm (they install
# axe-core with it). Install what is missing when apt is available.
TEST_DEPS := redis-server:redis-server chromium:chromium npm:npm
deps-test:
	@for dep in $(TEST_DEPS); do \
		cmd=$${dep%%:*}; pkg=$${dep#*:}; \
		command -v $$cmd >/dev/null 2>&1 && continue; \
		if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
			echo "$$cmd is missing: installing $$pkg with apt-get"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkg >/dev/null || exit 1; \
		elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then \
			echo "$$cmd is missing: installing $$pkg with sudo apt-get"; \
			sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkg >/dev/null || exit 1; \
		else \
			echo "$$cmd is missing and apt-get is not available: install $$pkg so $$cmd is on PATH" >&2; exit 1; \
		fi; \
		command -v $$cmd >/dev/null || { echo "$$cmd still missing" >&2; exit 1; }; \
	done
	@redis-server --version
	@chromium --version 2>/dev/null | tail -1

vet:
	$(GO) vet ./...

test: deps-test vet fuzz-short
	$(GO) test -race -count=1 -timeout 30m ./...

# PNGs of the console's main screens into docs/ (the README shows them),
# taken by the browser tests in Chromium.
screenshots: deps-test
	APIUSERS_SCREENSHOTS=$(CURDIR)/docs $(GO) test -count=1 -timeout 10m -run 'TestConsoleBrowser/(set_the_first|the_main)' ./module
# Go fuzz targets (func Fuzz… in *_test.go): the key parser and verifier,
# names, cursors, stored records, the audit codec, the Redis record
# decoders, admin request bodies, the Caddyfile parsers. Go fuzzes one
# target per run, so each package's instrumented test binary is built once
# (go test -c -fuzz) and run once per target, in the package directory.
# Every `go test` replays the corpus committed under testdata/fuzz;
# `make fuzz` adds what its longer runs found there (then commit it).
# The budgets are counts of executions, not durations: with a duration, Go
# 1.26's fuzz coordinator can fail a target with a bare "context deadline
# exceeded" when the time is up while a worker is busy (golang/go#75804,
# fixed in Go 1.27), which a loaded machine makes likely. A count has no
# deadline to race; 3,000 runs take a second or two per target here.
FUZZTIME_SHORT ?= 3000x
FUZZTIME ?= 300000x
FUZZ_BIN := $(CURDIR)/.fuzz

fuzz-short:
	@$(call run_fuzz,$(FUZZTIME_SHORT),)

fuzz:
	@$(call run_fuzz,$(FUZZTIME),keep)

# run_fuzz runs every fuzz target for $(1); with $(2) = keep it copies the
# inputs the fuzzer found interesting into the package's testdata/fuzz.
define run_fuzz
	set -e; mkdir -p $(FUZZ_BIN); cache=$$($(GO) env GOCACHE)/fuzz; \
	for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		pkg=$$($(GO) list $$dir); bin=$(FUZZ_BIN)/$$(echo $$pkg | tr / _).test; \
		$(GO) test -c -fuzz=. -o $$bin $$dir; \
		for fn in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go | cut -d' ' -f2); do \
			echo "fuzzing $$pkg $$fn for $(1)"; \
			(cd $$dir && $$bin -test.run='^$$' -test.fuzz="^$$fn$$" -test.fuzztime=$(1) -test.fuzzcachedir=$$cache/$$pkg) \
				|| { echo "$$fn failed; an input that fails it, if the fuzzer found one, is in $$dir/testdata/fuzz/$$fn" >&2; exit 1; }; \
			if [ "$(2)" = keep ] && [ -d $$cache/$$pkg/$$fn ]; then \
				mkdir -p $$dir/testdata/fuzz/$$fn && cp -n $$cache/$$pkg/$$fn/* $$dir/testdata/fuzz/$$fn/ 2>/dev/null || true; \
			fi; \
		done; \
	done
endef

# Go benchmarks (the gateway hot path, the cache, the stores), then the load
# harness: wrk against Caddy and the gateway, revocation propagation, memory
# (bench/run.sh; it installs wrk when missing and writes bench/RESULTS.md).
bench: deps-test
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./...
	GO=$(GO) bash bench/run.sh
