# apiusers — the two commands are `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
CADDY := ./caddy
QUICKSTART := caddyfile-examples/quickstart/Caddyfile
export APIUSERS_DATA ?= $(CURDIR)/.data/apiusers

.PHONY: run test bench build deps-test vet fuzz fuzz-short

build:
	$(GO) build -o $(CADDY) ./cmd/caddy

# Serve the quickstart on the embedded store. The first run bootstraps a
# superadmin and prints its key (the bootstrap command needs the store while
# Caddy is not holding it). `make run EMAIL=you@example.com` makes the
# superadmin a person instead (or as well): it prints a one-time setup link.
EMAIL ?=
run: build
	@mkdir -p "$(APIUSERS_DATA)"
	@if [ -n "$(EMAIL)" ]; then \
		link=$$($(CADDY) apiusers bootstrap --config $(QUICKSTART) --adapter caddyfile --workspace demo --email "$(EMAIL)") || exit 1; \
		touch "$(APIUSERS_DATA)/.bootstrapped"; \
		token=$${link#*token=}; \
		echo; echo "Your one-time setup link (valid 7 days; open it in the console):"; echo "  $$link"; echo; \
		echo "Without the console, set your password with:"; \
		echo "  curl -i -H 'Content-Type: application/json' -d '{\"token\":\"'$$token'\",\"name\":\"Your Name\",\"password\":\"<a long passphrase>\"}' http://localhost:8080/admin/invitations/accept"; echo; \
	elif [ ! -f "$(APIUSERS_DATA)/.bootstrapped" ]; then \
		key=$$($(CADDY) apiusers bootstrap --config $(QUICKSTART) --adapter caddyfile --workspace demo --username admin) || exit 1; \
		touch "$(APIUSERS_DATA)/.bootstrapped"; \
		echo; echo "Your superadmin key (shown once; keep it):"; echo "  $$key"; echo; \
		echo "Try:  curl -H 'Authorization: Bearer $$key' http://localhost:8080/admin/me"; echo; \
		echo "To sign in as a person instead, stop Caddy and run:  make run EMAIL=you@example.com"; echo; \
	else \
		echo "A superadmin was bootstrapped before. To get another key, stop Caddy and run:"; \
		echo "  $(CADDY) apiusers bootstrap --config $(QUICKSTART) --workspace demo --username admin2"; echo; \
	fi
	@echo "Serving $(QUICKSTART) on http://localhost:8080 (admin API under /admin/, protected API under /api/)"
	$(CADDY) run --config $(QUICKSTART) --adapter caddyfile

# Tests need redis-server (the Redis store and end-to-end tests run against a
# real one). Install it when missing and apt is available.
deps-test:
	@if ! command -v redis-server >/dev/null 2>&1; then \
		if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
			echo "redis-server is missing: installing it with apt-get"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
		elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then \
			echo "redis-server is missing: installing it with sudo apt-get"; \
			sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
		else \
			echo "redis-server is missing and apt-get is not available: install Redis (>= 6) so redis-server is on PATH" >&2; exit 1; \
		fi; \
	fi
	@command -v redis-server >/dev/null || { echo "redis-server still missing" >&2; exit 1; }
	@redis-server --version

vet:
	$(GO) vet ./...

test: deps-test vet fuzz-short
	$(GO) test -race -count=1 -timeout 15m ./...

# Go fuzz targets (func Fuzz… in *_test.go): the key parser and verifier,
# names, cursors, stored records, the audit codec, the Redis record
# decoders, admin request bodies, the Caddyfile parsers. Go fuzzes one
# target per run, so each package's instrumented test binary is built once
# (go test -c -fuzz) and run once per target, in the package directory.
# Every `go test` replays the corpus committed under testdata/fuzz;
# `make fuzz` adds what its longer runs found there (then commit it).
FUZZTIME_SHORT ?= 3s
FUZZTIME ?= 1m
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
				|| { echo "$$fn found a failing input: see $$dir/testdata/fuzz/$$fn" >&2; exit 1; }; \
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
