package authz_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/limit"
)

func rl(n int64, per string, burst int64) *authz.RateLimit {
	return &authz.RateLimit{Requests: n, Per: per, Burst: burst}
}

func setRate(r *authz.RateLimit) authz.Optional[authz.RateLimit] {
	return authz.Optional[authz.RateLimit]{Set: true, Value: r}
}

func setCredits(remaining int64, refill *authz.Refill) authz.Optional[authz.SetCredits] {
	return authz.Optional[authz.SetCredits]{Set: true, Value: &authz.SetCredits{Remaining: &remaining, Refill: refill}}
}

// TestCallerRateLimits: a key's own rate limit, else its user's, else the
// highest of its teams', is what the gateway finds in the principal.
func TestCallerRateLimits(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		e := newEnv(t, open(t))
		ctx := e.ctx
		cu, _ := e.user("acme", "station", authz.KindAPI, authz.RoleAPIUser)
		rate := func() *limit.Rate {
			t.Helper()
			p := e.auth(cu.Key)
			r, _ := p.CallerLimits(cu.KeyID)
			return r
		}
		if r := rate(); r != nil {
			t.Fatalf("no limits set: %v", r)
		}
		// A key's own, with nothing on its user.
		other, _ := e.user("acme", "other", authz.KindAPI, authz.RoleAPIUser)
		if _, err := e.svc.UpdateKey(ctx, e.root, "acme", other.ID, other.KeyID, authz.KeyPatch{RateLimit: setRate(rl(7, "1s", 0))}); err != nil {
			t.Fatal(err)
		}
		if r, _ := e.auth(other.Key).CallerLimits(other.KeyID); r == nil || r.Requests != 7 {
			t.Fatalf("a key's own on a user without any: %v", r)
		}
		slow, err := e.svc.CreateTeam(ctx, e.root, "acme", authz.NewTeam{Name: "slow", RateLimit: rl(10, "1m", 0)})
		if err != nil {
			t.Fatal(err)
		}
		fast, err := e.svc.CreateTeam(ctx, e.root, "acme", authz.NewTeam{Name: "fast", RateLimit: rl(5, "1s", 0)})
		if err != nil {
			t.Fatal(err)
		}
		for _, tm := range []*authz.Team{slow, fast} {
			if err := e.svc.AddMember(ctx, e.root, "acme", tm.ID, cu.ID); err != nil {
				t.Fatal(err)
			}
		}
		if r := rate(); r == nil || *r != (limit.Rate{Requests: 5, Per: time.Second}) {
			t.Fatalf("two teams: %v, want the highest (5 per second)", r)
		}
		u, err := e.svc.UpdateUser(ctx, e.root, "acme", cu.ID, authz.UserPatch{RateLimit: setRate(rl(2, "1s", 4))}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if u.RateLimit == nil || *u.RateLimit != (authz.RateLimit{Requests: 2, Per: "1s", Burst: 4}) {
			t.Errorf("user's rate_limit: %+v", u.RateLimit)
		}
		if r := rate(); r == nil || *r != (limit.Rate{Requests: 2, Per: time.Second, Burst: 4}) {
			t.Fatalf("user's own: %v, want it over its teams'", r)
		}
		k, err := e.svc.UpdateKey(ctx, e.root, "acme", cu.ID, cu.KeyID, authz.KeyPatch{RateLimit: setRate(rl(1000, "3600s", 0))})
		if err != nil {
			t.Fatal(err)
		}
		if k.RateLimit.Per != "1h" {
			t.Errorf("per is written canonically: %q, want 1h", k.RateLimit.Per)
		}
		if r := rate(); r == nil || *r != (limit.Rate{Requests: 1000, Per: time.Hour}) {
			t.Fatalf("key's own: %v, want it over the user's", r)
		}
		// null removes: the user's again.
		if _, err := e.svc.UpdateKey(ctx, e.root, "acme", cu.ID, cu.KeyID, authz.KeyPatch{RateLimit: setRate(nil)}); err != nil {
			t.Fatal(err)
		}
		if r := rate(); r == nil || r.Requests != 2 {
			t.Fatalf("after removing the key's: %v, want the user's", r)
		}
		// Audited, old and new.
		entries, _, err := e.svc.ListAudit(ctx, e.root, "acme", authz.Page{})
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, en := range entries {
			if c, ok := en.Changes["rate_limit"]; ok {
				actions = append(actions, en.Action+" "+string(c.Old)+" -> "+string(c.New))
			}
		}
		want := []string{
			`key.update {"requests":1000,"per":"1h"} -> `,
			`key.update  -> {"requests":1000,"per":"1h"}`,
			`user.update  -> {"requests":2,"per":"1s","burst":4}`,
		}
		if strings.Join(actions[:3], "\n") != strings.Join(want, "\n") {
			t.Errorf("audit:\n%s\nwant\n%s", strings.Join(actions, "\n"), strings.Join(want, "\n"))
		}
	})
}

func TestCallerLimitsRules(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		e := newEnv(t, open(t))
		ctx := e.ctx
		cu, _ := e.user("acme", "station", authz.KindAPI, authz.RoleAPIUser)
		adm, admin := e.user("acme", "ad", authz.KindMember, authz.RoleAdmin)
		_, editor := e.user("acme", "ed", authz.KindMember, authz.RoleEditor)
		_, reg := e.user("acme", "app", authz.KindAPI, authz.RoleAPIRegistration)
		_, biz := e.user("acme", "biz", authz.KindAPI, authz.RoleAPIBusiness)
		basic, _ := e.user("acme", "basic", authz.KindAPI, authz.RoleAPIBasic)

		t.Run("an admin sets an api_user's", func(t *testing.T) {
			if _, err := e.svc.UpdateUser(ctx, admin, "acme", cu.ID, authz.UserPatch{RateLimit: setRate(rl(1, "1s", 0)), Credits: setCredits(10, nil)}, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := e.svc.UpdateKey(ctx, admin, "acme", cu.ID, cu.KeyID, authz.KeyPatch{Credits: setCredits(5, nil)}); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("nobody sets its own", func(t *testing.T) {
			_, err := e.svc.UpdateUser(ctx, admin, "acme", adm.ID, authz.UserPatch{Credits: setCredits(1<<40, nil)}, nil)
			wantErr(t, err, authz.ErrForbidden)
			_, err = e.svc.UpdateKey(ctx, admin, "acme", adm.ID, adm.KeyID, authz.KeyPatch{RateLimit: setRate(rl(1000, "1s", 0))})
			wantErr(t, err, authz.ErrForbidden)
			_, err = e.svc.UpdateUser(ctx, e.root, "acme", e.root.UserID, authz.UserPatch{RateLimit: setRate(rl(1, "1s", 0))}, nil)
			wantErr(t, err, authz.ErrForbidden)
		})
		t.Run("an editor manages no users, so sets no limits", func(t *testing.T) {
			_, err := e.svc.UpdateUser(ctx, editor, "acme", cu.ID, authz.UserPatch{Credits: setCredits(1, nil)}, nil)
			wantErr(t, err, authz.ErrForbidden)
			_, err = e.svc.UpdateKey(ctx, editor, "acme", cu.ID, cu.KeyID, authz.KeyPatch{Credits: setCredits(1, nil)})
			wantErr(t, err, authz.ErrForbidden)
		})
		t.Run("api_registration creates api_basic users but sets no limits", func(t *testing.T) {
			_, err := e.svc.CreateUser(ctx, reg, "acme", authz.NewUser{Username: "s1", Kind: authz.KindAPI, Role: authz.RoleAPIBasic,
				Credits: &authz.SetCredits{Remaining: ptr(int64(1000))}})
			wantErr(t, err, authz.ErrForbidden)
		})
		t.Run("api_business sets its api_basic users'", func(t *testing.T) {
			if _, err := e.svc.UpdateUser(ctx, biz, "acme", basic.ID, authz.UserPatch{Credits: setCredits(100, nil)}, nil); err != nil {
				t.Fatal(err)
			}
			_, err := e.svc.UpdateUser(ctx, biz, "acme", cu.ID, authz.UserPatch{Credits: setCredits(100, nil)}, nil)
			wantErr(t, err, authz.ErrForbidden)
		})
		t.Run("nobody sets the limit of a team it is in", func(t *testing.T) {
			tm, err := e.svc.CreateTeam(ctx, e.root, "acme", authz.NewTeam{Name: "ops"})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.svc.AddMember(ctx, e.root, "acme", tm.ID, adm.ID); err != nil {
				t.Fatal(err)
			}
			admin = e.auth(adm.Key)
			_, err = e.svc.UpdateTeam(ctx, admin, "acme", tm.ID, authz.TeamPatch{RateLimit: setRate(rl(1000, "1s", 0))}, nil)
			wantErr(t, err, authz.ErrForbidden)
			if _, err := e.svc.UpdateTeam(ctx, e.root, "acme", tm.ID, authz.TeamPatch{RateLimit: setRate(rl(1000, "1s", 0))}, nil); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("bad input is refused and changes nothing", func(t *testing.T) {
			before, err := e.svc.GetUser(ctx, e.root, "acme", cu.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				patch authz.UserPatch
				field string
			}{
				{authz.UserPatch{RateLimit: setRate(rl(0, "1s", 0))}, "rate_limit"},
				{authz.UserPatch{RateLimit: setRate(rl(10, "soon", 0))}, "rate_limit.per"},
				{authz.UserPatch{RateLimit: setRate(rl(1000, "100ms", 1))}, "rate_limit"},
				{authz.UserPatch{Credits: setCredits(-1, nil)}, "credits.remaining"},
				{authz.UserPatch{Credits: authz.Optional[authz.SetCredits]{Set: true, Value: &authz.SetCredits{}}}, "credits.remaining"},
				{authz.UserPatch{Credits: setCredits(5, &authz.Refill{Amount: 5, Every: "week"})}, "credits.refill"},
				{authz.UserPatch{Credits: setCredits(5, &authz.Refill{Amount: 0, Every: "day"})}, "credits.refill"},
				{authz.UserPatch{Credits: setCredits(5, &authz.Refill{Amount: 5, Every: "500ms"})}, "credits.refill"},
				// Days beyond a Duration, not wrapped around to 25m26s.
				{authz.UserPatch{RateLimit: setRate(rl(10, "213504d", 0))}, "rate_limit.per"},
				{authz.UserPatch{Credits: setCredits(5, &authz.Refill{Amount: 5, Every: "213504d"})}, "credits.refill"},
			} {
				_, err := e.svc.UpdateUser(ctx, e.root, "acme", cu.ID, c.patch, nil)
				wantErr(t, err, authz.ErrInvalid)
				var ae *authz.Error
				if !asErr(err, &ae) || ae.Field != c.field {
					t.Errorf("%+v: error %v, want one about %s", c.patch, err, c.field)
				}
			}
			after, err := e.svc.GetUser(ctx, e.root, "acme", cu.ID)
			if err != nil {
				t.Fatal(err)
			}
			if after.Version != before.Version {
				t.Errorf("a refused patch changed the user: version %d -> %d", before.Version, after.Version)
			}
		})
	})
}

// TestCreditsShown: the credits a user and a key carry show in their JSON
// with what remains, and setting them is audited.
func TestCreditsShown(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		e := newEnv(t, open(t))
		ctx := e.ctx
		cu, err := e.svc.CreateUser(ctx, e.root, "acme", authz.NewUser{Username: "station", Kind: authz.KindAPI, Role: authz.RoleAPIUser,
			IssueKey: true, Credits: &authz.SetCredits{Remaining: ptr(int64(500)), Refill: &authz.Refill{Amount: 500, Every: "month"}}})
		if err != nil {
			t.Fatal(err)
		}
		if cu.Credits == nil || cu.Credits.Remaining != 500 || cu.Credits.RefillsAt == nil {
			t.Fatalf("created with credits: %+v", cu.Credits)
		}
		if got, want := *cu.Credits.RefillsAt, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
			t.Errorf("refills_at %s, want %s (the next UTC month)", got, want)
		}
		b, _ := json.Marshal(cu.Credits)
		if string(b) != `{"remaining":500,"refill":{"amount":500,"every":"month"},"refills_at":"2026-02-01T00:00:00Z"}` {
			t.Errorf("credits JSON: %s", b)
		}
		k, err := e.svc.CreateKey(ctx, e.root, "acme", cu.ID, authz.NewKey{Name: "metered",
			Credits: &authz.SetCredits{Remaining: ptr(int64(20)), Refill: &authz.Refill{Amount: 20, Every: "3600s"}}})
		if err != nil {
			t.Fatal(err)
		}
		if k.Credits == nil || k.Credits.Remaining != 20 || k.Credits.Refill.Every != "1h" {
			t.Fatalf("key credits: %+v", k.Credits)
		}
		keys, err := e.svc.ListKeys(ctx, e.root, "acme", cu.ID)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, kk := range keys {
			if kk.ID == k.ID {
				found = kk.Credits != nil && kk.Credits.Remaining == 20
			}
		}
		if !found {
			t.Errorf("the key list does not show the key's credits: %+v", keys)
		}
		// The principal spends from the key's, for that key; from the
		// user's for its other key.
		p := e.auth(cu.Key)
		_, c := p.CallerLimits(cu.KeyID)
		if c == nil || c.ID != cu.ID || c.Set != 500 {
			t.Errorf("first key spends %+v, want the user's", c)
		}
		_, c = p.CallerLimits(k.ID)
		if c == nil || c.ID != k.ID || c.Set != 20 {
			t.Errorf("metered key spends %+v, want its own", c)
		}
		// Removing them drops them from the principal.
		if _, err := e.svc.UpdateUser(ctx, e.root, "acme", cu.ID, authz.UserPatch{Credits: authz.Optional[authz.SetCredits]{Set: true}}, nil); err != nil {
			t.Fatal(err)
		}
		if _, c := e.auth(cu.Key).CallerLimits(cu.KeyID); c != nil {
			t.Errorf("after removing the user's credits: %+v", c)
		}
		entries, _, err := e.svc.ListAudit(ctx, e.root, "acme", authz.Page{})
		if err != nil {
			t.Fatal(err)
		}
		var seen []string
		for _, en := range entries {
			if c, ok := en.Changes["credits"]; ok {
				seen = append(seen, en.Action+" "+string(c.Old)+" -> "+string(c.New))
			}
		}
		want := []string{
			`user.update {"remaining":500,"refill":{"amount":500,"every":"month"}} -> `,
			`key.create  -> {"remaining":20,"refill":{"amount":20,"every":"1h"}}`,
			`user.create  -> {"remaining":500,"refill":{"amount":500,"every":"month"}}`,
		}
		if strings.Join(seen, "\n") != strings.Join(want, "\n") {
			t.Errorf("audit:\n%s\nwant\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
		}
	})
}

// TestCreditsSpentShow: what a gateway spends shows as remaining in the
// key's JSON once reported; a regenerated key spends from the same
// account.
func TestCreditsSpentShow(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		e, st, cu := stationWithCredits(t, open)
		ctx := e.ctx
		eng := limit.NewEngine(limit.EngineConfig{Ledger: st.(limit.Ledger), Now: e.Now})
		spend := func(key, kid string, n int) {
			t.Helper()
			_, c := e.auth(key).CallerLimits(kid)
			for range n {
				if d := eng.Spend(ctx, c, 1, e.Now().UnixNano()); !d.Allowed {
					t.Fatalf("spend: %+v", d)
				}
			}
		}
		spend(cu.Key, cu.KeyID, 30)
		eng.Close() // reports and gives back what it holds
		remaining := func(kid string) int64 {
			t.Helper()
			keys, err := e.svc.ListKeys(ctx, e.root, "acme", cu.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				if k.ID == kid && k.Credits != nil {
					return k.Credits.Remaining
				}
			}
			t.Fatalf("key %s has no credits", kid)
			return 0
		}
		if r := remaining(cu.KeyID); r != 70 {
			t.Errorf("after 30 spent: remaining %d, want 70", r)
		}
		nk, err := e.svc.RegenerateKey(ctx, e.root, "acme", cu.ID, cu.KeyID, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if nk.Credits == nil || nk.Credits.Remaining != 70 {
			t.Fatalf("regenerated key: %+v, want the same 70", nk.Credits)
		}
		eng = limit.NewEngine(limit.EngineConfig{Ledger: st.(limit.Ledger), Now: e.Now})
		spend(nk.Secret, nk.ID, 10)
		spend(cu.Key, cu.KeyID, 10) // the old key, in its grace
		eng.Close()
		if r, o := remaining(nk.ID), remaining(cu.KeyID); r != 50 || o != 50 {
			t.Errorf("one account for both keys: remaining %d and %d, want 50", r, o)
		}
	})
}

// TestCreditsSetDuringGrace: credits set on a regenerated key during its
// grace are the account's, and the key it replaces spends from them too:
// a gateway that only sees the old key is served, not answered
// unavailable because its records name the account's old setting.
func TestCreditsSetDuringGrace(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		e, st, cu := stationWithCredits(t, open)
		ctx := e.ctx
		nk, err := e.svc.RegenerateKey(ctx, e.root, "acme", cu.ID, cu.KeyID, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.UpdateKey(ctx, e.root, "acme", cu.ID, nk.ID, authz.KeyPatch{Credits: setCredits(500, nil)}); err != nil {
			t.Fatal(err)
		}
		// One gateway spends with the new key: the ledger has the new
		// setting.
		a := limit.NewEngine(limit.EngineConfig{Ledger: st.(limit.Ledger), Now: e.Now})
		_, c := e.auth(nk.Secret).CallerLimits(nk.ID)
		if d := a.Spend(ctx, c, 1, e.Now().UnixNano()); !d.Allowed {
			t.Fatalf("spend with the new key: %+v", d)
		}
		a.Close()
		// Another sees only the old key.
		b := limit.NewEngine(limit.EngineConfig{Ledger: st.(limit.Ledger), Now: e.Now})
		t.Cleanup(b.Close)
		_, c = e.auth(cu.Key).CallerLimits(cu.KeyID)
		if d := b.Spend(ctx, c, 1, e.Now().UnixNano()); !d.Allowed || d.Limit != 500 {
			t.Errorf("spend with the old key in its grace: %+v, want allowed from the 500 set", d)
		}
	})
}

// stationWithCredits opens a store that keeps a credit ledger (else
// skips), and makes the API user station whose key has 100 credits.
func stationWithCredits(t *testing.T, open func(t *testing.T) authz.Store) (*env, authz.Store, *authz.CreatedUser) {
	t.Helper()
	st := open(t)
	if _, ok := st.(limit.Ledger); !ok {
		t.Skip("the store keeps no credit ledger")
	}
	e := newEnv(t, st)
	cu, _ := e.user("acme", "station", authz.KindAPI, authz.RoleAPIUser)
	if _, err := e.svc.UpdateKey(e.ctx, e.root, "acme", cu.ID, cu.KeyID, authz.KeyPatch{Credits: setCredits(100, nil)}); err != nil {
		t.Fatal(err)
	}
	return e, st, cu
}

func ptr[T any](v T) *T { return &v }

func asErr(err error, target **authz.Error) bool {
	for err != nil {
		if e, ok := err.(*authz.Error); ok {
			*target = e
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

// TestTeamLimitNotLiftedByItsMembers: a caller with teams.manage neither
// joins a team with a rate limit nor leaves or deletes one it is in: each
// would change the limit it runs under, which it may not set itself.
func TestTeamLimitNotLiftedByItsMembers(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		e := newEnv(t, open(t))
		ctx := e.ctx
		adm, admin := e.user("acme", "ad", authz.KindMember, authz.RoleAdmin)
		cu, _ := e.user("acme", "station", authz.KindAPI, authz.RoleAPIUser)
		fast, err := e.svc.CreateTeam(ctx, e.root, "acme", authz.NewTeam{Name: "fast", RateLimit: rl(1000000, "1s", 0)})
		if err != nil {
			t.Fatal(err)
		}
		wantErr(t, e.svc.AddMember(ctx, admin, "acme", fast.ID, adm.ID), authz.ErrForbidden)
		if r, _ := e.auth(adm.Key).CallerLimits(adm.KeyID); r != nil {
			t.Errorf("the admin joined a fast team itself: its rate limit is %v", r)
		}
		if err := e.svc.AddMember(ctx, admin, "acme", fast.ID, cu.ID); err != nil {
			t.Errorf("adding a user it manages: %v", err)
		}
		slow, err := e.svc.CreateTeam(ctx, e.root, "acme", authz.NewTeam{Name: "slow", RateLimit: rl(1, "1h", 0)})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.svc.AddMember(ctx, e.root, "acme", slow.ID, adm.ID); err != nil {
			t.Fatal(err)
		}
		wantErr(t, e.svc.RemoveMember(ctx, admin, "acme", slow.ID, adm.ID), authz.ErrForbidden)
		wantErr(t, e.svc.DeleteTeam(ctx, admin, "acme", slow.ID), authz.ErrForbidden)
		if r, _ := e.auth(adm.Key).CallerLimits(adm.KeyID); r == nil || r.Requests != 1 {
			t.Errorf("the admin lifted the slow team's limit: %v", r)
		}
		// A team without a limit changes no limit.
		plain, err := e.svc.CreateTeam(ctx, e.root, "acme", authz.NewTeam{Name: "plain"})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.svc.AddMember(ctx, admin, "acme", plain.ID, adm.ID); err != nil {
			t.Errorf("joining a team without a limit: %v", err)
		}
		if err := e.svc.RemoveMember(ctx, e.root, "acme", slow.ID, adm.ID); err != nil {
			t.Errorf("root removes the admin: %v", err)
		}
	})
}

// TestTeamLimitNeedsItsMembers: setting a team's rate limit sets every
// member's, so it needs the right to manage each of them: an admin does
// not limit a team a superadmin is in, nor a caller with teams.manage
// alone a team of admins.
func TestTeamLimitNeedsItsMembers(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		e := newEnv(t, open(t))
		ctx := e.ctx
		_, admin := e.user("acme", "ad", authz.KindMember, authz.RoleAdmin)
		sa, _ := e.user("acme", "sa", authz.KindMember, authz.RoleSuperadmin)
		other, _ := e.user("acme", "ad2", authz.KindMember, authz.RoleAdmin)
		_, op := e.mk("op", authz.RoleOperator, []string{authz.PermTeamsManage}, nil)
		roots, err := e.svc.CreateTeam(ctx, e.root, "acme", authz.NewTeam{Name: "roots"})
		if err != nil {
			t.Fatal(err)
		}
		admins, err := e.svc.CreateTeam(ctx, e.root, "acme", authz.NewTeam{Name: "admins", RateLimit: rl(100, "1s", 0)})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []struct{ team, user string }{{roots.ID, sa.ID}, {admins.ID, other.ID}} {
			if err := e.svc.AddMember(ctx, e.root, "acme", m.team, m.user); err != nil {
				t.Fatal(err)
			}
		}
		_, err = e.svc.UpdateTeam(ctx, admin, "acme", roots.ID, authz.TeamPatch{RateLimit: setRate(rl(1, "24h", 0))}, nil)
		wantErr(t, err, authz.ErrForbidden)
		if r, _ := e.auth(sa.Key).CallerLimits(sa.KeyID); r != nil {
			t.Errorf("an admin limited a superadmin through its team: %v", r)
		}
		_, err = e.svc.UpdateTeam(ctx, op, "acme", admins.ID, authz.TeamPatch{RateLimit: setRate(rl(1, "24h", 0))}, nil)
		wantErr(t, err, authz.ErrForbidden)
		wantErr(t, e.svc.DeleteTeam(ctx, op, "acme", admins.ID), authz.ErrForbidden)
		if r, _ := e.auth(other.Key).CallerLimits(other.KeyID); r == nil || r.Requests != 100 {
			t.Errorf("teams.manage alone changed an admin's limit: %v", r)
		}
		// Who may manage every member may.
		if _, err := e.svc.UpdateTeam(ctx, admin, "acme", admins.ID, authz.TeamPatch{RateLimit: setRate(rl(5, "1s", 0))}, nil); err != nil {
			t.Errorf("an admin limits a team of admins: %v", err)
		}
		if _, err := e.svc.UpdateTeam(ctx, e.root, "acme", roots.ID, authz.TeamPatch{RateLimit: setRate(rl(5, "1s", 0))}, nil); err != nil {
			t.Errorf("root limits a team of superadmins: %v", err)
		}
		// A team's name is not its limit.
		name := "superadmins"
		if _, err := e.svc.UpdateTeam(ctx, admin, "acme", roots.ID, authz.TeamPatch{Name: &name}, nil); err != nil {
			t.Errorf("renaming: %v", err)
		}
	})
}

// TestCreditsSetAgain: setting credits to what they were set to before is
// a new setting: the balance is the value again (a top-up after spending),
// written and audited, for a key and for a user.
func TestCreditsSetAgain(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		e, st, cu := stationWithCredits(t, open)
		ctx := e.ctx
		if _, err := e.svc.UpdateUser(ctx, e.root, "acme", cu.ID, authz.UserPatch{Credits: setCredits(100, nil)}, nil); err != nil {
			t.Fatal(err)
		}
		plain, err := e.svc.CreateKey(ctx, e.root, "acme", cu.ID, authz.NewKey{Name: "plain"}) // spends the user's
		if err != nil {
			t.Fatal(err)
		}
		eng := limit.NewEngine(limit.EngineConfig{Ledger: st.(limit.Ledger), Now: e.Now})
		p := e.auth(cu.Key)
		_, kc := p.CallerLimits(cu.KeyID)
		_, uc := p.CallerLimits(plain.ID)
		for _, c := range []*limit.Credits{kc, uc} {
			for range 60 {
				if d := eng.Spend(ctx, c, 1, e.Now().UnixNano()); !d.Allowed {
					t.Fatalf("spend: %+v", d)
				}
			}
		}
		eng.Close()
		if _, err := e.svc.UpdateKey(ctx, e.root, "acme", cu.ID, cu.KeyID, authz.KeyPatch{Credits: setCredits(100, nil)}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.UpdateUser(ctx, e.root, "acme", cu.ID, authz.UserPatch{Credits: setCredits(100, nil)}, nil); err != nil {
			t.Fatal(err)
		}
		k, err := e.svc.GetKey(ctx, e.root, "acme", cu.ID, cu.KeyID)
		if err != nil {
			t.Fatal(err)
		}
		if k.Credits == nil || k.Credits.Remaining != 100 {
			t.Errorf("the key's credits set to 100 again after 60 spent: %+v, want 100", k.Credits)
		}
		u, err := e.svc.GetUser(ctx, e.root, "acme", cu.ID)
		if err != nil {
			t.Fatal(err)
		}
		if u.Credits == nil || u.Credits.Remaining != 100 {
			t.Errorf("the user's credits set to 100 again after 60 spent: %+v, want 100", u.Credits)
		}
		entries, _, err := e.svc.ListAudit(ctx, e.root, "acme", authz.Page{})
		if err != nil {
			t.Fatal(err)
		}
		var seen []string
		for _, en := range entries[:2] {
			seen = append(seen, en.Action+" "+string(en.Changes["credits"].New))
		}
		if want := []string{`user.update {"remaining":100}`, `key.update {"remaining":100}`}; strings.Join(seen, "\n") != strings.Join(want, "\n") {
			t.Errorf("audit:\n%s\nwant\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
		}
	})
}

// TestCreditsClosedWithTheirKey: an instance whose cache still holds a
// key revoked elsewhere (its user deleted, or its credits removed) spends
// no more than was left: the ledger closes the account rather than
// forgetting it, which let such an instance open it anew with the credits
// as set.
func TestCreditsClosedWithTheirKey(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		for _, end := range []string{"revoke", "delete user", "remove credits"} {
			t.Run(end, func(t *testing.T) {
				e, st, cu := stationWithCredits(t, open)
				ctx := e.ctx
				_, kc := e.auth(cu.Key).CallerLimits(cu.KeyID) // the stale instance's records
				spend := func(n int) int { return spendThrough(e, st, kc, n) }
				if got := spend(60); got != 60 {
					t.Fatalf("spent %d of 60", got)
				}
				var err error
				switch end {
				case "revoke":
					err = e.svc.RevokeKey(ctx, e.root, "acme", cu.ID, cu.KeyID)
				case "delete user":
					if _, err = e.svc.SetStatus(ctx, e.root, "acme", cu.ID, authz.StatusTrash); err == nil {
						err = e.svc.DeleteUser(ctx, e.root, "acme", cu.ID, false)
					}
				default:
					_, err = e.svc.UpdateKey(ctx, e.root, "acme", cu.ID, cu.KeyID, authz.KeyPatch{Credits: authz.Optional[authz.SetCredits]{Set: true}})
				}
				if err != nil {
					t.Fatal(err)
				}
				if got := spend(100); got != 0 {
					t.Errorf("after %s, an instance with the old records spent %d more credits, want 0", end, got)
				}
			})
		}
	})
}

// TestTeamDeleteAudited: the team.delete entry says what the members
// lost with the team: its permissions, grants and rate limit.
func TestTeamDeleteAudited(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		e := newEnv(t, open(t))
		ctx := e.ctx
		tm, err := e.svc.CreateTeam(ctx, e.root, "acme", authz.NewTeam{
			Name: "ops", Permissions: []string{"events.read"},
			Grants:    []authz.Grant{{Resource: "device:d1", Rights: []string{"read"}}},
			RateLimit: rl(10, "1s", 0),
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.svc.DeleteTeam(ctx, e.root, "acme", tm.ID); err != nil {
			t.Fatal(err)
		}
		entries, _, err := e.svc.ListAudit(ctx, e.root, "acme", authz.Page{Limit: 1})
		if err != nil || len(entries) != 1 || entries[0].Action != authz.ActionTeamDelete {
			t.Fatalf("newest entry: %+v %v", entries, err)
		}
		for _, f := range []string{"name", "members", "permissions", "grants", "rate_limit"} {
			c, ok := entries[0].Changes[f]
			if !ok || len(c.Old) == 0 || c.New != nil {
				t.Errorf("team.delete %s: %+v (present %v), want the old value and no new one", f, c, ok)
			}
		}
	})
}

// ledgerUnread is a store whose credit ledger settles and closes accounts
// but cannot be read.
type ledgerUnread struct {
	authz.Store
	limit.Ledger
}

func (ledgerUnread) Balances(context.Context, []limit.Credits, int64) ([]int64, error) {
	return nil, fmt.Errorf("reading credits: %w", authz.ErrUnavailable)
}

// TestCreditsUnreadAfterWrite: when the ledger cannot be read right after
// a write committed, the write's answer still comes, with the credits as
// set: a new key's secret is not lost to a failed read of its balance.
// Reads of the credits report the outage.
func TestCreditsUnreadAfterWrite(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		st := open(t)
		l, ok := st.(limit.Ledger)
		if !ok {
			t.Skip("the store keeps no credit ledger")
		}
		e := newEnv(t, ledgerUnread{st, l})
		ctx := e.ctx
		cu, err := e.svc.CreateUser(ctx, e.root, "acme", authz.NewUser{
			Username: "station", Kind: authz.KindAPI, Role: authz.RoleAPIUser, IssueKey: true,
			Credits: setCredits(50, nil).Value,
		})
		if err != nil || cu.Key == "" || cu.Credits == nil || cu.Credits.Remaining != 50 {
			t.Fatalf("CreateUser: %+v, %v; want the key and 50 credits", cu, err)
		}
		k, err := e.svc.CreateKey(ctx, e.root, "acme", cu.ID, authz.NewKey{Name: "k2", Credits: setCredits(7, nil).Value})
		if err != nil || k.Secret == "" || k.Credits == nil || k.Credits.Remaining != 7 {
			t.Fatalf("CreateKey: %+v, %v; want the secret and 7 credits", k, err)
		}
		rk, err := e.svc.RegenerateKey(ctx, e.root, "acme", cu.ID, k.ID, 0)
		if err != nil || rk.Secret == "" {
			t.Fatalf("RegenerateKey: %+v, %v; want the new secret", rk, err)
		}
		if _, err := e.svc.UpdateKey(ctx, e.root, "acme", cu.ID, rk.ID, authz.KeyPatch{Credits: setCredits(9, nil)}); err != nil {
			t.Errorf("UpdateKey: %v", err)
		}
		if _, err := e.svc.UpdateUser(ctx, e.root, "acme", cu.ID, authz.UserPatch{Credits: setCredits(60, nil)}, nil); err != nil {
			t.Errorf("UpdateUser: %v", err)
		}
		if _, err := e.svc.GetKey(ctx, e.root, "acme", cu.ID, rk.ID); !errors.Is(err, authz.ErrUnavailable) {
			t.Errorf("GetKey with the ledger unread: %v, want ErrUnavailable", err)
		}
	})
}

// TestCreditsRemovedAndSetAgain: credits removed and set again spend as
// set, also when the new setting's clock is not past the old one's (the
// same microsecond, or an admin instance whose clock is behind): the
// ledger's closed account of the old setting is not the new one's.
func TestCreditsRemovedAndSetAgain(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		for _, of := range []string{"key", "user"} {
			t.Run(of, func(t *testing.T) {
				e, st, cu := stationWithCredits(t, open)
				ctx := e.ctx
				plain, err := e.svc.CreateKey(ctx, e.root, "acme", cu.ID, authz.NewKey{Name: "plain"})
				if err != nil {
					t.Fatal(err)
				}
				kid := cu.KeyID
				set := func(cr authz.Optional[authz.SetCredits]) {
					t.Helper()
					if of == "key" {
						_, err = e.svc.UpdateKey(ctx, e.root, "acme", cu.ID, cu.KeyID, authz.KeyPatch{Credits: cr})
					} else {
						kid = plain.ID // spends the user's credits
						_, err = e.svc.UpdateUser(ctx, e.root, "acme", cu.ID, authz.UserPatch{Credits: cr}, nil)
					}
					if err != nil {
						t.Fatal(err)
					}
				}
				spend := func(n int) int {
					_, c := e.auth(cu.Key).CallerLimits(kid)
					return spendThrough(e, st, c, n)
				}
				set(setCredits(100, nil))
				if got := spend(10); got != 10 {
					t.Fatalf("spent %d of 10", got)
				}
				set(authz.Optional[authz.SetCredits]{Set: true})
				set(setCredits(50, nil))
				if got := spend(60); got != 50 {
					t.Errorf("credits removed and set to 50 again: spent %d, want 50", got)
				}
			})
		}
	})
}

// spendThrough spends one credit of c n times through an instance of its
// own (an engine on st's ledger, closed after), and returns how many it
// allowed.
func spendThrough(e *env, st authz.Store, c *limit.Credits, n int) (allowed int) {
	eng := limit.NewEngine(limit.EngineConfig{Ledger: st.(limit.Ledger), Now: e.Now})
	defer eng.Close()
	for range n {
		if eng.Spend(e.ctx, c, 1, e.Now().UnixNano()).Allowed {
			allowed++
		}
	}
	return allowed
}
