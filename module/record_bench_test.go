package module

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/recorder"
	"github.com/apiusers/apiusers/internal/apitest"
)

// What `record` costs on the gateway's hot path: an allowed request whose
// key and principal are cached, the next handler a no-op, with and without
// record (issue target: throughput with record ≥ 0.95 of without).
//
// The recorder writes to a store that keeps nothing (countingMessages), so
// what is measured is the gateway's part (the response and body wrappers,
// the message, the non-blocking queue) plus the writer goroutine's (ids,
// batching), which competes for the same CPUs, but not a store's writes.
// Messages the writer could not keep up with are dropped, never waited
// for; dropped/op reports how many.
//
//	go test ./module -run '^$' -bench 'GatewayRecord' -benchtime 2s
//
// BenchmarkGatewayRecord has every case on its own (serial, with a 540-byte
// body read by next, and parallel); on a shared machine, compare with
// BenchmarkGatewayRecordTurns, whose on/off ratio comes from one run in
// which the two cases take turns.

// countingMessages is a MessageStore that counts what it is given.
type countingMessages struct{ n atomic.Int64 }

func (c *countingMessages) AppendMessages(_ context.Context, msgs []authz.Message, _ authz.Retention) error {
	c.n.Add(int64(len(msgs)))
	return nil
}

func (c *countingMessages) ListMessages(context.Context, string, authz.MessageQuery) ([]authz.Message, error) {
	return nil, nil
}

func (c *countingMessages) EraseMessages(context.Context, string, string) error { return nil }

// benchRecordGateway is benchGateway's gateway, recording when record is
// set (keeping up to bodyMax bytes of bodies).
func benchRecordGateway(b *testing.B, record bool, bodyMax int64) (*Gateway, string, *recorder.Recorder) {
	b.Helper()
	g, key := benchGateway(b)
	if !record {
		return g, key, nil
	}
	g.Record = &RecordConfig{Body: bodyMax}
	if err := g.compile(); err != nil {
		b.Fatal(err)
	}
	rec := recorder.New(&countingMessages{}, recorder.Config{})
	b.Cleanup(func() { rec.Close(context.Background()) })
	g.app = appServing(g.app.state.live.Load().svc, rec)
	return g, key, rec
}

// recordRequests makes n requests as Caddy hands them to the gateway (see
// freshRequest), with the original request in their context and, when body
// is not nil, body as their body.
func recordRequests(reqs []*http.Request, base *http.Request, tmpl http.Header, body []byte) {
	for i := range reqs {
		r := freshRequest(base, tmpl)
		if body != nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
		}
		*r = *r.WithContext(context.WithValue(r.Context(), caddyhttp.OriginalRequestCtxKey, *r))
		reqs[i] = r
	}
}

var readingNext = caddyhttp.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) error {
	_, err := io.Copy(io.Discard, r.Body)
	return err
})

// recordBatch is how many requests the benchmarks prepare at a time, with
// the timer stopped.
const recordBatch = 1024

func benchRecordSerial(b *testing.B, record bool, body []byte) {
	var bodyMax int64
	next := noopNext
	if body != nil {
		bodyMax, next = 4096, readingNext
	}
	g, key, rec := benchRecordGateway(b, record, bodyMax)
	base := httptest.NewRequest(http.MethodPost, "http://example.com/api/hello", nil)
	tmpl := clientHeader(key)
	w := httptest.NewRecorder()
	reqs := make([]*http.Request, recordBatch)

	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % recordBatch
		if j == 0 {
			b.StopTimer()
			recordRequests(reqs, base, tmpl, body)
			b.StartTimer()
		}
		if err := g.ServeHTTP(w, reqs[j], next); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if rec != nil {
		b.ReportMetric(float64(rec.Dropped())/float64(b.N), "dropped/op")
	}
}

// benchRecordParallel makes each request inside the timed loop (a parallel
// benchmark cannot stop the timer per goroutine): the on/off ratio of the
// two cases is diluted by that work alike.
func benchRecordParallel(b *testing.B, record bool) {
	g, key, rec := benchRecordGateway(b, record, 0)
	base := httptest.NewRequest(http.MethodPost, "http://example.com/api/hello", nil)
	tmpl := clientHeader(key)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := httptest.NewRecorder()
		reqs := make([]*http.Request, 1)
		for pb.Next() {
			recordRequests(reqs, base, tmpl, nil)
			if err := g.ServeHTTP(w, reqs[0], noopNext); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if rec != nil {
		b.ReportMetric(float64(rec.Dropped())/float64(b.N), "dropped/op")
	}
}

func BenchmarkGatewayRecord(b *testing.B) {
	body := bytes.Repeat([]byte(`{"reading":21.5,"unit":"C"}`), 20) // 540 bytes
	b.Run("off", func(b *testing.B) { benchRecordSerial(b, false, nil) })
	b.Run("on", func(b *testing.B) { benchRecordSerial(b, true, nil) })
	b.Run("body-off", func(b *testing.B) { benchRecordSerial(b, false, body) })
	b.Run("body-on", func(b *testing.B) { benchRecordSerial(b, true, body) })
	b.Run("parallel-off", func(b *testing.B) { benchRecordParallel(b, false) })
	b.Run("parallel-on", func(b *testing.B) { benchRecordParallel(b, true) })
}

// BenchmarkGatewayRecordTurns runs the serial off and on cases in turns of
// recordBatch requests within one benchmark, so that the load of a shared
// machine weighs on both alike; b.N requests go to each. Each turn's
// requests are made before the turn and only the turns are timed. on/off
// is the ratio of their throughputs.
func BenchmarkGatewayRecordTurns(b *testing.B) {
	off, key := benchGateway(b)
	on := *off
	on.Record = &RecordConfig{}
	if err := on.compile(); err != nil {
		b.Fatal(err)
	}
	rec := recorder.New(&countingMessages{}, recorder.Config{})
	b.Cleanup(func() { rec.Close(context.Background()) })
	on.app = appServing(off.app.state.live.Load().svc, rec)

	base := httptest.NewRequest(http.MethodPost, "http://example.com/api/hello", nil)
	tmpl := clientHeader(key)
	w := httptest.NewRecorder()
	reqs := make([]*http.Request, recordBatch)
	turn := func(g *Gateway, n int) time.Duration {
		recordRequests(reqs[:n], base, tmpl, nil)
		start := time.Now()
		for _, r := range reqs[:n] {
			if err := g.ServeHTTP(w, r, noopNext); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	var tOff, tOn time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += recordBatch {
		n := min(recordBatch, b.N-done)
		tOff += turn(off, n)
		tOn += turn(&on, n)
	}
	b.StopTimer()
	b.ReportMetric(float64(tOff.Nanoseconds())/float64(b.N), "off-ns/req")
	b.ReportMetric(float64(tOn.Nanoseconds())/float64(b.N), "on-ns/req")
	b.ReportMetric(tOff.Seconds()/tOn.Seconds(), "on/off")
	b.ReportMetric(float64(rec.Dropped())/float64(b.N), "dropped/req")
}

// BenchmarkCaddyRecord measures the same through a real Caddy over
// loopback HTTP/1.1 keep-alive connections (8 clients): one route with the
// gateway ("off"), one with the gateway and record ("on"), both answered
// by `respond` in the same Caddy (so the gateway is as large a share of
// the request as it can be), messages written to the embedded store. The
// routes take turns; b.N requests go to each, and on/off is the ratio of
// their throughputs.
//
//	go test ./module -run '^$' -bench CaddyRecord -benchtime 40000x -count 3
func BenchmarkCaddyRecord(b *testing.B) {
	tmp := b.TempDir()
	b.Setenv("XDG_DATA_HOME", tmp+"/xdg-data")
	b.Setenv("XDG_CONFIG_HOME", tmp+"/xdg-config")
	e2eAdminPortOnce.Do(func() { e2eAdminPort = apitest.FreePort(b) })
	sitePort := apitest.FreePort(b)
	cf := apitest.Caddyfile{
		AdminPort: e2eAdminPort, Apiusers: []string{"store file " + tmp + "/apiusers"}, SitePort: sitePort,
		Routes: `
	handle /off/* {
		apiusers {
			require listeners.invoke
		}
		respond "ok"
	}
	handle /on/* {
		apiusers {
			require listeners.invoke
			record
		}
		respond "ok"
	}
`,
	}.String()
	cfgPath := tmp + "/Caddyfile"
	if err := os.WriteFile(cfgPath, []byte(cf), 0o644); err != nil {
		b.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if _, err := bootstrap(&out, &errOut, cfgPath, "caddyfile", "acme", "root"); err != nil {
		b.Fatalf("bootstrap: %v %s", err, errOut.String())
	}
	root := strings.TrimSpace(out.String())
	tester := caddytest.NewTester(b).WithDefaultOverrides(caddytest.Config{AdminPort: e2eAdminPort, LoadRequestTimeout: 30 * time.Second})
	tester.InitServer(cf, "caddyfile")
	b.Cleanup(func() {
		tester.InitServer(apitest.Empty(e2eAdminPort), "caddyfile")
	})
	base := fmt.Sprintf("http://localhost:%d", sitePort)
	key := (&apitest.Site{Base: base}).MkUser(b, root, "acme", "bench", "api_user", nil).Key

	const workers = 8
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers, DisableCompression: true}}
	defer client.CloseIdleConnections()
	// burst sends n requests to path, workers at a time, and returns how
	// long they took.
	burst := func(path string, n int) time.Duration {
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodGet, base+path, nil)
				req.Header.Set("Authorization", "Bearer "+key)
				for next.Add(1) <= int64(n) {
					res, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != http.StatusOK {
						b.Errorf("status %d", res.StatusCode)
						return
					}
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	burst("/off/warm", 2000)
	burst("/on/warm", 2000)

	// The two routes take turns in slices of 1000 requests, so that the
	// load of a shared machine weighs on both alike.
	const slice = 1000
	var off, on time.Duration
	done := 0
	b.ResetTimer()
	for done < b.N {
		n := min(slice, b.N-done)
		off += burst("/off/x", n)
		on += burst("/on/x", n)
		done += n
	}
	b.StopTimer()
	offRate, onRate := float64(b.N)/off.Seconds(), float64(b.N)/on.Seconds()
	b.ReportMetric(offRate, "off-req/s")
	b.ReportMetric(onRate, "on-req/s")
	b.ReportMetric(onRate/offRate, "on/off")
}
