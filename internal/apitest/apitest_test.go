package apitest

import (
	"net"
	"strconv"
	"testing"
)

// TestListenPort: the ports are free, distinct, and below the kernel's
// ephemeral range, where no outgoing connection takes them.
func TestListenPort(t *testing.T) {
	lo, hi := belowEphemeral()
	seen := map[int]bool{}
	for range 100 {
		p, err := ListenPort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		if hi-lo >= 1000 && (p < lo || p >= hi) {
			t.Fatalf("port %d outside [%d, %d), below the ephemeral range", p, lo, hi)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d is not free: %v", p, err)
		}
		_ = l.Close()
	}
}

// TestListenPortSkipsTaken: a port in use is not handed out.
func TestListenPortSkipsTaken(t *testing.T) {
	lo, hi := belowEphemeral()
	if hi-lo < 1000 {
		t.Skip("no range below the ephemeral ports here")
	}
	// Hold 500 ports of the range (few enough for a low limit on open
	// files): among 300 draws some would land on them, and none may be
	// handed out.
	var held []net.Listener
	t.Cleanup(func() {
		for _, l := range held {
			_ = l.Close()
		}
	})
	taken := map[int]bool{}
	for p := lo; p < hi && len(held) < 500; p++ {
		if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p)); err == nil {
			held = append(held, l)
			taken[p] = true
		}
	}
	for range 300 {
		p, err := ListenPort()
		if err != nil {
			t.Fatal(err)
		}
		if taken[p] {
			t.Fatalf("port %d is in use, yet handed out", p)
		}
	}
}
