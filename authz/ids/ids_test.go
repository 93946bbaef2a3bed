package ids_test

import (
	"strings"
	"testing"
	"time"

	"github.com/apiusers/apiusers/authz/ids"
)

func TestNewCarriesItsTime(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 987654321, time.UTC)
	a, b := ids.New("usr_", t0), ids.New("usr_", t0.Add(time.Millisecond))
	if len(a) != len("usr_")+26 || !strings.HasPrefix(a, "usr_") || a == ids.New("usr_", t0) {
		t.Fatalf("id %q", a)
	}
	if !(a < b) {
		t.Errorf("ids do not sort by time: %s %s", a, b)
	}
	if got := ids.Nanos(a); got != t0.Truncate(time.Millisecond).UnixNano() {
		t.Errorf("Nanos(%s) = %d, want %d", a, got, t0.Truncate(time.Millisecond).UnixNano())
	}
	for _, id := range []string{"usr_imported-1", "usr", "", "usr_" + strings.Repeat("!", 26)} {
		if n := ids.Nanos(id); n != 0 {
			t.Errorf("Nanos(%q) = %d, want 0", id, n)
		}
	}
	prefix, raw, ok := ids.Pack(a)
	if !ok || prefix != "usr" || ids.Unpack(prefix, raw) != a {
		t.Errorf("Pack(%s) = %q %x %v", a, prefix, raw, ok)
	}
	if _, _, ok := ids.Pack("usr_not-an-id"); ok {
		t.Error("Pack took an id New does not make")
	}
}

func TestNewestFirstSortsNewestFirst(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	a, b := ids.NewestFirst("aud_", t0), ids.NewestFirst("aud_", t0)
	c := ids.NewestFirst("aud_", t0.Add(time.Millisecond))
	if len(a) != len("aud_")+28 {
		t.Fatalf("id %q", a)
	}
	if !(c < b && b < a) {
		t.Errorf("not newest first: %s %s %s", a, b, c)
	}
	if got := ids.NewestFirstNanos(a); got != t0.UnixNano() {
		t.Errorf("NewestFirstNanos(%s) = %d, want %d", a, got, t0.UnixNano())
	}
	if a[:4+ids.NewestFirstTimeLen] != b[:4+ids.NewestFirstTimeLen] {
		t.Errorf("ids of one millisecond differ in their time part: %s %s", a, b)
	}
	for _, id := range []string{"aud_x", "aud_" + strings.Repeat("i", 28), "noprefix"} {
		if n := ids.NewestFirstNanos(id); n != 0 {
			t.Errorf("NewestFirstNanos(%q) = %d, want 0", id, n)
		}
	}
}
