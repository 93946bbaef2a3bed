package redisstore

import (
	"bytes"
	"testing"

	"github.com/apiusers/apiusers/authz"
)

// FuzzDecodeMember: a sorted-set member read from Redis never panics the
// decoder, and what decodes encodes back to a member of the same record.
func FuzzDecodeMember(f *testing.F) {
	for _, seed := range []string{
		encodeMember("acme", "usr_1", []byte(`{"id":"usr_1","workspace":"acme","n":1}`)),
		encodeMember("acme", "a\x00b", []byte(`{"id":"a\x00b"}`)),
		encodeMember("acme", "x", []byte("raw")), "", "\x01", "abc", "\x02\x02",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, m string) {
		e, err := decodeMember("acme", m)
		if err != nil {
			return
		}
		again, err := decodeMember("acme", encodeMember("acme", e.ID, e.Value))
		if err != nil || again.ID != e.ID || !bytes.Equal(again.Value, e.Value) {
			t.Fatalf("member %q: %q=%q came back as %q=%q (%v)", m, e.ID, e.Value, again.ID, again.Value, err)
		}
	})
}

// FuzzDecodeBlob: a packed collection read from Redis never panics the
// decoder, and what decodes encodes back to the same entries.
func FuzzDecodeBlob(f *testing.F) {
	f.Add(encodeBlob("acme", []authz.Entry{{ID: "key_1", Value: []byte(`{"id":"key_1","n":"x"}`)}, {ID: "key_2", Value: []byte("raw")}}))
	f.Add([]byte{})
	f.Add([]byte{0x05, 'a'})
	f.Add([]byte{0x01, 'a', 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := decodeBlob("acme", b)
		if err != nil {
			return
		}
		again, err := decodeBlob("acme", encodeBlob("acme", es))
		if err != nil || len(again) != len(es) {
			t.Fatalf("blob %q: %d entries came back as %d (%v)", b, len(es), len(again), err)
		}
		for i := range es {
			if again[i].ID != es[i].ID || !bytes.Equal(again[i].Value, es[i].Value) {
				t.Fatalf("blob %q: entry %d %q=%q came back as %q=%q", b, i, es[i].ID, es[i].Value, again[i].ID, again[i].Value)
			}
		}
	})
}
