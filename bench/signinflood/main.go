// Command signinflood is the load harness's sign-in flood (bench/run.sh):
// it sends wrong sign-ins (POST <admin>/login) at a fixed rate for a
// while, each for another unknown email and from another loopback source
// address (127.1.x.y, at most 40 attempts per address), so that neither
// the per-identity nor the per-address throttle spares the hashing: it is
// the worst flood for the gateway next to it. It prints how the sign-ins
// were answered.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080/admin/login", "the sign-in endpoint")
	rate := flag.Int("rate", 200, "sign-ins per second")
	dur := flag.Duration("duration", 10*time.Second, "how long to flood")
	perAddr := flag.Int("per-address", 40, "attempts per source address (below the throttle's 50)")
	flag.Parse()
	if *rate < 1 || *perAddr < 1 {
		log.Fatal("signinflood: -rate and -per-address must be positive")
	}

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
			i := n.Add(1)
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
				outcome := signIn(*url, src, i)
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

// signIn sends one wrong sign-in from src and returns its outcome.
func signIn(url string, src net.IP, i int64) string {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 5 * time.Second}
	client := &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true},
	}
	body := fmt.Sprintf(`{"email":"flood%d@example.com","password":"not the password %d"}`, i, i)
	res, err := client.Post(url, "application/json", bytes.NewReader([]byte(body)))
	if err != nil {
		return "error"
	}
	res.Body.Close()
	return fmt.Sprint(res.StatusCode)
}
