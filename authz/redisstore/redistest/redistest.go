// Package redistest starts real redis-server processes for tests: a
// single server (Start), a Redis Cluster of masters (StartCluster), or a
// master, a replica and a sentinel (StartSentinel, with Failover).
//
// Each server listens on a free loopback port and keeps its files in a
// temporary directory; it is stopped when the test ends, even when it fails.
// Tests need the redis-server binary on PATH, and redis-cli for a cluster
// (apt-get install -y redis-server brings both); with APIUSERS_SKIP_REDIS=1
// they are skipped instead.
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

	"github.com/apiusers/apiusers/internal/apitest"
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
	return start(t, func(dir string, port int) ([]string, error) {
		return commandLine(dir, port, args), nil
	})
}

// start starts a redis-server whose arguments cmdline makes for its
// directory and a free port, trying other ports when one is taken. The
// server is stopped by t.Cleanup, which is registered before it starts.
func start(t testing.TB, cmdline func(dir string, port int) ([]string, error)) *Server {
	t.Helper()
	bin := lookPath(t, "redis-server")
	s := &Server{t: t, bin: bin, Dir: t.TempDir()}
	t.Cleanup(s.Stop)

	var lastErr error
	for range startAttempts {
		port, err := apitest.ListenPort()
		if err != nil {
			t.Fatalf("redistest: finding a free port: %v", err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if s.args, err = cmdline(s.Dir, port); err != nil {
			t.Fatalf("redistest: %v", err)
		}
		if lastErr = s.start(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("redistest: starting redis-server: %v", lastErr)
	return nil
}

// lookPath finds a Redis binary on PATH, or skips (APIUSERS_SKIP_REDIS=1)
// or fails the test.
func lookPath(t testing.TB, name string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("APIUSERS_SKIP_REDIS") == "1" {
			t.Skipf("%s not found and APIUSERS_SKIP_REDIS=1: skipping", name)
		}
		t.Fatalf("%s not found: install it (apt-get install -y redis-server) or run make test", name)
	}
	return bin
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

// Kill kills the server with SIGKILL, as a crash or the OOM killer would:
// no shutdown, no final RDB save, no last flush of the append-only file.
// It waits for the process to exit. What survives a Restart is what the
// server had written to disk by then (with "--appendfsync", "always",
// every write it acknowledged). Killing a stopped server does nothing.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd, s.done = nil, nil
}

// Restart stops the server if it runs and starts it again on the same port
// with the same directory and options. Data survives only when the options
// made the server persist it (for instance "--appendonly", "yes"). After
// Kill it starts the killed server again, as a supervisor would.
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

// ping sends an inline PING and expects +PONG, or -NOAUTH from a server
// that wants a password (it is up all the same).
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
	if !bytes.HasPrefix(line, []byte("+PONG")) && !bytes.HasPrefix(line, []byte("-NOAUTH")) {
		return fmt.Errorf("PING answered %q", bytes.TrimSpace(line))
	}
	return nil
}
