package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// BuildCaddy builds ./cmd/caddy (Caddy with the standard modules and
// apiusers) of the repository at root into dir, and returns the binary's
// path; the error holds the build's output.
func BuildCaddy(root, dir string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go command is needed to build ./cmd/caddy: %w", err)
	}
	exe := filepath.Join(dir, "caddy")
	cmd := exec.Command(goBin, "build", "-o", exe, "./cmd/caddy")
	cmd.Dir = root
	cmd.Env = os.Environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/caddy: %w\n%s", err, out)
	}
	return exe, nil
}

// Binary builds ./cmd/caddy once per test binary, on the first call (the
// calls of parallel tests wait for it), into a directory that lives until
// the process exits; a test binary that calls it removes the directory
// with Cleanup (from TestMain, after m.Run).
type Binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Path returns the binary's path, building it on the first call; it fails
// tb when the build failed.
func (b *Binary) Path(tb testing.TB) string {
	tb.Helper()
	b.once.Do(func() {
		start := time.Now()
		if b.dir, b.err = os.MkdirTemp("", "apiusers-caddy-"); b.err != nil {
			return
		}
		b.path, b.err = BuildCaddy(Root(tb), b.dir)
		tb.Logf("go build ./cmd/caddy took %v", time.Since(start).Round(time.Millisecond))
	})
	if b.err != nil {
		tb.Fatal(b.err)
	}
	return b.path
}

// Cleanup removes what Path built.
func (b *Binary) Cleanup() {
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}

// Env is the environment of a Caddy process of a test: its data and
// config directories, and HOME, inside dir, then extra.
func Env(dir string, extra ...string) []string {
	env := append(os.Environ(),
		"HOME="+dir,
		"XDG_DATA_HOME="+filepath.Join(dir, "xdg-data"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "xdg-config"),
	)
	return append(env, extra...)
}

// Result is the outcome of a command that ran to its end.
type Result struct {
	Stdout, Stderr string
	Code           int
	Took           time.Duration
}

// Run runs the binary to its end (killed, and tb failed, after timeout).
func Run(tb testing.TB, bin string, env []string, timeout time.Duration, args ...string) Result {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String(), Took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		tb.Fatalf("caddy %s: still running after %v\nstderr: %s", strings.Join(args, " "), timeout, r.Stderr)
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	case err != nil:
		tb.Fatalf("caddy %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// Proc is a `caddy run` process.
type Proc struct {
	cmd  *exec.Cmd
	log  string // its stdout and stderr
	done chan struct{}
	err  error // of Wait, once done is closed
}

// Start runs `caddy run` with args until Stop or the end of tb, and waits
// until url answers.
func Start(tb testing.TB, bin string, env []string, url string, args ...string) *Proc {
	tb.Helper()
	logf, err := os.CreateTemp(tb.TempDir(), "caddy-*.log")
	if err != nil {
		tb.Fatal(err)
	}
	p := &Proc{cmd: exec.Command(bin, append([]string{"run"}, args...)...), log: logf.Name(), done: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		tb.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	tb.Cleanup(func() {
		p.Stop(tb)
		if tb.Failed() {
			tb.Logf("caddy log:\n%s", p.Logs())
		}
	})
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-p.done:
			tb.Fatalf("caddy run exited: %v\n%s", p.err, p.Logs())
		default:
		}
		if res, err := client.Get(url); err == nil {
			res.Body.Close()
			return p
		}
		if time.Now().After(deadline) {
			tb.Fatalf("caddy run: %s does not answer\n%s", url, p.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop interrupts Caddy and waits for it to exit (killing it after 10s).
// It reports whether Caddy exited by itself.
func (p *Proc) Stop(tb testing.TB) bool {
	tb.Helper()
	select {
	case <-p.done:
		return true
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
		return true
	case <-time.After(10 * time.Second):
		tb.Errorf("caddy did not stop within 10s of an interrupt: killed")
		_ = p.cmd.Process.Kill()
		<-p.done
		return false
	}
}

// Kill kills Caddy with SIGKILL, as a crash would (nothing is shut down
// or given back), and waits for it to exit.
func (p *Proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Logs returns what the process wrote so far.
func (p *Proc) Logs() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// LogMessages returns the messages of Caddy's JSON log lines in out, one a
// line (other lines as they are): what a user reads.
func LogMessages(out string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var entry struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal([]byte(l), &entry) == nil && entry.Msg != "" {
			l = entry.Msg
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}
