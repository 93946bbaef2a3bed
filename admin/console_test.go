package admin

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/apiusers/apiusers/admin/console"
)

// TestConsoleBesideTheAPI: the console's pages and files answer without a
// key, under its CSP; every other path is the API as before (401 without a
// key), and a POST to a page path is the API's too.
func TestConsoleBesideTheAPI(t *testing.T) {
	e := newTestEnv(t, Options{})
	for _, p := range []string{"/", "/accept?token=abc", "/reset?token=abc", "/assets/app.js", "/assets/i18n/de.json"} {
		r := httptest.NewRequest("GET", p, nil)
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		if w.Code != http.StatusOK || w.Header().Get("Content-Security-Policy") != console.CSP {
			t.Errorf("GET %s: %d, CSP %q", p, w.Code, w.Header().Get("Content-Security-Policy"))
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	if ct := w.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" || !strings.Contains(w.Body.String(), `<script type="module" src="assets/app.js">`) {
		t.Errorf("GET /: %q %.80q", ct, w.Body.String())
	}
	for _, c := range []struct{ method, path string }{
		{"GET", "/me"}, {"GET", "/workspaces"}, {"POST", "/"}, {"POST", "/accept"},
		{"GET", "/assets/../me"}, {"GET", "/accept/"}, {"GET", "/nothing"},
	} {
		w := e.do(req{method: c.method, path: c.path})
		if w.Code != http.StatusUnauthorized && w.Code != http.StatusNotFound {
			t.Errorf("%s %s without a key: %d, want the API's 401 or 404", c.method, c.path, w.Code)
		}
		if w.Header().Get("Content-Security-Policy") != "" {
			t.Errorf("%s %s: answered by the console", c.method, c.path)
		}
	}
	e.ok(req{method: "GET", path: "/me", key: e.root}, http.StatusOK, nil)
}
