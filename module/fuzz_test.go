package module

import (
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// FuzzGatewayCaddyfile: the apiusers directive's parser never panics, and
// what it accepts compiles or fails with an error (never a panic).
func FuzzGatewayCaddyfile(f *testing.F) {
	for _, seed := range []string{
		"apiusers",
		"apiusers {\n\tworkspace acme\n\troles admin api_user\n\trequire events.read owner {re.ev.1}\n\trequire control on device:{re.d.1}\n}",
		"apiusers {\n\tkey_from bearer header X-API-Key query api_key cookie k\n\tkeep_credentials\n\trecord body 4KiB\n}",
		"apiusers {\n\trequire\n}", "apiusers {\n\trecord body -1\n}", "apiusers {\n\tkey_from query\n}", "apiusers { { } }",
		"apiusers {\n\trequire x on\n}", "apiusers {\n\trequire x.own owner y\n}",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		var g Gateway
		if err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
			return
		}
		_ = g.compile()
	})
}

// FuzzAppCaddyfile: the global apiusers option's parser never panics, and
// what it accepts resolves or fails with an error.
func FuzzAppCaddyfile(f *testing.F) {
	for _, seed := range []string{
		"apiusers",
		"apiusers {\n\tstore file /tmp/x {\n\t\tlock_timeout 2s\n\t}\n\tcache_ttl 1m\n\tsigning_algorithm HS512\n}",
		"apiusers {\n\tstore redis redis://localhost:6379 {\n\t\tprefix p\n\t\twait_replicas 1 2s\n\t}\n\tsigning_key 0123456789abcdef0123456789abcdef\n}",
		"apiusers {\n\tstore redis {\n\t\tcluster a:1 b:2\n\t}\n}", "apiusers {\n\tstore redis {\n\t\tsentinel m a:1\n\t\tdb 3\n\t}\n}",
		"apiusers {\n\tmessages_keep -1\n}", "apiusers {\n\tcache_ttl x\n}", "apiusers {\n\tstore\n}",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		var a App
		if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
			return
		}
		_, _ = a.resolve(caddy.NewReplacer())
	})
}
