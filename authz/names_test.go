package authz_test

import (
	"errors"
	"strings"
	"testing"
	"unicode"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/password"
)

func TestCanonicalName(t *testing.T) {
	t.Parallel()
	same := [][]string{
		{"sam", "SAM", "Sam", "\u017fam", "\uff53\uff41\uff4d", "\uff33\uff21\uff2d"},
		{"kate", "\u212aate", "KATE"},     // Kelvin sign
		{"strasse", "Straße", "STRASSE"},  // ß folds to ss
		{"file", "\ufb01le"},              // the fi ligature
		{"é", "e\u0301", "É", "E\u0301"},  // composed and decomposed
		{"usr_x", "\uff35\uff33\uff32_x"}, // fullwidth USR
		{"alice@example.com", "ALICE@Example.COM"},
		{"ᎠᏵ-kiosk", "ꭰᏽ-KIOSK", "Ꭰᏽ-kiosk"}, // Cherokee, either case
		{"ΐ", "ΐ", "ΐ"},                    // ΐ: folding decomposes it
		{"ǰ", "ǰ"},                          // ǰ
	}
	for _, group := range same {
		want := authz.CanonicalName(group[0])
		for _, s := range group {
			if got := authz.CanonicalName(s); got != want {
				t.Errorf("CanonicalName(%q) = %q, want %q (as %q)", s, got, want, group[0])
			}
			if !authz.SameName(s, want) {
				t.Errorf("SameName(%q, %q) = false", s, want)
			}
			if c := authz.CanonicalName(s); authz.CanonicalName(c) != c {
				t.Errorf("CanonicalName is not stable on %q", s)
			}
		}
	}
	for _, pair := range [][2]string{{"sam", "sam2"}, {"alice", "alíce"}, {"bob", "b0b"}} {
		if authz.CanonicalName(pair[0]) == authz.CanonicalName(pair[1]) {
			t.Errorf("%q and %q are one name", pair[0], pair[1])
		}
		if authz.SameName(pair[1], authz.CanonicalName(pair[0])) {
			t.Errorf("SameName(%q, %q)", pair[1], pair[0])
		}
	}
}

func TestCheckText(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"plain", "Grüße, 世界", "emoji ❤️ ok", ""} {
		if err := authz.CheckText("f", s, authz.TextLine); err != nil {
			t.Errorf("CheckText(%q): %v", s, err)
		}
	}
	if err := authz.CheckText("f", "line one\n\tline two", authz.TextMultiline); err != nil {
		t.Errorf("multiline text refused: %v", err)
	}
	for _, s := range []string{"a\nb", "a\tb", "a\x00b", "a\x1bb", "a\u0085b", "a\u200bb", "a\u200db", "a\u202eb", "a\u2066b",
		"\ufeffa", "a\u2028b", "a\u0378b", "a\ufffeb", "bad \xff utf-8"} {
		if err := authz.CheckText("f", s, authz.TextLine); err == nil {
			t.Errorf("CheckText(%q) accepted", s)
		}
	}
	for _, s := range []string{"a\rb", "a\u202eb", "a\x00b"} {
		if err := authz.CheckText("f", s, authz.TextMultiline); err == nil {
			t.Errorf("CheckText(%q, multiline) accepted", s)
		}
	}
}

func TestNamesOneCanonicalForm(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		e := newEnv(t, open(t))
		ctx := e.ctx
		sam, _ := e.user("acme", "sam", authz.KindAPI, authz.RoleAPIBasic)
		_, reg := e.user("acme", "signup", authz.KindAPI, authz.RoleAPIRegistration)
		create := func(name string) error {
			_, err := e.svc.CreateUser(ctx, reg, "acme", authz.NewUser{Username: name, Kind: authz.KindAPI, Role: authz.RoleAPIBasic, IssueKey: true})
			return err
		}
		for _, name := range []string{"\u017fam", "SAM", "\uff53\uff41\uff4d", "\u0073\u0061\u006d"} {
			wantErr(t, create(name), authz.ErrConflict)
		}
		for _, name := range []string{"s\u200bam", "\u202emas", "sa\u034fm", "sam\ufe0f", "sam\u0378", "\uff35\uff33\uff32_x", "sa\u00a0m", "sa\uff0fm", "a\u00a8"} {
			wantErr(t, create(name), authz.ErrInvalid)
		}
		// Renaming into another's canonical name is a conflict too.
		other, _ := e.user("acme", "other", authz.KindAPI, authz.RoleAPIUser)
		n := "\uff33am"
		_, err := e.svc.UpdateUser(ctx, e.root, "acme", other.ID, authz.UserPatch{Username: &n}, nil)
		wantErr(t, err, authz.ErrConflict)
		// Renaming oneself to another spelling of one's own name is fine,
		// and frees nothing.
		n = "Sam"
		if _, err := e.svc.UpdateUser(ctx, e.root, "acme", sam.ID, authz.UserPatch{Username: &n}, nil); err != nil {
			t.Fatalf("respelling one's own name: %v", err)
		}
		wantErr(t, create("sam"), authz.ErrConflict)

		// Owner matching uses the same form: sam owns "ſam" and "ＳＡＭ",
		// which no other user can be called.
		p := e.auth(sam.Key)
		for _, owner := range []string{"sam", "SAM", "\u017fam", "\uff53\uff41\uff4d", sam.ID} {
			if !p.Owns(owner) {
				t.Errorf("sam does not own %q", owner)
			}
		}
		for _, owner := range []string{"sam2", "s\u200bam", "", strings.ToUpper(sam.ID)} {
			if p.Owns(owner) {
				t.Errorf("sam owns %q", owner)
			}
		}

		// Team names: one canonical form too.
		if _, err := e.svc.CreateTeam(ctx, e.root, "acme", authz.NewTeam{Name: "Operators"}); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.CreateTeam(ctx, e.root, "acme", authz.NewTeam{Name: "\uff2fperators"})
		wantErr(t, err, authz.ErrConflict)
		_, err = e.svc.CreateTeam(ctx, e.root, "acme", authz.NewTeam{Name: "Oper\u200bators"})
		wantErr(t, err, authz.ErrInvalid)

		// Every other text field refuses what a reader cannot see.
		bad := "x\u202ey"
		for field, patch := range map[string]authz.UserPatch{
			"email":        {Email: &[]string{"a\u200b@example.com"}[0]},
			"organization": {Organization: &bad},
			"private_note": {PrivateNote: &bad},
			"language":     {Language: &bad},
			"timezone":     {Timezone: &bad},
		} {
			_, err := e.svc.UpdateUser(ctx, e.root, "acme", other.ID, patch, nil)
			wantErr(t, err, authz.ErrInvalid)
			var ae *authz.Error
			if !errors.As(err, &ae) || ae.Field != field {
				t.Errorf("%s: error %v names field %q", field, err, ae.Field)
			}
		}
		note := "line one\n\tline two"
		if _, err := e.svc.UpdateUser(ctx, e.root, "acme", other.ID, authz.UserPatch{PrivateNote: &note}, nil); err != nil {
			t.Errorf("a private_note with a newline and a tab: %v", err)
		}
		_, err = e.svc.CreateKey(ctx, e.root, "acme", other.ID, authz.NewKey{Name: "ci\u2066"})
		wantErr(t, err, authz.ErrInvalid)
		_, err = e.svc.CreateWorkspace(ctx, e.root, authz.Workspace{ID: "w2", Name: "W\x00"})
		wantErr(t, err, authz.ErrInvalid)
		g := []authz.Grant{{Resource: "device:d\u200b1", Rights: []string{"read"}}}
		_, err = e.svc.UpdateUser(ctx, e.root, "acme", other.ID, authz.UserPatch{Grants: &g}, nil)
		wantErr(t, err, authz.ErrInvalid)
	})
}

// TestOneCanonicalForm: every character's canonical form is stable, and
// the password policy compares in the very same form (finding 8: two
// canonical functions counted one identity twice).
func TestOneCanonicalForm(t *testing.T) {
	t.Parallel()
	unstable := 0
	for r := rune(0x80); r <= 0x2ffff; r++ {
		if !unicode.IsPrint(r) {
			continue
		}
		c := authz.CanonicalName(string(r))
		if authz.CanonicalName(c) != c || password.Fold(string(r)) != c {
			if unstable++; unstable <= 5 {
				t.Errorf("%U: CanonicalName %q, of that %q; password.Fold %q", r, c, authz.CanonicalName(c), password.Fold(string(r)))
			}
		}
	}
	if unstable > 0 {
		t.Errorf("%d characters without one stable canonical form", unstable)
	}
}
