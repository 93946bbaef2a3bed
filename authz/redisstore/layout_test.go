package redisstore

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/apiusers/apiusers/authz"
)

// randomID draws ids from the bytes the member encoding treats specially
// and their neighbours, so that prefixes, escapes and tags meet often.
func randomID(r *rand.Rand) string {
	alphabet := []byte{0x00, 0x01, 0x02, 0x03, 0x04, '"', 'a', 'b', 0xfe, 0xff}
	b := make([]byte, r.IntN(5))
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

// TestMembersSortLikeIDs checks the property the sorted layout rests on:
// members order like their ids whatever their values, and decode back.
func TestMembersSortLikeIDs(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	values := []string{"", "\x00", "\xff", `{"id":"`, "z"}
	for range 20000 {
		a, b := randomID(r), randomID(r)
		ma := encodeMember("acme", a, []byte(values[r.IntN(len(values))]))
		mb := encodeMember("acme", b, []byte(values[r.IntN(len(values))]))
		if a != b && strings.Compare(a, b) != strings.Compare(ma, mb) {
			t.Fatalf("ids %q < %q is %v, members %q < %q is %v", a, b, a < b, ma, mb, ma < mb)
		}
		// The range of an id holds its member and no other id's.
		lo, hi := idRange(a)
		if in := ma >= lo[1:] && ma < hi[1:]; !in {
			t.Fatalf("member %q of %q outside [%q, %q)", ma, a, lo[1:], hi[1:])
		}
		if in := mb >= lo[1:] && mb < hi[1:]; in && a != b {
			t.Fatalf("member %q of %q inside the range of %q", mb, b, a)
		}
	}
}

func TestMemberRoundTrip(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		id, ws := randomID(r), []string{"", "acme"}[r.IntN(2)]
		for _, v := range []string{
			"", "\x00\x03", `{"id":"` + id + `"`, `{"id":"` + id + `"}`,
			`{"id":"` + id + `","workspace":"` + ws + `"}`, `{"id":"` + id + `","workspace":"x"}`,
		} {
			e, err := decodeMember(ws, encodeMember(ws, id, []byte(v)))
			if err != nil || e.ID != id || string(e.Value) != v {
				t.Fatalf("id %q value %q: decoded %q %q, %v", id, v, e.ID, e.Value, err)
			}
		}
	}
	for _, bad := range []string{"", "abc", "a\x03", "\x03"} {
		if _, err := decodeMember("acme", bad); err == nil {
			t.Errorf("decodeMember(%q) succeeded", bad)
		}
	}
}

func TestElision(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ws, id, value string
		tag           byte
		rest          string
	}{
		{"acme", "usr_1", `{"id":"usr_1","workspace":"acme","n":1}`, tagWorkspace, `,"n":1}`},
		{"acme", "usr_1", `{"id":"usr_1","workspace":"other"}`, tagID, `,"workspace":"other"}`},
		{"acme", "usr_1", `{"id":"usr_1"}`, tagID, `}`},
		{"acme", "usr_1", `{"id":"usr_12"}`, tagRaw, `{"id":"usr_12"}`},
		{"acme", "usr_1", `{"id":"usr_2"}`, tagRaw, `{"id":"usr_2"}`},
		{"", "acme", `{"id":"acme","workspace":""}`, tagWorkspace, `}`},
	} {
		tag, rest := split(tc.ws, tc.id, []byte(tc.value))
		if tag != tc.tag || string(rest) != tc.rest {
			t.Errorf("split(%q, %q, %s) = %d %q, want %d %q", tc.ws, tc.id, tc.value, tag, rest, tc.tag, tc.rest)
		}
		if got := join(tc.ws, tc.id, tag, rest); string(got) != tc.value {
			t.Errorf("join undoes split of %s as %s", tc.value, got)
		}
	}
}

func TestBlobRoundTrip(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(5, 6))
	for range 2000 {
		var es []authz.Entry
		seen := map[string]bool{}
		for range r.IntN(6) {
			id := randomID(r)
			if seen[id] {
				continue
			}
			seen[id] = true
			v := []string{"", `{"id":"` + id + `"}`, `{"id":"` + id + `","workspace":"acme"}`, strings.Repeat("v", r.IntN(300))}[r.IntN(4)]
			es = append(es, authz.Entry{ID: id, Value: []byte(v)})
		}
		sortEntries(es)
		got, err := decodeBlob("acme", encodeBlob("acme", es))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(es) || !slices.EqualFunc(got, es, func(a, b authz.Entry) bool {
			return a.ID == b.ID && string(a.Value) == string(b.Value)
		}) {
			t.Fatalf("blob of %v decoded to %v", es, got)
		}
	}
	for _, bad := range []string{"\x05ab", "\x01a", "\x01a\x09", "\x01a\x03"} {
		if _, err := decodeBlob("acme", []byte(bad)); err == nil {
			t.Errorf("decodeBlob(%q) succeeded", bad)
		}
	}
}
