package authz

import (
	"testing"
	"time"
)

func TestNewestFirstIDShape(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	a, b := NewMessageID(t0), NewMessageID(t0)
	c := NewMessageID(t0.Add(time.Millisecond))
	if len(a) != len("msg_")+28 || a[:4] != "msg_" {
		t.Fatalf("id %q", a)
	}
	if !(c < b && b < a) {
		t.Fatalf("not newest first: %s %s %s", a, b, c)
	}
	if a[:14] != b[:14] || a[4:14] != messageTimePrefix(t0)[4:] {
		t.Fatalf("time part differs: %s %s", a, b)
	}
	for _, ch := range a[4:] {
		if !(ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'z') {
			t.Fatalf("id %q has %q", a, ch)
		}
	}
}
