package console

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/apiusers/apiusers/authz"
)

func get(t *testing.T, h *Handler, path string, hdr http.Header) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest("GET", path, nil)
	for k, v := range hdr {
		r.Header[k] = v
	}
	if !h.Serves(r) {
		t.Fatalf("GET %s: the console does not serve it", path)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestPagesServeTheShell(t *testing.T) {
	h := New()
	shell, _ := files.ReadFile("index.html")
	for _, p := range []string{"/", "/accept?token=abc", "/reset?token=abc"} {
		w := get(t, h, p, nil)
		if w.Code != 200 || w.Body.String() != string(shell) {
			t.Errorf("GET %s: %d, body %.60q", p, w.Code, w.Body.String())
		}
		hdr := w.Result().Header
		for k, want := range map[string]string{
			"Content-Type":            "text/html; charset=utf-8",
			"Content-Security-Policy": CSP,
			"Referrer-Policy":         "no-referrer",
			"X-Frame-Options":         "DENY",
			"X-Content-Type-Options":  "nosniff",
			"Cache-Control":           "no-store",
		} {
			if got := hdr.Get(k); got != want {
				t.Errorf("GET %s: %s %q, want %q", p, k, got, want)
			}
		}
	}
	if !strings.HasPrefix(CSP, "default-src 'self'; frame-ancestors 'none'") {
		t.Errorf("CSP %q", CSP)
	}
}

func TestServesOnlyConsolePaths(t *testing.T) {
	h := New()
	for _, c := range []struct {
		method, path string
		want         bool
	}{
		{"GET", "/", true}, {"HEAD", "/", true}, {"GET", "/accept", true}, {"GET", "/reset", true},
		{"GET", "/assets/app.js", true}, {"GET", "/assets/nope.js", true},
		{"POST", "/", false}, {"POST", "/accept", false}, {"GET", "/me", false},
		{"GET", "/workspaces", false}, {"GET", "/accept/x", false}, {"GET", "/openapi.json", false},
		{"PUT", "/assets/app.js", false},
	} {
		r := httptest.NewRequest(c.method, c.path, nil)
		if got := h.Serves(r); got != c.want {
			t.Errorf("%s %s: Serves %v, want %v", c.method, c.path, got, c.want)
		}
	}
}

func TestAssets(t *testing.T) {
	h := New()
	w := get(t, h, "/assets/app.js", nil)
	if w.Code != 200 || w.Header().Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Fatalf("app.js: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	tag := w.Header().Get("ETag")
	if tag == "" || w.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("app.js: ETag %q, Cache-Control %q", tag, w.Header().Get("Cache-Control"))
	}
	w = get(t, h, "/assets/app.js", http.Header{"If-None-Match": {`"x", ` + tag}})
	if w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Errorf("If-None-Match: %d with %d bytes, want 304 and none", w.Code, w.Body.Len())
	}
	w = get(t, h, "/assets/console.css", nil)
	if ct := w.Header().Get("Content-Type"); ct != "text/css; charset=utf-8" {
		t.Errorf("console.css: Content-Type %q", ct)
	}
	w = get(t, h, "/assets/nope.js", nil)
	if w.Code != 404 {
		t.Errorf("a missing asset: %d", w.Code)
	}
	w = get(t, h, "/assets/i18n/de.json", nil)
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
		t.Errorf("de.json: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	r := httptest.NewRequest("HEAD", "/assets/app.js", nil)
	rw := httptest.NewRecorder()
	h.ServeHTTP(rw, r)
	if rw.Code != 200 || rw.Body.Len() != 0 || rw.Header().Get("Content-Length") == "" {
		t.Errorf("HEAD: %d, %d bytes, Content-Length %q", rw.Code, rw.Body.Len(), rw.Header().Get("Content-Length"))
	}
}

// TestWeight keeps the console at most 200 KB of files, uncompressed.
func TestWeight(t *testing.T) {
	if n := New().Size(); n > 200*1024 {
		t.Errorf("the console weighs %d bytes, more than 200 KiB", n)
	} else {
		t.Logf("the console weighs %d bytes", n)
	}
}

func TestSecretInURL(t *testing.T) {
	for p, want := range map[string]bool{
		"/accept?token=abc": true, "/reset?token=abc": true, "/accept": false,
		"/?token=abc": false, "/me?token=x": false,
	} {
		if got := SecretInURL(httptest.NewRequest("GET", p, nil)); got != want {
			t.Errorf("%s: %v, want %v", p, got, want)
		}
	}
}

func readTable(t *testing.T, lang string) map[string]string {
	t.Helper()
	b, err := files.ReadFile("assets/i18n/" + lang + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s.json: %v", lang, err)
	}
	return m
}

// TestStrings checks the strings tables: the same keys in every language,
// no empty label, the same {placeholders}, and every key the scripts use.
func TestStrings(t *testing.T) {
	en, de := readTable(t, "en"), readTable(t, "de")
	ph := regexp.MustCompile(`\{\w+\}`)
	for k, v := range en {
		dv, ok := de[k]
		if !ok {
			t.Errorf("de.json lacks %s", k)
			continue
		}
		if strings.TrimSpace(v) == "" || strings.TrimSpace(dv) == "" {
			t.Errorf("%s: an empty label", k)
		}
		a, b := ph.FindAllString(v, -1), ph.FindAllString(dv, -1)
		sort.Strings(a)
		sort.Strings(b)
		if strings.Join(a, ",") != strings.Join(b, ",") {
			t.Errorf("%s: placeholders %v in English, %v in German", k, a, b)
		}
	}
	for k := range de {
		if _, ok := en[k]; !ok {
			t.Errorf("en.json lacks %s", k)
		}
	}

	// Every quoted 'area.key' in the scripts is a key of the tables.
	areas := map[string]bool{}
	for k := range en {
		areas[k[:strings.IndexByte(k, '.')]] = true
	}
	lit := regexp.MustCompile(`'([a-z]+)\.([a-z0-9_.]+)'`)
	cat := readCatalog(t)
	used := 0
	err := fs.WalkDir(files, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".js") {
			return err
		}
		b, _ := files.ReadFile(p)
		for _, m := range lit.FindAllStringSubmatch(string(b), -1) {
			if !areas[m[1]] || slices.Contains(cat.Permissions, m[1]+"."+m[2]) || slices.Contains(authz.AllowedVerbs(), m[1]+"."+m[2]) {
				continue // not a label, a permission name, or a verb of a user's "allowed"
			}
			used++
			if _, ok := en[m[1]+"."+m[2]]; !ok {
				t.Errorf("%s uses the label %s.%s, which the tables lack", p, m[1], m[2])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if used < 200 {
		t.Errorf("found only %d labels in the scripts", used)
	}

	// Labels of open sets, built from the catalog.
	for r := range cat.Roles {
		need(t, en, "role."+r)
	}
	for _, p := range cat.Permissions {
		need(t, en, "perm."+p)
	}
	for _, p := range cat.ProjectPrivileges {
		need(t, en, "priv."+p)
	}
	for _, p := range cat.DeviceRights {
		need(t, en, "right."+p)
	}
	for _, a := range cat.AuditActions {
		need(t, en, "action."+a)
	}
	for _, s := range []string{"active", "inactive", "trash", "invited"} {
		need(t, en, "status."+s)
	}
}

func need(t *testing.T, m map[string]string, k string) {
	t.Helper()
	if _, ok := m[k]; !ok {
		t.Errorf("the tables lack %s", k)
	}
}

// NoInlineScriptOrStyle: the CSP allows neither, so none may be written.
func TestNoInlineScriptOrStyle(t *testing.T) {
	bad := regexp.MustCompile(`(?i)<script>|<script [^>]*>[^<]|\sstyle=|\son[a-z]+=|innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function|setAttribute\('style'|javascript:`)
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !strings.HasSuffix(p, ".js") && !strings.HasSuffix(p, ".html") {
			return nil
		}
		b, _ := files.ReadFile(p)
		if m := bad.FindString(string(b)); m != "" {
			t.Errorf("%s: %q (blocked by the CSP, or a way to turn data into markup)", p, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestVerbsKnown: every verb the scripts ask a user's "allowed" for
// (caller.may(u, 'verb')) is one the API lists.
func TestVerbsKnown(t *testing.T) {
	call := regexp.MustCompile(`\.may\([^,()]+, '([^']*)'\)`)
	n := 0
	err := fs.WalkDir(files, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".js") {
			return err
		}
		b, _ := files.ReadFile(p)
		for _, m := range call.FindAllStringSubmatch(string(b), -1) {
			n++
			if !slices.Contains(authz.AllowedVerbs(), m[1]) {
				t.Errorf("%s asks for the verb %q, which the API does not list", p, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 15 {
		t.Errorf("found only %d verbs asked for", n)
	}
}
