package module

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/apiusers/apiusers/internal/apitest"
)

// TestE2EEventsNameConfusion: through the events example, a registration
// key cannot make a user whose name is a victim's under Unicode case
// folding or compatibility forms, nor one with invisible characters, so no
// one reads or writes another's data on `require … owner` routes.
func TestE2EEventsNameConfusion(t *testing.T) {
	forEachStore(t, e2eSite{example: "events"}, func(t *testing.T, x *e2e) {
		sam := x.MkUser(t, x.Root, "acme", "sam", "api_basic", nil)
		x.Want(t, http.StatusOK, sam, http.MethodPost, "/events/sam/diary")
		signup := x.MkUser(t, x.Root, "acme", "signup-app", "api_registration", nil)

		register := func(name string) (int, []byte) {
			t.Helper()
			b, _ := json.Marshal(map[string]any{"username": name, "kind": "api", "role": "api_basic", "issue_key": true})
			return x.Send(t, signup.Key, http.MethodPost, "/admin/workspaces/acme/users", string(b))
		}
		for _, c := range []struct {
			name   string
			status int
		}{
			{"\u017fam", http.StatusConflict},               // ſam: long s folds to s
			{"SAM", http.StatusConflict},                    // plain case
			{"\uff53\uff41\uff4d", http.StatusConflict},     // fullwidth ｓａｍ
			{"s\u200bam", http.StatusBadRequest},            // zero-width space
			{"\u202emas", http.StatusBadRequest},            // right-to-left override
			{"sa\u034fm", http.StatusBadRequest},            // combining grapheme joiner
			{"sam\u0378", http.StatusBadRequest},            // unassigned
			{"\uff35\uff33\uff32_x", http.StatusBadRequest}, // fullwidth USR_: the usr_ rule
		} {
			status, body := register(c.name)
			if status != c.status {
				t.Errorf("registering %q: %d %s, want %d", c.name, status, body, c.status)
			}
			if status == http.StatusCreated {
				var u apitest.User
				_ = json.Unmarshal(body, &u)
				if st, b := x.Send(t, u.Key, http.MethodGet, "/events/sam", ""); st != http.StatusForbidden {
					t.Errorf("%q reads sam's events: %d %s", c.name, st, b)
				}
			}
		}
		// sam reaches its own data under any spelling of its name.
		x.Want(t, http.StatusOK, sam, http.MethodGet, "/events/SAM")
		x.Want(t, http.StatusOK, sam, http.MethodGet, "/events/%C5%BFam")
	})
}
