package module

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/filestore"
	"github.com/apiusers/apiusers/authz/recorder"
)

// recordingGateway is a gateway over e's service that records into a
// recorder of its own over e's store; close writes what is queued.
func (e *testEnv) recordingGateway(g *Gateway) (gw *Gateway, close func()) {
	e.t.Helper()
	gw = e.gateway(g)
	gw.now = e.Now
	rec := recorder.New(e.svc.Store().(authz.MessageStore), recorder.Config{})
	gw.app = appServing(e.svc, rec)
	return gw, func() { rec.Close(context.Background()) }
}

// messagesOf lists the messages of user id in acme, newest first.
func (e *testEnv) messagesOf(id string) []authz.Message {
	e.t.Helper()
	ms, err := e.svc.Store().(authz.MessageStore).ListMessages(context.Background(), "acme", authz.MessageQuery{UserID: id, Limit: 100})
	if err != nil {
		e.t.Fatal(err)
	}
	return ms
}

// serveWith calls g as serve does, with next as the following handler;
// vars are the request's Caddy variables.
func serveWith(t *testing.T, g *Gateway, r *http.Request, vars map[string]any, next caddyhttp.HandlerFunc) (*httptest.ResponseRecorder, error) {
	t.Helper()
	caddyhttp.NewTestReplacer(r)
	ctx := context.WithValue(r.Context(), caddyhttp.VarsCtxKey, vars)
	ctx = context.WithValue(ctx, caddyhttp.OriginalRequestCtxKey, *r.Clone(ctx))
	*r = *r.WithContext(ctx)
	w := httptest.NewRecorder()
	return w, g.ServeHTTP(w, r, next)
}

func TestGatewayRecords(t *testing.T) {
	e := newTestEnv(t)
	g, closeRec := e.recordingGateway(&Gateway{Record: &RecordConfig{Body: 8}})

	// "héllo wörld": the 8th byte falls inside "ö", which is not cut in two.
	const body = "héllo wörld"
	r := httptest.NewRequest(http.MethodPost, "http://example.com/api/hello?api_key=secret", strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+e.userKey)
	r.RemoteAddr = "10.0.0.9:4321"
	e.Advance(0)
	var sawBody string
	w, err := serveWith(t, g, r, map[string]any{caddyhttp.ClientIPVarKey: "203.0.113.7"}, func(w http.ResponseWriter, r *http.Request) error {
		// A later handler rewrites the path (handle_path does so earlier):
		// the message keeps what the client asked for.
		r.URL.Path = "/hello"
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return err
		}
		sawBody = string(b)
		e.Advance(1500 * time.Microsecond)
		w.WriteHeader(http.StatusCreated)
		_, err = io.WriteString(w, "created!")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusCreated || w.Body.String() != "created!" || sawBody != body {
		t.Fatalf("response %d %q, upstream read %q", w.Code, w.Body, sawBody)
	}
	closeRec()

	ms := e.messagesOf(e.user.ID)
	if len(ms) != 1 {
		t.Fatalf("%d messages, want 1", len(ms))
	}
	m := ms[0]
	want := authz.Message{
		ID: m.ID, Workspace: "acme", UserID: e.user.ID, KeyID: e.user.KeyID, Time: m.Time,
		Method: "POST", Path: "/api/hello", Status: http.StatusCreated, DurationMS: 1.5,
		BytesIn: int64(len(body)), BytesOut: 8, ClientIP: "203.0.113.7",
		Body: "héllo w", BodyTruncated: true,
	}
	if m != want {
		t.Fatalf("message\n got %+v\nwant %+v", m, want)
	}
	if !strings.HasPrefix(m.ID, "msg_") || m.Time.Location() != time.UTC {
		t.Errorf("id %q, time %v", m.ID, m.Time)
	}
}

// A message's time and duration count from when Caddy began the request
// (its start_time variable), not from when the gateway ran.
func TestGatewayRecordTimesFromCaddyStart(t *testing.T) {
	e := newTestEnv(t)
	g, closeRec := e.recordingGateway(&Gateway{Record: &RecordConfig{}})
	began := e.Now().Add(-250 * time.Millisecond) // earlier handlers took 250ms
	r := bearer(e.userKey)
	_, err := serveWith(t, g, r, map[string]any{varStartTime: began}, func(w http.ResponseWriter, r *http.Request) error {
		e.Advance(50 * time.Millisecond)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	closeRec()
	ms := e.messagesOf(e.user.ID)
	if len(ms) != 1 {
		t.Fatalf("%d messages, want 1", len(ms))
	}
	if !ms[0].Time.Equal(began) || ms[0].DurationMS != 300 {
		t.Fatalf("time %v, duration %vms; want %v, 300ms", ms[0].Time, ms[0].DurationMS, began.UTC())
	}
}

func TestGatewayRecordStatusAndSizes(t *testing.T) {
	e := newTestEnv(t)
	g, closeRec := e.recordingGateway(&Gateway{Record: &RecordConfig{Body: 64}})

	call := func(method, body string, next caddyhttp.HandlerFunc) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		r := httptest.NewRequest(method, "http://example.com/x", rd)
		r.Header.Set("X-API-Key", e.userKey)
		r.RemoteAddr = "192.0.2.1:999"
		_, _ = serveWith(t, g, r, map[string]any{}, next)
	}
	// The handler fails without writing: the error's status is recorded.
	call(http.MethodGet, "", func(http.ResponseWriter, *http.Request) error {
		return caddyhttp.Error(http.StatusBadGateway, io.ErrUnexpectedEOF)
	})
	// The handler writes nothing: 200, as net/http answers.
	call(http.MethodDelete, "", func(http.ResponseWriter, *http.Request) error { return nil })
	// The upstream does not read the body: Content-Length counts as bytes
	// in, and the body is known to be longer than what was kept (nothing).
	call(http.MethodPut, "0123456789", func(w http.ResponseWriter, r *http.Request) error {
		_, err := w.(io.ReaderFrom).ReadFrom(strings.NewReader("abc"))
		return err
	})
	// A short body is kept whole, not marked truncated.
	call(http.MethodPatch, `{"a":1}`, func(w http.ResponseWriter, r *http.Request) error {
		_, err := io.Copy(io.Discard, r.Body)
		return err
	})
	// Denied calls are not messages.
	r := httptest.NewRequest(http.MethodGet, "http://example.com/x", nil)
	r.Header.Set("X-API-Key", "not-a-key")
	if _, err := serveWith(t, g, r, map[string]any{}, func(http.ResponseWriter, *http.Request) error { return nil }); err == nil {
		t.Fatal("a bad key passed")
	}
	closeRec()

	ms := e.messagesOf(e.user.ID)
	if len(ms) != 4 {
		t.Fatalf("%d messages, want 4: %+v", len(ms), ms)
	}
	type row struct {
		method       string
		status       int
		in, out      int64
		body         string
		truncated    bool
		clientIPWant string
	}
	want := []row{ // newest first
		{"PATCH", 200, 7, 0, `{"a":1}`, false, "192.0.2.1"},
		{"PUT", 200, 10, 3, "", true, "192.0.2.1"},
		{"DELETE", 200, 0, 0, "", false, "192.0.2.1"},
		{"GET", 502, 0, 0, "", false, "192.0.2.1"},
	}
	for i, m := range ms {
		got := row{m.Method, m.Status, m.BytesIn, m.BytesOut, m.Body, m.BodyTruncated, m.ClientIP}
		if got != want[i] {
			t.Errorf("message %d: got %+v, want %+v", i, got, want[i])
		}
	}
}

// Without record, the handlers after the gateway get the request's own
// writer and body: nothing is wrapped, nothing is paid.
func TestGatewayWithoutRecordWrapsNothing(t *testing.T) {
	e := newTestEnv(t)
	g := e.gateway(&Gateway{})
	body := io.NopCloser(strings.NewReader("x"))
	r := httptest.NewRequest(http.MethodPost, "http://example.com/x", nil)
	r.Body = body
	r.Header.Set("X-API-Key", e.userKey)
	var sawW http.ResponseWriter
	var sawBody io.ReadCloser
	w, err := serveWith(t, g, r, map[string]any{}, func(w http.ResponseWriter, r *http.Request) error {
		sawW, sawBody = w, r.Body
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if sawW != http.ResponseWriter(w) || sawBody != body {
		t.Fatal("a route without record wrapped the writer or the body")
	}
}

// The recording writer keeps what handlers need from the real writer:
// flushing (directly and through http.ResponseController) and Unwrap.
func TestRecordingWriterPassesThrough(t *testing.T) {
	w := httptest.NewRecorder()
	rw := &recordingWriter{}
	rw.ResponseWriter = w
	var hw http.ResponseWriter = rw
	hw.Header().Set("X-Test", "1")
	hw.WriteHeader(http.StatusAccepted)
	hw.WriteHeader(http.StatusOK) // superfluous: not the status
	if err := http.NewResponseController(hw).Flush(); err != nil {
		t.Fatalf("flush through ResponseController: %v", err)
	}
	hw.(http.Flusher).Flush()
	if _, err := io.WriteString(hw, "hello"); err != nil {
		t.Fatal(err)
	}
	if rw.status != http.StatusAccepted || rw.size != 5 || !w.Flushed || w.Header().Get("X-Test") != "1" {
		t.Fatalf("status %d size %d flushed %v", rw.status, rw.size, w.Flushed)
	}
	if _, _, err := hw.(http.Hijacker).Hijack(); err == nil {
		t.Fatal("hijacking a recorder that cannot be hijacked succeeded")
	}
}

func TestMessageSettings(t *testing.T) {
	m, err := (&App{}).messageSettings("file\x00/x")
	if err != nil {
		t.Fatal(err)
	}
	if m.keep.MaxPerUser != 10000 || m.keep.MaxAge != 30*24*time.Hour || m.queue != 65536 {
		t.Fatalf("defaults: %+v queue %d", m.keep, m.queue)
	}
	m, err = (&App{MessagesKeep: 5, MessagesMaxAge: caddy.Duration(time.Hour), MessagesQueue: 10}).messageSettings("")
	if err != nil {
		t.Fatal(err)
	}
	if m.keep.MaxPerUser != 5 || m.keep.MaxAge != time.Hour || m.queue != 10 {
		t.Fatalf("settings: %+v queue %d", m.keep, m.queue)
	}
	for _, a := range []App{{MessagesKeep: -1}, {MessagesMaxAge: -1}, {MessagesQueue: -1}} {
		if _, err := a.messageSettings(""); err == nil || !strings.Contains(err.Error(), "must not be negative") {
			t.Errorf("%+v: err = %v", a, err)
		}
	}
}

// Configurations over the same store and message settings share one
// recorder, so a reload loses nothing queued; it is made only when a
// route records, holds the store while it writes, and is closed by the
// last Cleanup. The metrics are in the configuration's registry.
func TestAppSharesRecorder(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	lock := caddy.Duration(200 * time.Millisecond)
	provision := func(a *App) *App {
		t.Helper()
		if err := a.Provision(ctx); err != nil {
			t.Fatalf("provision: %v", err)
		}
		return a
	}
	// recorder is what a route with a record line gets, its app started.
	recorder := func(a *App) (*recorder.Recorder, error) {
		t.Helper()
		if err := a.wantRecorder(ctx); err != nil {
			return nil, err
		}
		sv, err := a.open()
		if err != nil {
			return nil, err
		}
		return sv.rec, nil
	}
	oldApp := provision(&App{Store: &StoreConfig{Dir: dir, LockTimeout: lock}})
	if sv, err := oldApp.open(); err != nil || sv.rec != nil {
		t.Fatalf("a recorder was made although no route records (%v)", err)
	}
	rec1, err := recorder(oldApp)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := recorder(oldApp); again != rec1 {
		t.Fatal("a second route of the same config got another recorder")
	}
	newApp := provision(&App{Store: &StoreConfig{Dir: dir, LockTimeout: lock}})
	rec2, err := recorder(newApp)
	if err != nil {
		t.Fatal(err)
	}
	if rec2 != rec1 {
		t.Fatal("a reload with the same settings made a new recorder")
	}
	other := provision(&App{Store: &StoreConfig{Dir: dir, LockTimeout: lock}, MessagesKeep: 3})
	rec3, err := recorder(other)
	if err != nil {
		t.Fatal(err)
	}
	if rec3 == rec1 {
		t.Fatal("changed retention shared the old recorder")
	}

	families, err := ctx.GetMetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]*dto.MetricFamily{}
	for _, f := range families {
		names[f.GetName()] = f
	}
	for _, n := range []string{"apiusers_messages_dropped_total", "apiusers_messages_recorded_total"} {
		if names[n] == nil {
			t.Errorf("metric %s not registered", n)
		}
	}

	// The old config goes: the shared recorder lives on.
	if err := oldApp.Cleanup(); err != nil {
		t.Fatal(err)
	}
	before := rec1.Dropped()
	rec1.Record(authz.Message{Workspace: "acme", UserID: "usr_x", Time: time.Now()})
	if err := newApp.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := other.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if rec1.Dropped() != before {
		t.Fatal("a message queued before the last cleanup was dropped")
	}
	// Closed with the last holder: what comes later is dropped, and the
	// database is free again (and holds the message written on close).
	rec1.Record(authz.Message{Workspace: "acme", UserID: "usr_x", Time: time.Now()})
	if rec1.Dropped() != before+1 {
		t.Fatal("the recorder was not closed by the last cleanup")
	}
	st, err := filestore.Open(filepath.Join(dir, dbFileName), filestore.Options{LockTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("store still held after cleanup: %v", err)
	}
	defer st.Close()
	ms, err := st.ListMessages(context.Background(), "acme", authz.MessageQuery{UserID: "usr_x", Limit: 10})
	if err != nil || len(ms) != 1 {
		t.Fatalf("messages written on close: %d, %v", len(ms), err)
	}
}
