// Command signinflood is the load harness's sign-in flood (bench/run.sh):
// it sends wrong sign-ins (POST <admin>/login) at a fixed rate for a
// while, each for another unknown email and from another loopback source
// address (127.1.x.y, at most 40 attempts per address), so that neither
// the per-identity nor the per-address throttle spares the hashing: it is
// the worst flood for the gateway next to it. It prints how the sign-ins
// were answered.
//
// Each sign-in is one HTTP/1.1 request on a connection of its own
// (Connection: close), written and read on the bare socket: the client
// runs on the machine it measures, so it spends as little CPU as it can
// (with net/http's client, a transport per source address, it took about
// 0.6 ms of CPU a sign-in, half of it in user space; now about 0.5 ms,
// nearly all of it the kernel's connect and close).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	rawURL := flag.String("url", "http://127.0.0.1:8080/admin/login", "the sign-in endpoint")
	rate := flag.Int("rate", 200, "sign-ins per second")
	dur := flag.Duration("duration", 10*time.Second, "how long to flood")
	perAddr := flag.Int("per-address", 40, "attempts per source address (below the throttle's 50)")
	first := flag.Int64("first", 1, "the number of the first attempt: its email and source address "+
		"(runs that follow one another pass where the last one stopped, so that none meets the last one's throttle counts)")
	flag.Parse()
	if *rate < 1 || *perAddr < 1 || *first < 1 {
		log.Fatal("signinflood: -rate, -per-address and -first must be positive")
	}
	target, err := url.Parse(*rawURL)
	if err != nil || target.Scheme != "http" || target.Host == "" {
		log.Fatalf("signinflood: -url must be an http:// URL, not %q", *rawURL)
	}
	path := target.RequestURI()

	var (
		mu     sync.Mutex
		counts = map[string]int{}
		wg     sync.WaitGroup
		n      atomic.Int64
	)
	inflight := make(chan struct{}, 1024)
	ctx, cancel := context.WithTimeout(context.Background(), *dur)
	defer cancel()
	tick := time.NewTicker(time.Second / time.Duration(*rate))
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
			i := *first + n.Add(1) - 1
			select {
			case inflight <- struct{}{}:
			default:
				mu.Lock()
				counts["skipped (1024 in flight)"]++
				mu.Unlock()
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-inflight }()
				a := int(i) / *perAddr
				src := net.IPv4(127, 1, byte(a/250), byte(a%250+1))
				outcome := signIn(target.Host, path, src, i)
				mu.Lock()
				counts[outcome]++
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, counts[k]))
	}
	fmt.Printf("sent=%d %s\n", n.Load(), strings.Join(parts, " "))
}

// signIn sends one wrong sign-in from src to host and returns its
// outcome: the answer's status code, or "error".
func signIn(host, path string, src net.IP, i int64) string {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", host)
	if err != nil {
		return "error"
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	body := fmt.Sprintf(`{"email":"flood%d@example.com","password":"not the password %d"}`, i, i)
	req := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		path, host, len(body), body)
	if _, err := io.WriteString(conn, req); err != nil {
		return "error"
	}
	// "HTTP/1.1 503 Service Unavailable": the code, then the rest of the
	// answer until the server closes the connection.
	br := bufio.NewReaderSize(conn, 1024)
	line, err := br.ReadString('\n')
	proto, rest, _ := strings.Cut(line, " ")
	if err != nil || !strings.HasPrefix(proto, "HTTP/1.") || len(rest) < 3 {
		return "error"
	}
	if _, err := strconv.Atoi(rest[:3]); err != nil {
		return "error"
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return "error"
	}
	return rest[:3]
}
