package authz

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// Fuzz targets of the domain's parsers: the key verifier, names, cursors
// and the stored forms of users and keys. `make fuzz-short` runs each for
// a few seconds, `make fuzz` longer; what they find goes to
// testdata/fuzz/<target> and runs with every `go test`.

// FuzzVerify: Verify never panics, never echoes the key in an error, and
// accepts a key only in the one spelling the signer itself makes.
func FuzzVerify(f *testing.F) {
	s := testSigner(f, secretA)
	good, _ := s.Sign(Claims{UserID: "usr_1", Workspace: "acme", KeyID: "key_1", IssuedAt: 1700000000}, "")
	exp, _ := s.Sign(Claims{UserID: "usr_1", Workspace: "acme", KeyID: "key_2", IssuedAt: 1700000000, ExpiresAt: 1800000000, NotBefore: 1700000001}, "")
	for _, seed := range []string{good, exp, good + "=", good[:len(good)-1] + "B", good[:20] + "\n" + good[20:], good[:len(good)-5] + "\r\n" + good[len(good)-5:],
		"a.b.c", "..", "", "eyJhbGciOiJub25lIn0.e30.", strings.Repeat("A", 100)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, key string) {
		cl, err := s.Verify(key)
		if err != nil {
			if len(key) > 8 && strings.Contains(err.Error(), key) {
				t.Fatalf("error %q holds the key", err)
			}
			return
		}
		again, err := s.Sign(*cl, "")
		if err != nil {
			t.Fatalf("re-signing accepted claims: %v", err)
		}
		if again != key {
			t.Fatalf("accepted %q, another spelling of %q", key, again)
		}
	})
}

// FuzzNames: the canonical form is stable and what comparisons use; a
// username that passes validation has no space, '/' or usr_ prefix in it
// and only characters CheckText allows.
func FuzzNames(f *testing.F) {
	for _, seed := range []string{"sam", "ſam", "ＳＡＭ", "Straße", "\u212aate", "ﬁle", "usr_x", "ＵＳＲ＿x", "a\u0308", "ä", "s\u200bam", "\u202emas", "a\xffb", "ǅ", "ΣΑΣ", "İstanbul", "x\u00a8"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := CanonicalName(s)
		if CanonicalName(c) != c {
			t.Fatalf("CanonicalName(%q) = %q, not stable (%q)", s, c, CanonicalName(c))
		}
		if !SameName(s, c) {
			t.Fatalf("SameName(%q, its canonical form %q) = false", s, c)
		}
		_ = CheckText("f", s, TextMultiline)
		if validateUsername(s) != nil {
			return
		}
		if !utf8.ValidString(s) || CheckText("username", s, TextLine) != nil {
			t.Fatalf("username %q passed with characters CheckText refuses", s)
		}
		if strings.HasPrefix(c, "usr_") || strings.ContainsAny(c, " /") {
			t.Fatalf("username %q passed with canonical form %q", s, c)
		}
		if _, _, ok := ParseResource("user:" + s); !ok {
			t.Fatalf("a valid username %q is not a valid resource id", s)
		}
	})
}

// FuzzCursor: DecodeCursor never panics, accepts a cursor only in the
// spelling EncodeCursor makes for that list, and never another list's.
func FuzzCursor(f *testing.F) {
	s := &Service{cursorKey: testSigner(f, secretA).derive("apiusers list cursors")}
	good := s.EncodeCursor("users:acme", "usr_06h30z7663bms6k3956j6dg2hr")
	for _, seed := range []string{"", good, good + "A", good[:len(good)-1], "dXNy", "dXNy.", "dXNy=.AAAA", "!!!", strings.Repeat("A", 400),
		s.EncodeCursor("teams:acme", "usr_06h30z7663bms6k3956j6dg2hr")} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, c string) {
		id, err := s.DecodeCursor("users:acme", c)
		if err != nil {
			return
		}
		if again := s.EncodeCursor("users:acme", id); again != c {
			t.Fatalf("cursor %q accepted as %q, whose cursor is %q", c, id, again)
		}
		if _, err := s.DecodeCursor("users:other", c); c != "" && err == nil {
			t.Fatalf("cursor %q of one list accepted by another", c)
		}
	})
}

// FuzzStoredRecords: the stored forms of users and keys decode without
// panicking, and what decodes encodes back to the same record.
func FuzzStoredRecords(f *testing.F) {
	u := &User{ID: "usr_06h30z7663bms6k3956j6dg2hr", Workspace: "acme", Username: "sam", Kind: KindAPI, Role: RoleAPIUser,
		Status: StatusActive, Email: "s@example.com", Permissions: []string{"x.y"}, Grants: []Grant{{Resource: "device:1", Rights: []string{"read"}}},
		Teams: []string{"team_1"}, Version: 3}
	ub, _ := encodeRecord(u)
	k := &Key{ID: "key_06h30z7661k76zb33hnattesqm", UserID: u.ID, Workspace: "acme", Name: "default", IssuedAt: 1796109821}
	kb, _ := encodeRecord(k)
	for _, seed := range [][]byte{ub, kb, []byte(`{"id":"usr_1","c":"2026-01-01T00:00:00Z"}`), []byte(`{"id":"x","c":9223372036854775807}`), []byte(`{}`), []byte(`null`)} {
		f.Add(seed)
	}
	users := Collection{Workspace: "acme", Name: CollUsers}
	keys := KeysCollection("acme", u.ID)
	f.Fuzz(func(t *testing.T, raw []byte) {
		var got User
		if decodeRecord(users, "usr_x", raw, &got) == nil {
			b, err := encodeRecord(&got)
			if err != nil {
				t.Fatalf("encoding a decoded user: %v", err)
			}
			var again User
			if err := decodeRecord(users, "usr_x", b, &again); err != nil {
				t.Fatalf("decoding a re-encoded user %s: %v", b, err)
			}
			if a, b := mustJSONOf(t, got), mustJSONOf(t, again); a != b {
				t.Fatalf("user round trip:\n %s\n %s", a, b)
			}
		}
		var gk Key
		if decodeRecord(keys, "key_x", raw, &gk) == nil {
			b, err := encodeRecord(&gk)
			if err != nil {
				t.Fatalf("encoding a decoded key: %v", err)
			}
			var again Key
			if err := decodeRecord(keys, "key_x", b, &again); err != nil {
				t.Fatalf("decoding a re-encoded key %s: %v", b, err)
			}
			if a, b := mustJSONOf(t, gk), mustJSONOf(t, again); a != b {
				t.Fatalf("key round trip:\n %s\n %s", a, b)
			}
		}
	})
}

func mustJSONOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
