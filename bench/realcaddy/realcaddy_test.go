//go:build linux

// Package realcaddy_test measures the gateway where users run it: in real
// Caddy processes (the binary of ./cmd/caddy), over loopback, in front of
// a real upstream, side by side with plain reverse_proxy.
//
//	go test ./bench/realcaddy -run '^$' -bench . -count 5
//
// Each benchmark starts two Caddy processes, plain reverse_proxy and
// apiusers + reverse_proxy, before one upstream (a net/http server in the
// benchmark process), and sends the same requests to both, alternating,
// from a pool of keep-alive connections. What it reports is the CPU time
// each Caddy process spent (every thread, from /proc/<pid>/task/*/schedstat,
// in nanoseconds) divided by the requests it served:
//
//	proxy-cpu-µs/req    plain reverse_proxy
//	gateway-cpu-µs/req  apiusers + reverse_proxy (and redis-server, on Redis)
//	extra-cpu-µs/req    the difference: what the gateway costs a request
//
// ns/op is wall time per pair of requests and depends on whatever else the
// machine runs; the CPU figures much less. The load generator's own cost is
// the same on both sides and counted on neither.
//
// Both Caddy processes run with GOGC=off GOMEMLIMIT=1GiB, so that neither
// collects garbage more or less often than the other because of the size
// of its live heap (APIUSERS_BENCH_GC=default keeps Caddy's own settings).
// APIUSERS_BENCH_KEYS sets how many users the miss benchmarks seed
// (20000); when a run needs more keys than that, the gateway is restarted
// (untimed, unmeasured) and the keys are used again on an empty cache.
// APIUSERS_BENCH_PPROF=1 turns each Caddy's admin endpoint on, on a free
// loopback port, and prints where: its /debug/pprof (allocs, profile) and
// /debug/vars (memstats) can then be read while the benchmark runs.
package realcaddy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/apiusers/apiusers/authz/redisstore/redistest"
	"github.com/apiusers/apiusers/internal/apitest"
)

var (
	buildOnce sync.Once
	binDir    string
	caddyBin  string
	seedBin   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// caddyBinary builds ./cmd/caddy and ./bench/seed once per test binary.
func caddyBinary(b *testing.B) string {
	b.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "apiusers-realcaddy-"); buildErr != nil {
			return
		}
		caddyBin, seedBin = filepath.Join(binDir, "caddy"), filepath.Join(binDir, "seed")
		for bin, pkg := range map[string]string{caddyBin: "./cmd/caddy", seedBin: "./bench/seed"} {
			cmd := exec.Command("go", "build", "-o", bin, pkg)
			cmd.Dir = filepath.Join("..", "..")
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		b.Fatal(buildErr)
	}
	return caddyBin
}

// fixture is the upstream, the two Caddy processes and the keys of one
// benchmark.
type fixture struct {
	b         *testing.B
	bin, dir  string
	env       []string
	proxy     *caddyProc
	gateway   *caddyProc
	gwConfig  string
	proxyURL  string
	gwURL     string
	extraPids []int // processes whose CPU counts with the gateway's (redis-server)
	keys      []string
	warm      []string
	gwPort    int
	upAddr    string
}

// newFixture starts the upstream and plain reverse_proxy; the caller adds
// the gateway (startGateway) once its store is seeded.
func newFixture(b *testing.B) *fixture {
	b.Helper()
	f := &fixture{b: b, bin: caddyBinary(b), dir: b.TempDir()}
	f.env = append(os.Environ(),
		"HOME="+f.dir,
		"XDG_DATA_HOME="+filepath.Join(f.dir, "xdg-data"),
		"XDG_CONFIG_HOME="+filepath.Join(f.dir, "xdg-config"),
	)
	if os.Getenv("APIUSERS_BENCH_GC") != "default" {
		f.env = append(f.env, "GOGC=off", "GOMEMLIMIT=1GiB")
	}
	body := []byte(`{"ok":true}` + "\n")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"application/json"}
		_, _ = w.Write(body)
	}))
	b.Cleanup(up.Close)
	upAddr := strings.TrimPrefix(up.URL, "http://")

	port := freePort(b)
	f.proxyURL = "http://127.0.0.1:" + strconv.Itoa(port) + "/api/ping"
	cfg := f.write("proxy.Caddyfile", fmt.Sprintf("{\n\tadmin off\n\tdefault_bind 127.0.0.1\n}\nhttp://:%d {\n\treverse_proxy %s\n}\n", port, upAddr))
	f.proxy = f.start(cfg, f.proxyURL)

	port = freePort(b)
	f.gwURL = "http://127.0.0.1:" + strconv.Itoa(port) + "/api/ping"
	f.gwConfig = fmt.Sprintf("http://:%d {\n\tapiusers {\n\t\trequire listeners.invoke\n\t}\n\treverse_proxy %s\n}\n", port, upAddr)
	f.gwPort, f.upAddr = port, upAddr
	return f
}

func (f *fixture) write(name, content string) string {
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		f.b.Fatal(err)
	}
	return p
}

// seed creates users with a key each through bench/seed with
// the global options global, and keeps the keys; the last few are kept
// apart for warming up.
func (f *fixture) seed(global string, users int) {
	f.b.Helper()
	cfg := f.write("seed.Caddyfile", global)
	keysFile := filepath.Join(f.dir, "keys.txt")
	cmd := exec.Command(seedBin, "--config", cfg, "--adapter", "caddyfile",
		"--workspace", "bench", "--users", strconv.Itoa(users), "--prefix", "load", "--keys-out", keysFile)
	cmd.Env = f.env
	if out, err := cmd.CombinedOutput(); err != nil {
		f.b.Fatalf("bench/seed: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(keysFile)
	if err != nil {
		f.b.Fatal(err)
	}
	keys := strings.Fields(string(raw))
	if len(keys) != users {
		f.b.Fatalf("seeding wrote %d keys, want %d", len(keys), users)
	}
	warm := min(500, users/10+1)
	f.keys, f.warm = keys[:len(keys)-warm], keys[len(keys)-warm:]
}

// startGateway starts the gateway's Caddy with the global options global.
func (f *fixture) startGateway(global string) {
	f.b.Helper()
	cfg := f.write("gateway.Caddyfile", global+f.gwConfig)
	f.gateway = f.start(cfg, f.gwURL)
}

// restartGateway gives the gateway an empty cache.
func (f *fixture) restartGateway() {
	f.b.Helper()
	f.gateway.stop(f.b)
	f.gateway = f.start(f.gateway.config, f.gwURL)
	f.warmUp(f.warm)
}

// caddyProc is a `caddy run` process of a benchmark.
type caddyProc struct {
	cmd    *exec.Cmd
	config string
	log    *bytes.Buffer
	done   chan struct{}
}

func (f *fixture) start(config, url string) *caddyProc {
	f.b.Helper()
	p := &caddyProc{config: config, log: &bytes.Buffer{}, done: make(chan struct{})}
	if os.Getenv("APIUSERS_BENCH_PPROF") != "" {
		raw, err := os.ReadFile(config)
		if err != nil {
			f.b.Fatal(err)
		}
		port := freePort(f.b)
		raw = bytes.Replace(raw, []byte("\tadmin off\n"), fmt.Appendf(nil, "\tadmin 127.0.0.1:%d\n", port), 1)
		if err := os.WriteFile(config, raw, 0o600); err != nil {
			f.b.Fatal(err)
		}
		fmt.Fprintf(os.Stderr, "PPROF %s http://127.0.0.1:%d/debug/pprof/\n", filepath.Base(config), port)
	}
	p.cmd = exec.Command(f.bin, "run", "--config", config, "--adapter", "caddyfile")
	p.cmd.Env = f.env
	p.cmd.Stdout, p.cmd.Stderr = &lockedWriter{w: p.log}, &lockedWriter{w: p.log}
	// Caddy goes when the benchmark does, even when it panics.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		f.b.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	f.b.Cleanup(func() { p.stop(f.b) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.done:
			f.b.Fatalf("caddy run %s exited:\n%s", config, p.log)
		default:
		}
		if res, err := http.Get(url); err == nil {
			res.Body.Close()
			return p
		}
		if time.Now().After(deadline) {
			f.b.Fatalf("caddy run %s does not answer on %s:\n%s", config, url, p.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *caddyProc) stop(b *testing.B) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		b.Errorf("caddy did not stop within 10s of an interrupt: killed")
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// cpuNanos returns the CPU time the processes used so far, summed over
// their threads, in nanoseconds.
func cpuNanos(b *testing.B, pids ...int) int64 {
	b.Helper()
	var total int64
	for _, pid := range pids {
		tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
		if err != nil || len(tasks) == 0 {
			b.Fatalf("reading the threads of process %d: %v", pid, err)
		}
		for _, t := range tasks {
			raw, err := os.ReadFile(t)
			if err != nil {
				continue // a thread that just ended
			}
			ns, err := strconv.ParseInt(strings.Fields(string(raw))[0], 10, 64)
			if err != nil {
				b.Fatalf("%s: %v", t, err)
			}
			total += ns
		}
	}
	return total
}

const connections = 16 // concurrent requests, half to each Caddy

var client = &http.Client{Transport: &http.Transport{
	MaxIdleConnsPerHost: connections,
	DisableCompression:  true,
}}

// get sends one request with key and checks that it is admitted.
func get(url, key string) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header["Authorization"] = []string{"Bearer " + key}
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, res.Status)
	}
	return nil
}

// pairs sends n requests to each Caddy, the i-th of each with key(i),
// from `connections` goroutines, alternating between the two.
func (f *fixture) pairs(n int, key func(i int) string) {
	f.b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, connections)
	for range connections {
		wg.Go(func() {
			for {
				j := int(next.Add(1) - 1)
				if j >= 2*n {
					return
				}
				url := f.proxyURL
				if j%2 == 1 {
					url = f.gwURL
				}
				if err := get(url, key(j/2)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		f.b.Fatal(err)
	}
}

func (f *fixture) warmUp(keys []string) {
	f.b.Helper()
	f.pairs(len(keys), func(i int) string { return keys[i] })
}

// run measures b.N requests on each Caddy with keys from key; fresh says
// that every key may be used once per gateway process (misses), so the
// gateway is restarted when they run out.
func (f *fixture) run(key func(i int) string, keys int, fresh bool) {
	b := f.b
	var proxyNs, gwNs int64
	used := 0
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := b.N - done
		if fresh {
			if used == keys {
				b.StopTimer()
				f.restartGateway()
				used = 0
				b.StartTimer()
			}
			n = min(n, keys-used)
		}
		p0 := cpuNanos(b, f.proxy.cmd.Process.Pid)
		g0 := cpuNanos(b, append([]int{f.gateway.cmd.Process.Pid}, f.extraPids...)...)
		base := used
		f.pairs(n, func(i int) string { return key(base + i) })
		p1 := cpuNanos(b, f.proxy.cmd.Process.Pid)
		g1 := cpuNanos(b, append([]int{f.gateway.cmd.Process.Pid}, f.extraPids...)...)
		proxyNs += p1 - p0
		gwNs += g1 - g0
		done += n
		used += n
	}
	b.StopTimer()
	proxy := float64(proxyNs) / float64(b.N) / 1e3
	gw := float64(gwNs) / float64(b.N) / 1e3
	b.ReportMetric(proxy, "proxy-cpu-µs/req")
	b.ReportMetric(gw, "gateway-cpu-µs/req")
	b.ReportMetric(gw-proxy, "extra-cpu-µs/req")
}

func globalFile(dir string) string {
	return fmt.Sprintf("{\n\tadmin off\n\tdefault_bind 127.0.0.1\n\tapiusers {\n\t\tstore file %s\n\t}\n}\n", dir)
}

// storeDir is where a file store is made: on tmpfs when there is one, so
// that seeding (one fsync per user) takes seconds, not minutes.
func storeDir(b *testing.B) string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "apiusers-realcaddy-")
		if err == nil {
			b.Cleanup(func() { _ = os.RemoveAll(d) })
			return filepath.Join(d, "store")
		}
	}
	return filepath.Join(b.TempDir(), "store")
}

func seedCount(b *testing.B) int {
	n := 20000
	if v := os.Getenv("APIUSERS_BENCH_KEYS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 100 {
			b.Fatalf("APIUSERS_BENCH_KEYS=%q: want a number ≥ 100", v)
		}
	}
	return n
}

// BenchmarkRealCaddyCached: one key, so the gateway answers from its cache
// (file store).
func BenchmarkRealCaddyCached(b *testing.B) {
	f := newFixture(b)
	global := globalFile(storeDir(b))
	f.seed(global, 100)
	f.startGateway(global)
	key := f.keys[0]
	f.pairs(2000, func(int) string { return key })
	f.run(func(int) string { return key }, 0, false)
}

// BenchmarkRealCaddyPlain is the harness's zero: its second process is
// plain reverse_proxy too, configured as the first, so its extra CPU per
// request is what the method itself reads into a difference (the two
// processes' placement, the order of the requests, the machine), with no
// handler to account for it.
func BenchmarkRealCaddyPlain(b *testing.B) {
	f := newFixture(b)
	f.gwConfig = fmt.Sprintf("http://:%d {\n\treverse_proxy %s\n}\n", f.gwPort, f.upAddr)
	f.runYardstick()
}

// BenchmarkRealCaddyHeaders is a yardstick, not the gateway: its second
// process is plain reverse_proxy behind Caddy's own request_header, which
// deletes the Authorization header and sets the five identity headers
// (X-Api-User-Id, X-Api-User-Name, X-Api-Workspace, X-Api-Role,
// X-Api-Key-Id) to the values the gateway would give them. What it reports
// as extra is what those headers cost Caddy, whoever sets them: the
// handler, and reverse_proxy cloning, logging and writing five more
// headers.
func BenchmarkRealCaddyHeaders(b *testing.B) {
	f := newFixture(b)
	site := fmt.Sprintf("http://:%d {\n"+
		"\trequest_header -Authorization\n"+
		"\trequest_header X-Api-User-Id usr_06h30z2jwr1g7fxwvr2pjy3tf4\n"+
		"\trequest_header X-Api-User-Name load-000001\n"+
		"\trequest_header X-Api-Workspace bench\n"+
		"\trequest_header X-Api-Role api_user\n"+
		"\trequest_header X-Api-Key-Id key_06h30z2jwr9x4b1cqn5yrdx2ce\n"+
		"\treverse_proxy %s\n}\n", f.gwPort, f.upAddr)
	f.gwConfig = site
	f.runYardstick()
}

// BenchmarkRealCaddyHeaderUp is the other yardstick: reverse_proxy alone
// deleting Authorization and setting the five identity headers on the
// request it sends (header_up), with no handler before it: what Caddy's
// own way of forwarding those headers costs.
func BenchmarkRealCaddyHeaderUp(b *testing.B) {
	f := newFixture(b)
	f.gwConfig = fmt.Sprintf("http://:%d {\n"+
		"\treverse_proxy %s {\n"+
		"\t\theader_up -Authorization\n"+
		"\t\theader_up X-Api-User-Id usr_06h30z2jwr1g7fxwvr2pjy3tf4\n"+
		"\t\theader_up X-Api-User-Name load-000001\n"+
		"\t\theader_up X-Api-Workspace bench\n"+
		"\t\theader_up X-Api-Role api_user\n"+
		"\t\theader_up X-Api-Key-Id key_06h30z2jwr9x4b1cqn5yrdx2ce\n"+
		"\t}\n}\n", f.gwPort, f.upAddr)
	f.runYardstick()
}

// runYardstick measures a yardstick: f.gwConfig served by a Caddy without
// the apiusers app, against plain reverse_proxy, on requests whose
// Authorization nothing checks.
func (f *fixture) runYardstick() {
	f.b.Helper()
	f.startGateway("{\n\tadmin off\n\tdefault_bind 127.0.0.1\n}\n")
	key := func(int) string { return "not-checked" }
	f.pairs(2000, key)
	f.run(key, 0, false)
}

// BenchmarkRealCaddyMissFile: another key with every request, so each one
// verifies a key and loads a principal from the file store.
func BenchmarkRealCaddyMissFile(b *testing.B) {
	f := newFixture(b)
	global := globalFile(storeDir(b))
	f.seed(global, seedCount(b))
	f.startGateway(global)
	f.warmUp(f.warm)
	f.run(func(i int) string { return f.keys[i] }, len(f.keys), true)
}

// BenchmarkRealCaddyMissRedis: the same on Redis; redis-server's CPU counts
// with the gateway's.
func BenchmarkRealCaddyMissRedis(b *testing.B) {
	f := newFixture(b)
	srv := redistest.Start(b)
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	f.env = append(f.env, "APIUSERS_BENCH_SIGNING_KEY="+hex.EncodeToString(secret))
	global := fmt.Sprintf("{\n\tadmin off\n\tdefault_bind 127.0.0.1\n\tapiusers {\n\t\tstore redis %s\n\t\tsigning_key {env.APIUSERS_BENCH_SIGNING_KEY}\n\t}\n}\n", srv.URL())
	f.seed(global, seedCount(b))
	f.startGateway(global)
	f.extraPids = []int{redisPid(b, srv.Addr)}
	f.warmUp(f.warm)
	f.run(func(i int) string { return f.keys[i] }, len(f.keys), true)
}

// redisPid asks the server at addr for its process id.
func redisPid(b *testing.B, addr string) int {
	b.Helper()
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	info, err := rc.Info(context.Background(), "server").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			pid, err := strconv.Atoi(v)
			if err != nil {
				b.Fatal(err)
			}
			return pid
		}
	}
	b.Fatal("redis INFO names no process_id")
	return 0
}

func freePort(b *testing.B) int { return apitest.FreePort(b) }
