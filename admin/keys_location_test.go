package admin

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/apiusers/apiusers/authz"
)

// TestKeyLocations: the Location of a created and of a regenerated key is
// a path that answers GET with the key's metadata (never the key), to the
// user itself and to its managers only.
func TestKeyLocations(t *testing.T) {
	e := newTestEnv(t, Options{})
	u := e.createUser("loc-user", authz.RoleAPIUser)
	other := e.createUser("loc-other", authz.RoleAPIUser)
	keys := "/workspaces/ws/users/" + u.ID + "/keys"

	var created authz.IssuedKey
	w := e.ok(req{method: "POST", path: keys, key: e.root, body: `{"name":"ci"}`}, http.StatusCreated, &created)
	regen := e.ok(req{method: "POST", path: keys + "/" + created.ID + "/regenerate", key: e.root, body: `{"grace":"1h"}`}, http.StatusCreated, nil)
	var regenerated authz.IssuedKey
	if err := json.Unmarshal(regen.Body.Bytes(), &regenerated); err != nil {
		t.Fatal(err)
	}
	for what, c := range map[string]struct {
		base, loc, id string
	}{
		"created":     {keys, w.Header().Get("Location"), created.ID},
		"regenerated": {keys + "/" + created.ID + "/regenerate", regen.Header().Get("Location"), regenerated.ID},
	} {
		path := resolve(t, "http://x"+c.base, c.loc)
		if path != keys+"/"+c.id {
			t.Errorf("%s: Location %q resolves to %q", what, c.loc, path)
		}
		for _, key := range []string{e.root, u.Key} {
			var got authz.Key
			w := e.ok(req{method: "GET", path: path, key: key}, http.StatusOK, &got)
			if got.ID != c.id || got.Name != "ci" || strings.Contains(w.Body.String(), `"key"`) || strings.Contains(w.Body.String(), "eyJ") {
				t.Errorf("%s: GET %s = %s", what, path, w.Body)
			}
		}
		problemOf(t, e.do(req{method: "GET", path: path, key: other.Key}), http.StatusForbidden)
	}
	// A revoked key is gone; an unknown one was never there.
	e.ok(req{method: "DELETE", path: keys + "/" + regenerated.ID, key: e.root}, http.StatusNoContent, nil)
	problemOf(t, e.do(req{method: "GET", path: keys + "/" + regenerated.ID, key: e.root}), http.StatusNotFound)
	problemOf(t, e.do(req{method: "GET", path: keys + "/key_00000000000000000000000000", key: e.root}), http.StatusNotFound)
}
