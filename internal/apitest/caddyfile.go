package apitest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Caddyfile is the Caddyfile of a test: a global block with the admin
// endpoint on AdminPort and the apiusers options, and one site on SitePort
// with the admin API under /admin/, the given routes, and errors answered
// as "<status> <message>" (so a test reads why a request was refused).
type Caddyfile struct {
	AdminPort int
	// Global is a fragment of further global options (such as a servers
	// block).
	Global string
	// Apiusers are the lines of the apiusers global block (none: no block).
	Apiusers []string
	SitePort int
	// Top is a Caddyfile fragment at the top of the site (such as a log
	// block).
	Top string
	// Routes are the site's routes, one Caddyfile fragment, placed after
	// the admin API.
	Routes string
}

// String renders the Caddyfile.
func (c Caddyfile) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n\tadmin localhost:%d\n\tpersist_config off\n", c.AdminPort)
	if g := strings.Trim(c.Global, "\n"); g != "" {
		b.WriteString(g + "\n")
	}
	if len(c.Apiusers) > 0 {
		b.WriteString("\tapiusers {\n")
		for _, l := range c.Apiusers {
			b.WriteString("\t\t" + l + "\n")
		}
		b.WriteString("\t}\n")
	}
	fmt.Fprintf(&b, "}\n\nhttp://localhost:%d {\n", c.SitePort)
	if top := strings.Trim(c.Top, "\n"); top != "" {
		b.WriteString(top + "\n\n")
	}
	b.WriteString("\thandle_path /admin/* {\n\t\tapiusers_admin\n\t}\n")
	if r := strings.Trim(c.Routes, "\n"); r != "" {
		b.WriteString("\n" + r + "\n")
	}
	b.WriteString("\n\thandle_errors {\n\t\trespond \"{err.status_code} {err.message}\"\n\t}\n}\n")
	return b.String()
}

// Empty is a Caddyfile with the admin endpoint on adminPort and nothing
// else: loading it unloads a test's configuration, freeing its ports and
// its store.
func Empty(adminPort int) string {
	return fmt.Sprintf("{\n\tadmin localhost:%d\n\tpersist_config off\n}\n", adminPort)
}

// Example returns the Caddyfile of caddyfile-examples/<name> rewired for a
// test: the admin endpoint on adminPort, the site on sitePort, the
// upstream at upstreamAddr (the example's own upstream site dropped). The
// store is what the example says, which the environment configures
// (APIUSERS_DATA, REDIS_URL, APIUSERS_SIGNING_KEY).
func Example(tb testing.TB, name string, adminPort, sitePort int, upstreamAddr string) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(Root(tb), "caddyfile-examples", name, "Caddyfile"))
	if err != nil {
		tb.Fatal(err)
	}
	cf := string(b)
	// Drop the example's own upstream site: the test brings a real one.
	if i := strings.Index(cf, "\nhttp://localhost:9081 {"); i > 0 {
		cf = cf[:i]
	} else {
		tb.Fatalf("%s Caddyfile: upstream site not found", name)
	}
	replace := func(old, new string) {
		if !strings.Contains(cf, old) {
			tb.Fatalf("%s Caddyfile: %q not found", name, old)
		}
		cf = strings.ReplaceAll(cf, old, new)
	}
	replace("{\n\tapiusers {", "{\n\tadmin localhost:"+strconv.Itoa(adminPort)+"\n\tpersist_config off\n\tapiusers {")
	replace("http://localhost:8080", "http://localhost:"+strconv.Itoa(sitePort))
	replace("reverse_proxy localhost:9081", "reverse_proxy "+upstreamAddr)
	return cf
}

// LineOf returns the 1-based line of the first line of text containing s.
func LineOf(tb testing.TB, text, s string) int {
	tb.Helper()
	for i, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	tb.Fatalf("%q not in the Caddyfile", s)
	return 0
}

// WriteCaddyfile writes body as a Caddyfile into a temporary directory of
// tb and returns its path.
func WriteCaddyfile(tb testing.TB, body string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "Caddyfile")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}
