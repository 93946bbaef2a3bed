//go:build linux

package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// TestParseAnswer: whole and partial answers of each framing.
func TestParseAnswer(t *testing.T) {
	for _, tc := range []struct {
		name, in    string
		eof         bool
		code        int
		keep, whole bool
		bad         bool
	}{
		{"length", "HTTP/1.1 401 Unauthorized\r\nContent-Length: 5\r\n\r\nhello", false, 401, true, true, false},
		{"length, short", "HTTP/1.1 401 Unauthorized\r\nContent-Length: 5\r\n\r\nhel", false, 401, true, false, false},
		{"headers, short", "HTTP/1.1 401 Unauthorized\r\nContent-Len", false, 0, false, false, false},
		{"close", "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}", false, 400, false, true, false},
		{"HTTP/1.0", "HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", false, 503, false, true, false},
		{"chunked", "HTTP/1.1 429 Too Many Requests\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", false, 429, true, true, false},
		{"chunked, short", "HTTP/1.1 429 Too Many Requests\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n", false, 429, true, false, false},
		{"to the end", "HTTP/1.1 200 OK\r\n\r\nsome", false, 200, false, false, false},
		{"to the end, ended", "HTTP/1.1 200 OK\r\n\r\nsome", true, 200, false, true, false},
		{"interim first", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n", false, 401, true, true, false},
		{"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", false, 0, false, false, true},
	} {
		code, keep, whole, bad := parseAnswer([]byte(tc.in), tc.eof)
		if bad != tc.bad || (!bad && (code != tc.code || whole != tc.whole || (whole && keep != tc.keep))) {
			t.Errorf("%s: code %d keep %v whole %v bad %v, want %d %v %v %v", tc.name, code, keep, whole, bad, tc.code, tc.keep, tc.whole, tc.bad)
		}
	}
}

// TestFlood runs the client against a real net/http server: every
// sign-in arrives complete, from the source address its number gives,
// and every answer is counted, on connections of their own and kept.
func TestFlood(t *testing.T) {
	for _, keepAlive := range []bool{false, true} {
		t.Run(fmt.Sprintf("keep-alive=%v", keepAlive), func(t *testing.T) {
			var mu sync.Mutex
			seen := map[string]string{} // body → source address
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, err := io.ReadAll(r.Body)
				if err != nil || r.Method != "POST" || r.URL.Path != "/admin/login" || r.Header.Get("Content-Type") != "application/json" {
					http.Error(w, "bad request", http.StatusBadRequest)
					return
				}
				host, _, _ := net.SplitHostPort(r.RemoteAddr)
				mu.Lock()
				seen[string(body)] = host
				n := len(seen)
				mu.Unlock()
				if n%2 == 0 {
					w.WriteHeader(http.StatusUnauthorized)
					w.(http.Flusher).Flush() // chunked
					io.WriteString(w, `{"status":401}`)
					return
				}
				http.Error(w, "busy", http.StatusServiceUnavailable)
			}))
			defer srv.Close()
			addr := srv.Listener.Addr().(*net.TCPAddr)
			host := srv.Listener.Addr().String()
			f, err := newFlood(addr, host, "/admin/login", keepAlive, false, 4)
			if err != nil {
				t.Fatal(err)
			}
			sent := f.run(1, 100, 300*time.Millisecond)
			if sent < 20 || f.counts["401"]+f.counts["503"] != int(sent) || f.counts["error"] != 0 {
				t.Fatalf("sent %d, counted %v", sent, f.counts)
			}
			if len(seen) != int(sent) {
				t.Fatalf("the server saw %d distinct sign-ins of %d", len(seen), sent)
			}
			for i := int64(1); i <= sent; i++ {
				body := fmt.Sprintf(`{"email":"flood%d@example.com","password":"not the password %d"}`, i, i)
				a := i / 4
				if want := fmt.Sprintf("127.1.%d.%d", a/250, a%250+1); seen[body] != want {
					t.Errorf("sign-in %d came from %q, want %s", i, seen[body], want)
				}
			}
			if keepAlive && f.dialed >= int(sent) {
				t.Errorf("%d connections for %d kept-alive sign-ins", f.dialed, sent)
			}
			if !keepAlive && f.dialed != int(sent) {
				t.Errorf("%d connections for %d sign-ins, want one each", f.dialed, sent)
			}
		})
	}
}
