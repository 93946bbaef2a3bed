package authz_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/filestore"
)

func TestServiceTeamsGrantsAudit(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		e := newEnv(t, open(t))
		ctx := e.ctx
		u, _ := e.user("acme", "dev1", authz.KindAPI, authz.RoleAPIUser)
		grants := []authz.Grant{{Resource: "device:d1", Rights: []string{"read"}}}
		if _, err := e.svc.UpdateUser(ctx, e.root, "acme", u.ID, authz.UserPatch{Grants: &grants}, nil); err != nil {
			t.Fatal(err)
		}
		p := e.auth(u.Key)
		if !p.HasRight("device:d1", "read") || p.HasRight("device:d1", "control") || p.HasRight("device:d2", "read") {
			t.Fatal("user grants wrong")
		}
		team, err := e.svc.CreateTeam(ctx, e.root, "acme", authz.NewTeam{Name: "ops", Permissions: []string{"rules.manage"},
			Grants: []authz.Grant{{Resource: "device:*", Rights: []string{"control"}}}})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(team.ID, "team_") {
			t.Fatalf("team id %s", team.ID)
		}
		if _, err := e.svc.CreateTeam(ctx, e.root, "acme", authz.NewTeam{Name: "OPS"}); err == nil {
			t.Fatal("duplicate team name accepted")
		}
		if err := e.svc.AddMember(ctx, e.root, "acme", team.ID, u.ID); err != nil {
			t.Fatal(err)
		}
		p = e.auth(u.Key)
		if !p.HasRight("device:d2", "control") || !p.HasPermission("rules.manage") {
			t.Fatal("team rights not seen on the next request")
		}
		got, _ := e.svc.GetUser(ctx, e.root, "acme", u.ID)
		if len(got.Teams) != 1 || got.Teams[0] != team.ID {
			t.Fatalf("user teams = %v", got.Teams)
		}
		list, _, _ := e.svc.ListUsers(ctx, e.root, "acme", authz.UserFilter{Team: team.ID}, authz.Page{})
		if len(list) != 1 || list[0].ID != u.ID {
			t.Fatalf("team filter = %v", list)
		}
		// A team change reaches members at once.
		perms := []string{"rules.manage", "records.add"}
		if _, err := e.svc.UpdateTeam(ctx, e.root, "acme", team.ID, authz.TeamPatch{Permissions: &perms}, nil); err != nil {
			t.Fatal(err)
		}
		if !e.auth(u.Key).HasPermission("records.add") {
			t.Fatal("team update not seen")
		}
		if err := e.svc.RemoveMember(ctx, e.root, "acme", team.ID, u.ID); err != nil {
			t.Fatal(err)
		}
		if e.auth(u.Key).HasRight("device:d2", "control") {
			t.Fatal("still a member after removal")
		}
		e.svc.AddMember(ctx, e.root, "acme", team.ID, u.ID)
		if err := e.svc.DeleteTeam(ctx, e.root, "acme", team.ID); err != nil {
			t.Fatal(err)
		}
		if e.auth(u.Key).HasPermission("rules.manage") {
			t.Fatal("deleted team still grants")
		}
		got, _ = e.svc.GetUser(ctx, e.root, "acme", u.ID)
		if len(got.Teams) != 0 {
			t.Fatal("deleted team still listed on the user")
		}

		t.Run("no granting beyond own rights", func(t *testing.T) {
			_, admin := e.user("acme", "adm", authz.KindMember, authz.RoleAdmin)
			// An admin holds every right of the workspace (role *), so it may grant any.
			g := []authz.Grant{{Resource: "project:p1", Rights: []string{"records.erase"}}}
			if _, err := e.svc.UpdateUser(ctx, admin, "acme", u.ID, authz.UserPatch{Grants: &g}, nil); err != nil {
				t.Fatal(err)
			}
			_, err := e.svc.CreateTeam(ctx, admin, "acme", authz.NewTeam{Name: "wm", Permissions: []string{"workspaces.manage"}})
			wantErr(t, err, authz.ErrForbidden)
			// An admin whose own grants are narrower (a non-* holder) is modelled by api_business: nothing beyond api_basic.
			_, biz := e.user("acme", "biz", authz.KindAPI, authz.RoleAPIBusiness)
			b, _ := e.user("acme", "bas", authz.KindAPI, authz.RoleAPIBasic)
			g2 := []authz.Grant{{Resource: "device:d1", Rights: []string{"read"}}}
			_, err = e.svc.UpdateUser(ctx, biz, "acme", b.ID, authz.UserPatch{Grants: &g2}, nil)
			wantErr(t, err, authz.ErrForbidden)
			ok := []string{"events.read.own"}
			if _, err := e.svc.UpdateUser(ctx, biz, "acme", b.ID, authz.UserPatch{Permissions: &ok}, nil); err != nil {
				t.Fatalf("api_business giving an api_basic permission: %v", err)
			}
			beyond := []string{"events.read"}
			_, err = e.svc.UpdateUser(ctx, biz, "acme", b.ID, authz.UserPatch{Permissions: &beyond}, nil)
			wantErr(t, err, authz.ErrForbidden)
		})

		t.Run("audit", func(t *testing.T) {
			entries, _, err := e.svc.ListAudit(ctx, e.root, "acme", authz.Page{Limit: 500})
			if err != nil {
				t.Fatal(err)
			}
			count := map[string]int{}
			for i, a := range entries {
				count[a.Action]++
				if i > 0 && a.Time.After(entries[i-1].Time) {
					t.Fatal("audit not newest first")
				}
				raw, _ := json.Marshal(a)
				if strings.Contains(string(raw), "eyJ") {
					t.Fatalf("audit entry holds a key: %s", raw)
				}
			}
			for _, action := range []string{"workspace.create", "user.create", "key.create", "user.update", "team.create", "team.update", "team.delete", "team.member.add", "team.member.remove"} {
				if count[action] == 0 {
					t.Errorf("no %s entry (have %v)", action, count)
				}
			}
			if count["team.member.add"] != 2 || count["team.member.remove"] != 1 {
				t.Errorf("membership entries = %v", count)
			}
			// The most recent entries are the api_business permission update, by biz.
			if entries[0].Action != "user.update" || entries[0].Changes["permissions"].New == nil {
				t.Fatalf("newest entry = %+v", entries[0])
			}
			// A failed mutation leaves no entry.
			_, err = e.svc.CreateUser(ctx, e.root, "acme", authz.NewUser{Username: "dev1", Kind: authz.KindAPI, Role: authz.RoleAPIUser})
			wantErr(t, err, authz.ErrConflict)
			again, _, _ := e.svc.ListAudit(ctx, e.root, "acme", authz.Page{Limit: 500})
			if len(again) != len(entries) {
				t.Fatal("a failed mutation was audited")
			}
			// Reveal is audited, without the key.
			keys, err := e.svc.ListKeys(ctx, e.root, "acme", u.ID)
			if err != nil || len(keys) == 0 {
				t.Fatalf("keys of %s: %v", u.ID, err)
			}
			revealed, err := e.svc.RevealKey(ctx, e.root, "acme", u.ID, keys[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			after, _, _ := e.svc.ListAudit(ctx, e.root, "acme", authz.Page{Limit: 1})
			raw, _ := json.Marshal(after[0])
			if after[0].Action != "key.reveal" || after[0].Target != keys[0].ID || after[0].Actor != e.root.UserID ||
				strings.Contains(string(raw), revealed.Secret) {
				t.Fatalf("reveal audit entry = %s", raw)
			}
			_, viewer := e.user("acme", "v", authz.KindMember, authz.RoleViewer)
			_, _, err = e.svc.ListAudit(ctx, viewer, "acme", authz.Page{})
			wantErr(t, err, authz.ErrForbidden)
		})
	})
}

// A team's members are records of their own: the team's record, which
// every member's principal reads on a cache miss, stays the size of what
// the team gives however many members it has.
func TestTeamMembersApart(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		st := open(t)
		e := newEnv(t, st)
		ctx := e.ctx
		team, users := e.teamOf("devices", "d3", "d1", "d2")
		// Joining twice changes nothing, also within one transaction.
		if err := e.svc.AddMember(ctx, e.root, "acme", team.ID, users[0].ID); err != nil {
			t.Fatal(err)
		}
		twice, err := e.svc.CreateUser(ctx, e.root, "acme", authz.NewUser{Username: "d4", Kind: authz.KindAPI, Role: authz.RoleAPIUser,
			IssueKey: true, Teams: []string{team.ID, team.ID}})
		if err != nil {
			t.Fatal(err)
		}
		if len(twice.Teams) != 1 {
			t.Fatalf("a user created with a team named twice lists %v", twice.Teams)
		}
		users = append(users, twice)
		want := []string{users[0].ID, users[1].ID, users[2].ID, twice.ID}
		slices.Sort(want)
		got, err := e.svc.GetTeam(ctx, e.root, "acme", team.ID)
		if err != nil || !slices.Equal(got.Members, want) {
			t.Fatalf("GetTeam members = %v, %v; want %v", got.Members, err, want)
		}
		list, _, err := e.svc.ListTeams(ctx, e.root, "acme", authz.Page{})
		if err != nil || len(list) != 1 || !slices.Equal(list[0].Members, want) {
			t.Fatalf("ListTeams = %+v, %v; want members %v", list, err, want)
		}
		rec := teamRecord(t, st, team.ID)
		for _, id := range want {
			if strings.Contains(rec, id) {
				t.Fatalf("the team's record names member %s: %s", id, rec)
			}
		}
		pr, err := st.LoadPrincipal(ctx, "acme", users[1].ID)
		if err != nil || len(pr.Teams) != 1 || strings.Contains(string(pr.Teams[0]), users[0].ID) {
			t.Fatalf("LoadPrincipal teams = %q, %v", pr.Teams, err)
		}
		if !e.auth(users[1].Key).HasPermission("records.add") {
			t.Fatal("a member lacks what the team gives")
		}
		if got, err := e.svc.GetTeam(ctx, e.auth(users[1].Key), "acme", team.ID); err != nil || len(got.Members) != len(want) {
			t.Fatalf("a member reading its team: %v, %v", got, err)
		}
		_, outsider := e.user("acme", "outsider", authz.KindAPI, authz.RoleAPIUser)
		_, err = e.svc.GetTeam(ctx, outsider, "acme", team.ID)
		wantErr(t, err, authz.ErrForbidden)

		if err := e.svc.RemoveMember(ctx, e.root, "acme", team.ID, users[1].ID); err != nil {
			t.Fatal(err)
		}
		if e.auth(users[1].Key).HasPermission("records.add") {
			t.Fatal("a removed member keeps what the team gives")
		}
		got, _ = e.svc.GetTeam(ctx, e.root, "acme", team.ID)
		if slices.Contains(got.Members, users[1].ID) || len(got.Members) != 3 {
			t.Fatalf("members after removal = %v", got.Members)
		}
		if err := e.svc.DeleteTeam(ctx, e.root, "acme", team.ID); err != nil {
			t.Fatal(err)
		}
		if n := memberRecords(t, st); n != 0 {
			t.Fatalf("%d member records left after the team was deleted", n)
		}
		u0, _ := e.svc.GetUser(ctx, e.root, "acme", users[0].ID)
		if len(u0.Teams) != 0 {
			t.Fatalf("a member of a deleted team still lists it: %v", u0.Teams)
		}
	})
}

// A team whose record was written before members were records of their
// own (the record lists them) keeps them, and its next change moves them
// out of the record.
func TestTeamMembersInOldRecord(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		st := open(t)
		e := newEnv(t, st)
		ctx := e.ctx
		team, old := e.teamOf("ops", "a1", "a2")
		// Rewrite the team as the earlier code stored it: the whole Team,
		// members and all, and no member records.
		err := st.Update(ctx, "acme", func(tx authz.Tx) error {
			tm := *team
			tm.Members = []string{old[1].ID, old[0].ID}
			raw, err := json.Marshal(tm)
			if err != nil {
				return err
			}
			for _, u := range old {
				if err := tx.Delete(authz.Collection{Workspace: "acme", Name: authz.CollTeamMembers}, team.ID+"/"+u.ID); err != nil {
					return err
				}
			}
			return tx.Put(authz.Collection{Workspace: "acme", Name: authz.CollTeams}, team.ID, raw)
		})
		if err != nil {
			t.Fatal(err)
		}
		if n := memberRecords(t, st); n != 0 {
			t.Fatalf("%d member records left", n)
		}
		want := []string{old[0].ID, old[1].ID}
		slices.Sort(want)
		if got, err := e.svc.GetTeam(ctx, e.root, "acme", team.ID); err != nil || !slices.Equal(got.Members, want) {
			t.Fatalf("members of the old record = %v, %v; want %v", got.Members, err, want)
		}
		// Removing an old member: it goes, the other moves to a record.
		if err := e.svc.RemoveMember(ctx, e.root, "acme", team.ID, old[0].ID); err != nil {
			t.Fatal(err)
		}
		if rec := teamRecord(t, st, team.ID); strings.Contains(rec, old[1].ID) {
			t.Fatalf("the record still lists its members after a change: %s", rec)
		}
		if n := memberRecords(t, st); n != 1 {
			t.Fatalf("%d member records, want 1", n)
		}
		got, _ := e.svc.GetTeam(ctx, e.root, "acme", team.ID)
		if !slices.Equal(got.Members, []string{old[1].ID}) {
			t.Fatalf("members = %v, want [%s]", got.Members, old[1].ID)
		}
		if !e.auth(old[1].Key).HasPermission("records.add") || e.auth(old[0].Key).HasPermission("records.add") {
			t.Fatal("rights after the move are wrong")
		}
		// An earlier version's removal (it read no members in the
		// record) drops the team from the user and leaves the member
		// record: removing the member again clears it.
		err = st.Update(ctx, "acme", func(tx authz.Tx) error {
			return tx.Put(authz.Collection{Workspace: "acme", Name: authz.CollTeamMembers}, team.ID+"/"+old[0].ID, []byte{})
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.svc.RemoveMember(ctx, e.root, "acme", team.ID, old[0].ID); err != nil {
			t.Fatal(err)
		}
		if n := memberRecords(t, st); n != 1 {
			t.Fatalf("%d member records after removing a stray one, want 1", n)
		}
	})
}

// teamOf creates team name in acme, giving records.add, and API users of
// the given names with a key each as its members.
func (e *env) teamOf(name string, members ...string) (*authz.Team, []*authz.CreatedUser) {
	e.t.Helper()
	team, err := e.svc.CreateTeam(e.ctx, e.root, "acme", authz.NewTeam{Name: name, Permissions: []string{"records.add"}})
	if err != nil {
		e.t.Fatal(err)
	}
	var users []*authz.CreatedUser
	for _, m := range members {
		u, _ := e.user("acme", m, authz.KindAPI, authz.RoleAPIUser)
		if err := e.svc.AddMember(e.ctx, e.root, "acme", team.ID, u.ID); err != nil {
			e.t.Fatal(err)
		}
		users = append(users, u)
	}
	return team, users
}

// teamRecord returns the stored record of team id in acme.
func teamRecord(t *testing.T, st authz.Store, id string) string {
	t.Helper()
	var raw []byte
	err := st.View(context.Background(), "acme", func(tx authz.Tx) error {
		var err error
		raw, err = tx.Get(authz.Collection{Workspace: "acme", Name: authz.CollTeams}, id)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// memberRecords counts the member records of acme's teams.
func memberRecords(t *testing.T, st authz.Store) int {
	t.Helper()
	var n int
	err := st.View(context.Background(), "acme", func(tx authz.Tx) error {
		entries, err := tx.Scan(authz.Collection{Workspace: "acme", Name: authz.CollTeamMembers}, "", "", 0)
		n = len(entries)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// What a team change tells the fleet: nothing when it has no members or
// when what it gives stays (a rename), its members when it has a few, and
// the whole workspace when it has more than a thousand (a list of a
// million device ids would go to every instance otherwise).
func TestTeamChangeNotifies(t *testing.T) {
	t.Parallel()
	st, err := filestore.Open(filepath.Join(t.TempDir(), "apiusers.db"), filestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var mu sync.Mutex
	var changes []authz.Change
	e := newEnvConfig(t, st, func(c *authz.Config) {
		c.Notify = func(c authz.Change) {
			mu.Lock()
			changes = append(changes, c)
			mu.Unlock()
		}
	})
	t.Cleanup(e.svc.Close)
	svc, root, ctx := e.svc, e.root, e.ctx
	team, err := svc.CreateTeam(ctx, root, "acme", authz.NewTeam{Name: "devices"})
	if err != nil {
		t.Fatal(err)
	}
	// patch applies p and returns what it told the fleet.
	n := 0
	patch := func(p authz.TeamPatch) authz.Change {
		t.Helper()
		mu.Lock()
		changes = nil
		mu.Unlock()
		if _, err := svc.UpdateTeam(ctx, root, "acme", team.ID, p, nil); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(changes) > 1 {
			t.Fatalf("one update told the fleet %d changes", len(changes))
		}
		if len(changes) == 0 {
			return authz.Change{}
		}
		return changes[0]
	}
	rename := func() authz.Change {
		n++
		name := fmt.Sprintf("devices-%d", n)
		return patch(authz.TeamPatch{Name: &name})
	}
	gives := 0
	give := func() authz.Change {
		gives++
		perms := []string{"records.add"}
		if gives%2 == 0 {
			perms = []string{"records.read"}
		}
		return patch(authz.TeamPatch{Permissions: &perms})
	}
	if c := give(); c.Workspace != "" {
		t.Fatalf("a team without members told the fleet %+v", c)
	}
	var members []string
	for len(members) <= 1000 {
		in := make([]authz.NewUser, 501)
		for i := range in {
			in[i] = authz.NewUser{Username: fmt.Sprintf("dev-%04d", len(members)+i), Kind: authz.KindAPI, Role: authz.RoleAPIUser}
		}
		created, err := svc.CreateUsers(ctx, root, "acme", in)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range created {
			if err := svc.AddMember(ctx, root, "acme", team.ID, u.ID); err != nil {
				t.Fatal(err)
			}
			members = append(members, u.ID)
			if len(members) == 3 {
				if c := give(); c.Workspace != "acme" || len(c.Users) != 3 {
					t.Fatalf("a team of 3 told the fleet %+v", c)
				}
				if c := rename(); c.Workspace != "" {
					t.Fatalf("renaming a team of 3 told the fleet %+v", c)
				}
			}
		}
	}
	if c := give(); c.Workspace != "acme" || c.Users != nil {
		t.Fatalf("a team of %d told the fleet %d users, not the whole workspace", len(members), len(c.Users))
	}
	if c := rename(); c.Workspace != "" {
		t.Fatalf("renaming a team of %d told the fleet %+v", len(members), c)
	}
}
