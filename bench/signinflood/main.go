// Command signinflood is the load harness's sign-in flood (bench/run.sh):
// it sends wrong sign-ins (POST <admin>/login) at a fixed rate for a
// while, each for another unknown email and from another loopback source
// address (127.1.x.y, at most 40 attempts per address), so that neither
// the per-identity nor the per-address throttle spares the hashing: it is
// the worst flood for the gateway next to it. It prints how the sign-ins
// were answered and how many connections it opened.
//
// Each sign-in is one HTTP/1.1 request, written on the bare socket and
// read with net/http's response parser: the client runs on the machine it
// measures, so it spends as little CPU as it can. By default every
// sign-in has a connection of its own (Connection: close); with
// -keep-alive the connections of a source address carry its next
// sign-ins, as a browser's or an HTTP library's would (a new connection a
// sign-in costs client and server about 0.2 ms more CPU between them on
// the harness's machine than a kept one, whatever the endpoint). With
// -control the requests have no email, so the admin API answers them 400
// before it counts, reads or hashes anything: what such a flood costs the
// gateway beside it is what the requests themselves cost.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	rawURL := flag.String("url", "http://127.0.0.1:8080/admin/login", "the sign-in endpoint")
	rate := flag.Int("rate", 200, "sign-ins per second")
	dur := flag.Duration("duration", 10*time.Second, "how long to flood")
	perAddr := flag.Int("per-address", 40, "attempts per source address (below the throttle's 50)")
	keepAlive := flag.Bool("keep-alive", false, "reuse a source address's connections for its next sign-ins")
	control := flag.Bool("control", false, "send the same requests without an email: answered 400 before any "+
		"throttle, store read or hash, they cost what the requests themselves cost")
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
	f := &flood{host: target.Host, path: target.RequestURI(), keepAlive: *keepAlive, control: *control,
		idle: map[string][]*clientConn{}}

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
				f.current.Store(src.String())
				outcome := f.signIn(src, i)
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
	fmt.Printf("sent=%d %s connections=%d\n", n.Load(), strings.Join(parts, " "), f.dialed.Load())
}

// flood holds what the sign-ins share: the target and, with keep-alive,
// the idle connections of each source address.
type flood struct {
	host, path string
	keepAlive  bool
	control    bool
	current    atomic.Value // the source address the flood is at (a string)
	dialed     atomic.Int64

	mu   sync.Mutex
	idle map[string][]*clientConn
}

type clientConn struct {
	net.Conn
	br *bufio.Reader
}

// conn returns an idle connection from src, or a new one.
func (f *flood) conn(src net.IP) (c *clientConn, reused bool, err error) {
	f.mu.Lock()
	if cs := f.idle[src.String()]; len(cs) > 0 {
		c = cs[len(cs)-1]
		f.idle[src.String()] = cs[:len(cs)-1]
		f.mu.Unlock()
		return c, true, nil
	}
	f.mu.Unlock()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", f.host)
	if err != nil {
		return nil, false, err
	}
	f.dialed.Add(1)
	return &clientConn{Conn: nc, br: bufio.NewReaderSize(nc, 2048)}, false, nil
}

// put keeps c for src's next sign-ins, or closes it when the flood has
// moved on to another address (or keeps no connections).
func (f *flood) put(src net.IP, c *clientConn) {
	a := src.String()
	if !f.keepAlive || f.current.Load() != a {
		c.Close()
		f.mu.Lock()
		for _, old := range f.idle[a] {
			old.Close()
		}
		delete(f.idle, a)
		f.mu.Unlock()
		return
	}
	f.mu.Lock()
	f.idle[a] = append(f.idle[a], c)
	f.mu.Unlock()
}

// signIn sends one wrong sign-in from src and returns its outcome: the
// answer's status code, or "error". A kept connection the server closed
// meanwhile is retried once on a new one.
func (f *flood) signIn(src net.IP, i int64) string {
	body := fmt.Sprintf(`{"email":"flood%d@example.com","password":"not the password %d"}`, i, i)
	if f.control {
		body = fmt.Sprintf(`{"password":"not the password %d, and no email"}`, i)
	}
	closeHdr := "Connection: close\r\n"
	if f.keepAlive {
		closeHdr = ""
	}
	req := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s",
		f.path, f.host, len(body), closeHdr, body)
	for {
		c, reused, err := f.conn(src)
		if err != nil {
			return "error"
		}
		code, keep, err := c.roundTrip(req)
		if err != nil {
			c.Close()
			if reused && closedIdle(err) {
				continue
			}
			return "error"
		}
		if keep {
			f.put(src, c)
		} else {
			c.Close()
		}
		return fmt.Sprint(code)
	}
}

// closedIdle reports whether err is a kept connection's end, the server
// having closed it while it was idle: the request never reached it.
func closedIdle(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// roundTrip writes req and reads the whole answer: its status, and
// whether the connection may carry another request.
func (c *clientConn) roundTrip(req string) (code int, keep bool, err error) {
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		return 0, false, err
	}
	res, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, false, err
	}
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if err != nil {
		return 0, false, err
	}
	return res.StatusCode, !res.Close, nil
}
