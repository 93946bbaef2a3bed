package main

import (
	"os"
	"testing"

	"github.com/apiusers/apiusers/internal/apitest"
)

// The tests of this package run the built binary: `caddy list-modules`,
// the `caddy apiusers` commands, restarts of a real Caddy on the embedded
// store, bad Caddyfiles, a fleet of two instances on Redis, and people
// signing in. They run in parallel with each other (each with ports,
// directories and servers of its own), and, as a package of their own,
// beside the in-process tests of module.

// caddyBin is ./cmd/caddy, built once for all the tests.
var caddyBin apitest.Binary

func TestMain(m *testing.M) {
	code := m.Run()
	caddyBin.Cleanup()
	os.Exit(code)
}
