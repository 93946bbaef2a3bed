package admin

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/apiusers/apiusers/authz"
)

// TestAdminLimits: rate limits and credits over the admin API, on users,
// keys and teams: set, shown, removed with null, refused when malformed.
func TestAdminLimits(t *testing.T) {
	e := newTestEnv(t, Options{})
	u := e.createUser("station", authz.RoleAPIUser)
	userPath := "/workspaces/ws/users/" + u.ID
	keyPath := userPath + "/keys/" + u.KeyID

	var got authz.User
	e.ok(req{method: "PATCH", path: userPath, key: e.root,
		body: `{"rate_limit": {"requests": 100, "per": "60s", "burst": 10}, "credits": {"remaining": 1000, "refill": {"amount": 1000, "every": "day"}}}`},
		http.StatusOK, &got)
	if got.RateLimit == nil || *got.RateLimit != (authz.RateLimit{Requests: 100, Per: "1m", Burst: 10}) {
		t.Errorf("rate_limit %+v", got.RateLimit)
	}
	if got.Credits == nil || got.Credits.Remaining != 1000 || got.Credits.Refill == nil || got.Credits.RefillsAt == nil {
		t.Errorf("credits %+v", got.Credits)
	}
	w := e.ok(req{method: "GET", path: userPath, key: e.root}, http.StatusOK, nil)
	var raw map[string]json.RawMessage
	_ = json.Unmarshal(w.Body.Bytes(), &raw)
	if string(raw["rate_limit"]) != `{"requests":100,"per":"1m","burst":10}` {
		t.Errorf("GET rate_limit: %s", raw["rate_limit"])
	}
	if !strings.HasPrefix(string(raw["credits"]), `{"remaining":1000,"refill":{"amount":1000,"every":"day"},"refills_at":"`) {
		t.Errorf("GET credits: %s", raw["credits"])
	}

	var k authz.Key
	e.ok(req{method: "PATCH", path: keyPath, key: e.root, body: `{"credits": {"remaining": 5}}`}, http.StatusOK, &k)
	if k.Credits == nil || k.Credits.Remaining != 5 || k.Credits.Refill != nil {
		t.Errorf("key credits %+v", k.Credits)
	}
	var keys list[authz.Key]
	e.ok(req{method: "GET", path: userPath + "/keys", key: e.root}, http.StatusOK, &keys)
	if len(keys.Items) != 1 || keys.Items[0].Credits == nil || keys.Items[0].Credits.Remaining != 5 {
		t.Errorf("key list: %+v", keys.Items)
	}

	// null removes; a left-out field stays.
	got = authz.User{}
	e.ok(req{method: "PATCH", path: userPath, key: e.root, body: `{"rate_limit": null}`}, http.StatusOK, &got)
	if got.RateLimit != nil || got.Credits == nil {
		t.Errorf("after rate_limit null: rate_limit %+v, credits %+v", got.RateLimit, got.Credits)
	}

	// Teams.
	var tm authz.Team
	e.ok(req{method: "POST", path: "/workspaces/ws/teams", key: e.root, body: `{"name": "fast", "rate_limit": {"requests": 5, "per": "1s"}}`}, http.StatusCreated, &tm)
	if tm.RateLimit == nil || tm.RateLimit.Requests != 5 {
		t.Errorf("team rate_limit %+v", tm.RateLimit)
	}
	tid := tm.ID
	tm = authz.Team{}
	e.ok(req{method: "PATCH", path: "/workspaces/ws/teams/" + tid, key: e.root, body: `{"rate_limit": null}`}, http.StatusOK, &tm)
	if tm.RateLimit != nil {
		t.Errorf("team rate_limit after null: %+v", tm.RateLimit)
	}

	// Refused, with the field named, and nothing changed.
	for _, c := range []struct{ path, body, field string }{
		{userPath, `{"rate_limit": {"requests": 10, "per": "1s", "every": 2}}`, "rate_limit.every"},
		{userPath, `{"rate_limit": {"Requests": 10, "per": "1s"}}`, "rate_limit.Requests"},
		{userPath, `{"rate_limit": {"requests": 10, "per": "daily"}}`, "rate_limit.per"},
		{userPath, `{"rate_limit": {"requests": "ten", "per": "1s"}}`, ""},
		{userPath, `{"credits": {"refill": {"amount": 5, "every": "day"}}}`, "credits.remaining"},
		{userPath, `{"credits": {"remaining": 5, "refill": {"amount": 5, "every": "fortnight"}}}`, "credits.refill"},
		{keyPath, `{"credits": {"remaining": -5}}`, "credits.remaining"},
		{keyPath, `{"name": "renamed"}`, "name"},
	} {
		w := e.do(req{method: "PATCH", path: c.path, key: e.root, body: c.body})
		p := problemOf(t, w, http.StatusBadRequest)
		if c.field != "" && p.Field != c.field {
			t.Errorf("%s: field %q, want %q (%s)", c.body, p.Field, c.field, p.Detail)
		}
	}
	got = authz.User{}
	e.ok(req{method: "GET", path: userPath, key: e.root}, http.StatusOK, &got)
	if got.RateLimit != nil || got.Credits == nil || got.Credits.Remaining != 1000 {
		t.Errorf("refused patches changed the user: %+v %+v", got.RateLimit, got.Credits)
	}

	// A user may not set its own (nor its keys').
	self := e.createUser("helper", authz.RoleAdmin)
	w = e.do(req{method: "PATCH", path: "/workspaces/ws/users/" + self.ID + "/keys/" + self.KeyID, key: self.Key, body: `{"credits": {"remaining": 1000000}}`})
	problemOf(t, w, http.StatusForbidden)
}
