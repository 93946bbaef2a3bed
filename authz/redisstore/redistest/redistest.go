// Package redistest starts real redis-server processes for tests.
//
// Each server listens on a free loopback port and keeps its files in a
// temporary directory; it is stopped when the test ends, even when it fails.
// Tests need the redis-server binary on PATH (apt-get install -y
// redis-server); with APIUSERS_SKIP_REDIS=1 they are skipped instead.
package redistest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	startAttempts = 5               // free-port races retried
	readyTimeout  = 5 * time.Second // per attempt
	stopTimeout   = 5 * time.Second // SIGTERM grace before SIGKILL
)

// Server is a running redis-server.
type Server struct {
	// Addr is host:port of the server (127.0.0.1:N).
	Addr string
	// Dir is the server's working directory (data files, redis.log).
	Dir string

	t    testing.TB
	bin  string
	args []string // full command line after the binary

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd exits
}

// Start starts a redis-server on a free loopback port and waits until it
// answers PING. args are extra redis-server options ("--appendonly", "yes",
// ...); unless they say otherwise the server neither saves RDB snapshots
// nor keeps an append-only file. The server is stopped by t.Cleanup.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("APIUSERS_SKIP_REDIS") == "1" {
			t.Skip("redis-server not found and APIUSERS_SKIP_REDIS=1: skipping")
		}
		t.Fatal("redis-server not found: install it (apt-get install -y redis-server) or run make test")
	}
	s := &Server{t: t, bin: bin, Dir: t.TempDir()}
	t.Cleanup(s.Stop)

	var lastErr error
	for range startAttempts {
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: finding a free port: %v", err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.args = commandLine(s.Dir, port, args)
		if lastErr = s.start(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("redistest: starting redis-server: %v", lastErr)
	return nil
}

// commandLine builds the redis-server arguments: ours first, then the
// caller's, which win because redis applies options in order.
func commandLine(dir string, port int, extra []string) []string {
	args := []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--daemonize", "no",
		"--logfile", filepath.Join(dir, "redis.log"),
	}
	if !slices.Contains(extra, "--save") {
		args = append(args, "--save", "")
	}
	if !slices.Contains(extra, "--appendonly") {
		args = append(args, "--appendonly", "no")
	}
	return append(args, extra...)
}

// URL returns the redis:// URL of the server.
func (s *Server) URL() string { return "redis://" + s.Addr }

// start launches the process and waits until it answers PING.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("redis-server on %s is already running", s.Addr)
	}
	cmd := exec.Command(s.bin, s.args...)
	cmd.Dir = s.Dir
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("redis-server on %s exited during startup: %s", s.Addr, s.logTail())
		default:
		}
		if ping(s.Addr) == nil {
			s.cmd, s.done = cmd, done
			return nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("redis-server on %s did not answer PING within %s: %s", s.Addr, readyTimeout, s.logTail())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after 5s) and waits for it
// to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		_ = s.cmd.Process.Kill()
	}
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd, s.done = nil, nil
}

// Restart stops the server if it runs and starts it again on the same port
// with the same directory and options. Data survives only when the options
// made the server persist it (for instance "--appendonly", "yes").
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	var err error
	// The port is ours until someone else grabs it; a short retry covers a
	// slow release of the listening socket.
	for range startAttempts {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("redistest: restarting redis-server: %v", err)
}

// logTail returns the last lines of the server log, for error messages.
func (s *Server) logTail() string {
	b, err := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
	if err != nil || len(b) == 0 {
		return "(no log)"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return "log: " + strings.Join(lines, " | ")
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before redis binds it; Start retries in that case.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ping sends an inline PING and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(line, []byte("+PONG")) {
		return fmt.Errorf("PING answered %q", bytes.TrimSpace(line))
	}
	return nil
}
