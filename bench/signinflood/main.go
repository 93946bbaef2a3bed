//go:build linux

// Command signinflood is the load harness's sign-in flood (bench/run.sh):
// it sends wrong sign-ins (POST <admin>/login) at a fixed rate for a
// while, each for another unknown email and from another loopback source
// address (127.1.x.y, at most 40 attempts per address), so that neither
// the per-identity nor the per-address throttle spares the hashing: it is
// the worst flood for the gateway next to it. It prints how the sign-ins
// were answered and how many connections it opened.
//
// Each sign-in is one complete HTTP/1.1 request, and every answer is read
// whole (status line, headers, and the body by its Content-Length or its
// chunks, or up to the connection's end). By default every sign-in has a
// connection of its own (Connection: close); with -keep-alive the
// connections of a source address carry its next sign-ins, as a
// browser's or an HTTP library's would. With -control the requests have
// no email, so the admin API answers them 400 before it counts, reads or
// hashes anything: what such a flood costs the gateway beside it is what
// the requests themselves cost.
//
// The client runs on the machine it measures, so it spends as little CPU
// as it honestly can, as an attacker's would: one thread drives every
// connection from one epoll set with raw system calls (non-blocking
// sockets; epoll_pwait's timeout paces the sign-ins). Go's netpoller and
// scheduler would cost about 0.6 ms of CPU a sign-in at this rate on the
// harness's 2-CPU machine, most of it in context switches (the runtime's
// sysmon thread woken for every system call), against about 0.2 ms here;
// see bench/README.md.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/url"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// maxInFlight is how many sign-ins may wait for their answers at once;
// beyond, an attempt is counted as skipped.
const maxInFlight = 1024

// timeout is how long a sign-in may take, connecting included.
const timeout = 30 * time.Second

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
	addr, err := net.ResolveTCPAddr("tcp4", target.Host)
	if err != nil || addr.IP.To4() == nil {
		log.Fatalf("signinflood: -url must name an IPv4 address and port: %v", err)
	}
	// One goroutine on one thread does everything; nothing else runs.
	runtime.GOMAXPROCS(1)
	runtime.LockOSThread()

	f, err := newFlood(addr, target.Host, target.RequestURI(), *keepAlive, *control, int64(*perAddr))
	if err != nil {
		log.Fatalf("signinflood: %v", err)
	}
	n := f.run(*first, *rate, *dur)
	keys := make([]string, 0, len(f.counts))
	for k := range f.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, f.counts[k]))
	}
	fmt.Printf("sent=%d %s connections=%d\n", n, strings.Join(parts, " "), f.dialed)
}

// flood is the client: its epoll set, its connections by descriptor,
// and the answers' counts.
type flood struct {
	epfd      int
	dst       syscall.SockaddrInet4
	host      string
	path      string
	keepAlive bool
	control   bool
	perAddr   int64

	conns   map[int32]*conn   // every open connection, by descriptor
	idle    map[int64][]*conn // kept connections by source address (keep-alive)
	current int64             // the source address the flood is at
	busy    int               // sign-ins waiting for their answers
	dialed  int
	counts  map[string]int
	free    [][]byte // spare buffers
}

// conn is one connection and the sign-in it carries (none while idle).
type conn struct {
	fd        int
	src       int64 // the source address's number
	attempt   int64 // the sign-in it carries, or -1 while idle
	reused    bool  // the sign-in went out on a kept connection
	connected bool
	written   int
	req       []byte // the request
	res       []byte // the answer so far
	deadline  time.Time
}

func newFlood(dst *net.TCPAddr, host, path string, keepAlive, control bool, perAddr int64) (*flood, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	f := &flood{epfd: epfd, host: host, path: path, keepAlive: keepAlive, control: control, perAddr: perAddr,
		conns: map[int32]*conn{}, idle: map[int64][]*conn{}, counts: map[string]int{}, current: -1}
	f.dst.Port = dst.Port
	copy(f.dst.Addr[:], dst.IP.To4())
	return f, nil
}

// run sends a sign-in every 1/rate s for dur, numbered from first, then
// waits for every answer. It returns how many it started or skipped.
func (f *flood) run(first int64, rate int, dur time.Duration) int64 {
	var events [256]syscall.EpollEvent
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	end := start.Add(dur)
	next := start.Add(interval) // as a ticker's first tick
	var n int64
	lastSweep := start
	for {
		now := time.Now()
		for !next.After(now) && next.Before(end) {
			f.start(first+n, now)
			n++
			next = next.Add(interval)
		}
		if now.Sub(lastSweep) >= 100*time.Millisecond {
			f.sweep(now)
			lastSweep = now
		}
		wait := -1 // no more sign-ins to send: until the last answer
		if next.Before(end) {
			wait = int((next.Sub(now) + time.Millisecond - 1) / time.Millisecond)
		} else if f.busy == 0 {
			break
		} else {
			wait = 100 // for the sweep of timed-out sign-ins
		}
		k, errno := epollWait(f.epfd, events[:], wait)
		if errno != 0 {
			if errno == syscall.EINTR {
				continue
			}
			log.Fatalf("signinflood: epoll_pwait: %v", errno)
		}
		for _, ev := range events[:k] {
			if c := f.conns[ev.Fd]; c != nil {
				f.ready(c, ev.Events)
			}
		}
	}
	for _, c := range f.conns {
		syscall.Close(c.fd)
	}
	return n
}

// epollWait is epoll_pwait as a raw system call: the runtime is not told
// of it, so that its sysmon thread is not woken for each wait (the only
// goroutine is the one waiting; nothing else needs the thread).
func epollWait(epfd int, events []syscall.EpollEvent, msec int) (int, syscall.Errno) {
	r, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd),
		uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(msec), 0, 0)
	return int(r), errno
}

// start begins sign-in i: on a kept connection of its source address, or
// on a new one.
func (f *flood) start(i int64, now time.Time) {
	if f.busy >= maxInFlight {
		f.counts["skipped (1024 in flight)"]++
		return
	}
	a := i / f.perAddr
	if a != f.current {
		// The flood has moved on: the last address's kept connections go.
		for _, c := range f.idle[f.current] {
			f.close(c)
		}
		delete(f.idle, f.current)
		f.current = a
	}
	f.busy++
	if cs := f.idle[a]; len(cs) > 0 {
		c := cs[len(cs)-1]
		f.idle[a] = cs[:len(cs)-1]
		c.attempt, c.reused, c.written, c.res, c.deadline = i, true, 0, c.res[:0], now.Add(timeout)
		c.req = f.request(c.req[:0], i)
		f.write(c)
		return
	}
	f.dial(i, a, now)
}

// dial opens a connection from source address a for sign-in i.
func (f *flood) dial(i, a int64, now time.Time) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		f.done(nil, "error")
		return
	}
	c := &conn{fd: fd, src: a, attempt: i, deadline: now.Add(timeout), req: f.buffer(), res: f.buffer()}
	c.req = f.request(c.req, i)
	f.conns[int32(fd)] = c
	src := &syscall.SockaddrInet4{Addr: [4]byte{127, 1, byte(a / 250), byte(a%250 + 1)}}
	if err := syscall.Bind(fd, src); err != nil {
		f.fail(c)
		return
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP | -syscall.EPOLLET, Fd: int32(fd)}
	if err := syscall.EpollCtl(f.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		f.fail(c)
		return
	}
	f.dialed++
	switch err := syscall.Connect(fd, &f.dst); {
	case err == nil:
		c.connected = true
		f.write(c)
	case errors.Is(err, syscall.EINPROGRESS):
		// Writable once connected (EPOLLOUT).
	default:
		f.fail(c)
	}
}

// ready handles epoll's events for c.
func (f *flood) ready(c *conn, events uint32) {
	if c.attempt < 0 {
		// An idle kept connection that the server closed (or wrote to):
		// it cannot carry a sign-in any more.
		f.dropIdle(c)
		return
	}
	if !c.connected {
		if events&(syscall.EPOLLOUT|syscall.EPOLLERR|syscall.EPOLLHUP) == 0 {
			return
		}
		if v, err := syscall.GetsockoptInt(c.fd, syscall.SOL_SOCKET, syscall.SO_ERROR); err != nil || v != 0 {
			f.fail(c)
			return
		}
		c.connected = true
	}
	if c.written < len(c.req) {
		f.write(c)
		if c.fd < 0 || c.written < len(c.req) {
			return // ended, or the rest once writable
		}
	}
	if events&(syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
		f.read(c)
	}
}

// write sends what is left of c's request.
func (f *flood) write(c *conn) {
	for c.written < len(c.req) {
		n, err := syscall.Write(c.fd, c.req[c.written:])
		if err == syscall.EAGAIN {
			return // the rest once writable (EPOLLOUT)
		}
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			f.fail(c)
			return
		}
		c.written += n
	}
	// The answer comes after the request, so epoll (edge-triggered)
	// reports it.
}

// read reads what has arrived of c's answer and ends the sign-in when
// the answer is whole.
func (f *flood) read(c *conn) {
	for {
		if len(c.res) == cap(c.res) {
			c.res = append(c.res, make([]byte, max(1024, len(c.res)))...)[:len(c.res)]
		}
		n, err := syscall.Read(c.fd, c.res[len(c.res):cap(c.res)])
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			return // more once readable (EPOLLIN)
		}
		eof := err == nil && n == 0
		if err != nil {
			f.fail(c)
			return
		}
		c.res = c.res[:len(c.res)+n]
		code, keep, whole, bad := parseAnswer(c.res, eof)
		switch {
		case bad:
			f.fail(c)
			return
		case whole:
			f.finish(c, code, keep && !eof)
			return
		case eof:
			f.fail(c)
			return
		}
	}
}

// finish counts c's answer and closes c, or keeps it for its address's
// next sign-ins.
func (f *flood) finish(c *conn, code int, keep bool) {
	f.done(c, statusText(code))
	if keep && f.keepAlive && c.src == f.current {
		c.attempt = -1
		c.res = c.res[:0]
		f.idle[c.src] = append(f.idle[c.src], c)
		return
	}
	f.close(c)
}

// fail ends c's sign-in as an error, or, when it went out on a kept
// connection that the server had closed before it (nothing of an answer
// came), sends it again on a new connection.
func (f *flood) fail(c *conn) {
	if c.reused && len(c.res) == 0 {
		i, a := c.attempt, c.src
		f.close(c)
		f.dial(i, a, time.Now()) // still one busy sign-in

		return
	}
	f.done(c, "error")
	f.close(c)
}

// done counts a sign-in's outcome.
func (f *flood) done(c *conn, outcome string) {
	f.counts[outcome]++
	f.busy--
	if c != nil {
		c.attempt = -1
	}
}

// dropIdle closes a kept connection and forgets it.
func (f *flood) dropIdle(c *conn) {
	cs := f.idle[c.src]
	for k, o := range cs {
		if o == c {
			f.idle[c.src] = append(cs[:k], cs[k+1:]...)
			break
		}
	}
	f.close(c)
}

// close closes c (which leaves the epoll set with it) and keeps its
// buffers for the next connections.
func (f *flood) close(c *conn) {
	if c.fd < 0 {
		return
	}
	delete(f.conns, int32(c.fd))
	syscall.Close(c.fd)
	c.fd, c.attempt = -1, -1
	f.free = append(f.free, c.req[:0], c.res[:0])
	c.req, c.res = nil, nil
}

// sweep ends the sign-ins that have waited longer than timeout.
func (f *flood) sweep(now time.Time) {
	for _, c := range f.conns {
		if c.attempt >= 0 && now.After(c.deadline) {
			c.reused = false
			f.fail(c)
		}
	}
}

func (f *flood) buffer() []byte {
	if k := len(f.free); k > 0 {
		b := f.free[k-1]
		f.free = f.free[:k-1]
		return b
	}
	return make([]byte, 0, 1024)
}

// request appends sign-in i's request to b.
func (f *flood) request(b []byte, i int64) []byte {
	var body [128]byte
	bb := body[:0]
	if f.control {
		bb = append(bb, `{"password":"not the password `...)
		bb = strconv.AppendInt(bb, i, 10)
		bb = append(bb, `, and no email"}`...)
	} else {
		bb = append(bb, `{"email":"flood`...)
		bb = strconv.AppendInt(bb, i, 10)
		bb = append(bb, `@example.com","password":"not the password `...)
		bb = strconv.AppendInt(bb, i, 10)
		bb = append(bb, `"}`...)
	}
	b = append(b, "POST "...)
	b = append(b, f.path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, f.host...)
	b = append(b, "\r\nContent-Type: application/json\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(bb)), 10)
	if !f.keepAlive {
		b = append(b, "\r\nConnection: close"...)
	}
	b = append(b, "\r\n\r\n"...)
	return append(b, bb...)
}

// statusText is code in decimal, without an allocation for the usual ones.
func statusText(code int) string {
	switch code {
	case 400:
		return "400"
	case 401:
		return "401"
	case 429:
		return "429"
	case 503:
		return "503"
	}
	return strconv.Itoa(code)
}

// parseAnswer reads the HTTP/1.1 answer in b (eof: the connection has
// ended after it): its status code, whether the connection may carry
// another request, whether the answer is whole, and whether it is not
// HTTP at all. Interim (1xx) answers are skipped.
func parseAnswer(b []byte, eof bool) (code int, keep, whole, bad bool) {
	for {
		end := bytes.Index(b, []byte("\r\n\r\n"))
		if end < 0 {
			return 0, false, false, len(b) > 64<<10
		}
		head, body := b[:end], b[end+4:]
		line, rest, _ := bytes.Cut(head, []byte("\r\n"))
		proto, status, ok := bytes.Cut(line, []byte(" "))
		if !ok || !bytes.HasPrefix(proto, []byte("HTTP/1.")) || len(status) < 3 {
			return 0, false, false, true
		}
		c, err := strconv.Atoi(string(status[:3]))
		if err != nil || c < 100 {
			return 0, false, false, true
		}
		if c < 200 {
			b = body
			continue
		}
		keep = string(proto) == "HTTP/1.1"
		length, chunked := -1, false
		for len(rest) > 0 {
			var h []byte
			h, rest, _ = bytes.Cut(rest, []byte("\r\n"))
			name, value, _ := bytes.Cut(h, []byte(":"))
			value = bytes.TrimSpace(value)
			switch {
			case bytes.EqualFold(name, []byte("Content-Length")):
				if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
					return 0, false, false, true
				}
			case bytes.EqualFold(name, []byte("Transfer-Encoding")):
				chunked = bytes.EqualFold(value, []byte("chunked"))
			case bytes.EqualFold(name, []byte("Connection")):
				if bytes.EqualFold(value, []byte("close")) {
					keep = false
				} else if bytes.EqualFold(value, []byte("keep-alive")) {
					keep = true
				}
			}
		}
		switch {
		case c == 204 || c == 304:
			return c, keep, true, false
		case chunked:
			w, bad := chunksWhole(body)
			return c, keep, w, bad
		case length >= 0:
			return c, keep, len(body) >= length, false
		}
		// Delimited by the connection's end.
		return c, false, eof, false
	}
}

// chunksWhole reports whether b holds a whole chunked body (its trailer
// included), and whether it is malformed.
func chunksWhole(b []byte) (whole, bad bool) {
	for {
		line, rest, ok := bytes.Cut(b, []byte("\r\n"))
		if !ok {
			return false, len(b) > 1024
		}
		size, _, _ := bytes.Cut(line, []byte(";"))
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		if err != nil || n < 0 {
			return false, true
		}
		if n == 0 {
			// Trailer fields, then an empty line.
			for {
				t, r, ok := bytes.Cut(rest, []byte("\r\n"))
				if !ok {
					return false, false
				}
				if len(t) == 0 {
					return true, false
				}
				rest = r
			}
		}
		if int64(len(rest)) < n+2 {
			return false, false
		}
		b = rest[n+2:]
	}
}
