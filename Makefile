# apiusers — the two commands are `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
CADDY := ./caddy
QUICKSTART := caddyfile-examples/quickstart/Caddyfile
export APIUSERS_DATA ?= $(CURDIR)/.data/apiusers

.PHONY: run test bench build deps-test vet

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

test: deps-test vet
	$(GO) test -race -count=1 -timeout 15m ./...

# Go benchmarks (the gateway hot path, the cache, the stores), then the load
# harness: wrk against Caddy and the gateway, revocation propagation, memory
# (bench/run.sh; it installs wrk when missing and writes bench/RESULTS.md).
bench: deps-test
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./...
	GO=$(GO) bash bench/run.sh
