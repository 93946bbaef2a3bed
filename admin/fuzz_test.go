package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/apiusers/apiusers/authz"
)

// FuzzDecodeBody: request decoding never panics, answers every bad body
// with a 400, 413 or 415 (never another status), and what it accepts as
// one type has each member spelled exactly once.
func FuzzDecodeBody(f *testing.F) {
	for _, seed := range []string{
		`{"username":"sam","kind":"api","role":"api_user","grants":[{"resource":"device:1","rights":["read"]}]}`,
		`{"username":"sam","username":"x"}`, `{"Username":"sam"}`, `{"grace":"24h"}`, `{"expires_at":"2030-01-01T00:00:00Z"}`,
		`{"status":"trash"}`, `[]`, `null`, `{"a":{"b":[1,{"c":2}]}}`, `{"name":"ops","permissions":["x"]}`, `{"id":"w","name":"W"}`,
		strings.Repeat("[", 100), `{"private_note":"\u0000"}`, `{}{}`,
	} {
		f.Add([]byte(seed))
	}
	targets := []func() any{
		func() any { return new(authz.NewUser) }, func() any { return new(authz.UserPatch) }, func() any { return new(authz.SelfPatch) },
		func() any { return new(authz.NewTeam) }, func() any { return new(authz.TeamPatch) }, func() any { return new(authz.NewKey) },
		func() any { return new(statusChange) }, func() any { return new(regenerate) }, func() any { return new(newWorkspace) },
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, mk := range targets {
			v := mk()
			r := httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(string(body)))
			r.Header.Set("Content-Type", "application/json")
			err := decodeBody(httptest.NewRecorder(), r, v, true)
			if err == nil {
				// Accepted: a strict decoder agrees, member for member.
				var m map[string]json.RawMessage
				if json.Unmarshal(body, &m) == nil {
					for name := range m {
						if _, ok := fieldsOf(reflect.TypeOf(v).Elem())[name]; !ok {
							t.Fatalf("%T accepted member %q it has no field for", v, name)
						}
					}
				}
				continue
			}
			var re *requestError
			var mbe *http.MaxBytesError
			if !errors.As(err, &re) && !errors.As(err, &mbe) {
				t.Fatalf("%T: error %v (%T) is not a request error", v, err, err)
			}
		}
	})
}

// FuzzCreateUser: any body POSTed to create a user is answered 201 or 4xx
// (never 5xx), and a 4xx creates nothing.
func FuzzCreateUser(f *testing.F) {
	for _, seed := range []string{
		`{"username":"sam","kind":"api","role":"api_user"}`,
		`{"username":"ſam","kind":"api","role":"api_basic","email":"a@b.c","timezone":"Europe/Berlin","language":"de-CH"}`,
		`{"username":"x","kind":"member","role":"viewer","permissions":["rules.manage"],"grants":[{"resource":"device:*","rights":["read"]}]}`,
		`{"username":"usr_x","kind":"api","role":"api_user"}`, `{"username":"a\u202eb","kind":"api","role":"api_user"}`,
		`{"username":"t","kind":"api","role":"api_user","teams":["team_x"],"issue_key":true,"private_note":"a\nb"}`,
	} {
		f.Add([]byte(seed))
	}
	e := newTestEnv(f, Options{})
	f.Fuzz(func(t *testing.T, body []byte) {
		e.t = t
		before := e.userCount()
		w := e.do(req{method: http.MethodPost, path: "/workspaces/ws/users", key: e.root, body: string(body)})
		switch {
		case w.Code == http.StatusCreated:
		case w.Code >= 400 && w.Code < 500:
			if after := e.userCount(); after != before {
				t.Fatalf("a %d created a user: %s", w.Code, w.Body)
			}
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
	})
}
