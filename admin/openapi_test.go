package admin

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// openAPIPaths is the part of the OpenAPI document the route test reads:
// path -> method -> operation.
type openAPIPaths struct {
	OpenAPI string                                `json:"openapi"`
	Paths   map[string]map[string]json.RawMessage `json:"paths"`
}

// TestOpenAPIMatchesRoutes checks the route table against the OpenAPI
// document both ways: every route is documented, every documented
// operation is served.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc openAPIPaths
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	h := New(nil, Options{})
	served := map[string]bool{}
	for _, rt := range h.routes() {
		op := strings.ToLower(rt.method) + " " + rt.path
		if served[op] {
			t.Errorf("route %s listed twice", op)
		}
		served[op] = true
		raw, ok := doc.Paths[rt.path][strings.ToLower(rt.method)]
		if !ok {
			t.Errorf("route %s %s is not in openapi.json", rt.method, rt.path)
			continue
		}
		// Every authenticated route can answer 429: a caller's address
		// that failed authentication too often is refused before routing.
		var o struct {
			Responses map[string]json.RawMessage `json:"responses"`
		}
		if err := json.Unmarshal(raw, &o); err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		if _, ok := o.Responses["429"]; !ok && !rt.public {
			t.Errorf("route %s %s needs a key but does not declare its 429", rt.method, rt.path)
		}
	}
	methods := []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}
	for path, ops := range doc.Paths {
		for m := range ops {
			if !slices.Contains(methods, m) {
				continue // parameters, summary, …
			}
			if !served[m+" "+path] {
				t.Errorf("openapi.json documents %s %s, which no route serves", strings.ToUpper(m), path)
			}
		}
	}
}

// TestOpenAPIServed checks GET /openapi.json needs no key.
func TestOpenAPIServed(t *testing.T) {
	e := &testEnv{t: t, h: New(nil, Options{})}
	w := e.ok(req{method: "GET", path: "/openapi.json"}, http.StatusOK, &openAPIPaths{})
	if w.Body.Len() != len(openAPIDoc) {
		t.Errorf("served %d bytes, document has %d", w.Body.Len(), len(openAPIDoc))
	}
}
