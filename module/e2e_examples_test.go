package module

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	dto "github.com/prometheus/client_model/go"

	"github.com/apiusers/apiusers/authz/redisstore/redistest"
)

// End-to-end tests of the devices, events, listeners and projects examples:
// a real Caddy (in process) loads each example's Caddyfile, on the file
// store and on a real redis-server, with a real upstream.

// Stores an example runs on.
const (
	exFile  = "file"
	exRedis = "redis"
)

// exEnv is an example served by the in-process Caddy.
type exEnv struct {
	*e2e
	adminPort int
	redis     *redistest.Server // nil on the file store
}

// forEachExStore runs fn against the example on the file store and on Redis.
func forEachExStore(t *testing.T, example string, fn func(t *testing.T, x *exEnv)) {
	for _, store := range []string{exFile, exRedis} {
		t.Run(store, func(t *testing.T) { fn(t, startEx(t, example, store)) })
	}
}

// exStoreLine is the example's store option, replaced for Redis.
var exStoreLine = regexp.MustCompile(`(?m)^\t\tstore file .*$`)

// startEx loads the example into the in-process Caddy as startE2E does,
// on the given store, after bootstrapping superadmin root in workspace
// acme. The upstream reads the whole request body before answering
// "hello <username>".
func startEx(t *testing.T, example, store string) *exEnv {
	t.Helper()
	tmp, dataDir := e2eTempDirs(t)
	t.Setenv("APIUSERS_DATA", dataDir)
	x := &exEnv{}
	if store == exRedis {
		x.redis = redistest.Start(t)
		t.Setenv("REDIS_URL", x.redis.URL())
		t.Setenv("APIUSERS_SIGNING_KEY", "e2e-examples-signing-key-0123456789abcdef")
	}

	up := &upstreamLog{}
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		up.ServeHTTP(w, r)
	}))
	t.Cleanup(upstream.Close)

	e2eAdminPortOnce.Do(func() { e2eAdminPort = freePort(t) })
	x.adminPort = e2eAdminPort
	sitePort := freePort(t)
	x.e2e = &e2e{
		t:        t,
		base:     "http://localhost:" + strconv.Itoa(sitePort),
		dataDir:  dataDir,
		upstream: up,
		// Unloading a configuration closes its principal cache, which can
		// take seconds on a loaded machine under -race: wait longer than
		// caddytest's default 5s.
		tester: caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{
			AdminPort: x.adminPort, LoadRequestTimeout: 30 * time.Second,
		}),
	}
	cf := exampleCaddyfile(t, example, x.adminPort, sitePort, strings.TrimPrefix(upstream.URL, "http://"))
	if store == exRedis {
		if !exStoreLine.MatchString(cf) {
			t.Fatalf("%s Caddyfile: no store file line", example)
		}
		cf = exStoreLine.ReplaceAllLiteralString(cf, "\t\tstore redis {env.REDIS_URL}\n\t\tsigning_key {env.APIUSERS_SIGNING_KEY}")
	}
	cfgPath := filepath.Join(tmp, "Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(cf), 0o644); err != nil {
		t.Fatal(err)
	}
	x.rootKey(cfgPath)
	x.tester.InitServer(cf, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	t.Cleanup(func() {
		x.tester.InitServer(fmt.Sprintf("{\n\tadmin localhost:%d\n\tpersist_config off\n}\n", x.adminPort), "caddyfile")
	})
	return x
}

// exUser is a user made over the admin API, with its first key.
type exUser struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	Key      string `json:"key"`
	KeyID    string `json:"key_id"`
}

// send sends a request with key (none when "") and a raw body, and returns
// the status and the body of the answer.
func (x *exEnv) send(t *testing.T, key, method, path, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, x.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := x.tester.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, b
}

// want sends a request and checks the status; a 200 must come from the
// upstream, which saw the caller.
func (x *exEnv) want(t *testing.T, status int, u exUser, method, path string) {
	t.Helper()
	got, body := x.send(t, u.Key, method, path, "")
	if got != status {
		t.Fatalf("%s %s %s: %d %s, want %d", u.Username, method, path, got, body, status)
	}
	if status == http.StatusOK && method != http.MethodHead && string(body) != "hello "+u.Username {
		t.Fatalf("%s %s %s: body %q", u.Username, method, path, body)
	}
}

// admin calls the admin API with key and a JSON body, checks the status
// and returns the answer's body.
func (x *exEnv) admin(t *testing.T, key, method, path string, body any, status int) []byte {
	t.Helper()
	var raw string
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		raw = string(b)
	}
	got, b := x.send(t, key, method, "/admin"+path, raw)
	if got != status {
		t.Fatalf("admin %s %s: %d %s, want %d", method, path, got, b, status)
	}
	return b
}

// mkUser creates an API user with a first key, as root.
func (x *exEnv) mkUser(t *testing.T, username, role string, extra map[string]any) exUser {
	t.Helper()
	in := map[string]any{"username": username, "kind": "api", "role": role, "issue_key": true}
	for k, v := range extra {
		in[k] = v
	}
	var u exUser
	if err := json.Unmarshal(x.admin(t, x.root, http.MethodPost, "/workspaces/acme/users", in, http.StatusCreated), &u); err != nil || u.Key == "" {
		t.Fatalf("creating %s: %v", username, err)
	}
	return u
}

// mkTeam creates a team, as root, and returns its id.
func (x *exEnv) mkTeam(t *testing.T, in map[string]any) string {
	t.Helper()
	var team struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(x.admin(t, x.root, http.MethodPost, "/workspaces/acme/teams", in, http.StatusCreated), &team); err != nil || team.ID == "" {
		t.Fatalf("creating team: %v", err)
	}
	return team.ID
}

func exGrant(resource string, rights ...string) map[string]any {
	return map[string]any{"resource": resource, "rights": rights}
}

func TestE2EDevices(t *testing.T) {
	forEachExStore(t, "devices", func(t *testing.T, x *exEnv) {
		lamp := x.mkUser(t, "lamp-app", "api_user", map[string]any{"grants": []any{exGrant("device:d1", "read")}})
		x.want(t, http.StatusOK, lamp, http.MethodGet, "/devices/d1")
		x.want(t, http.StatusOK, lamp, http.MethodGet, "/devices/d1/state")
		x.want(t, http.StatusForbidden, lamp, http.MethodPost, "/devices/d1/commands")
		x.want(t, http.StatusForbidden, lamp, http.MethodGet, "/devices/d2/state")
		x.want(t, http.StatusForbidden, lamp, http.MethodPut, "/devices/d2/state")
		if _, body := x.send(t, lamp.Key, http.MethodPost, "/devices/d1/commands", ""); string(body) != "403 missing right control on the requested resource" {
			t.Errorf("403 body %q", body)
		}
		// Dot segments never reach the upstream as another device.
		if status, _ := x.send(t, lamp.Key, http.MethodGet, "/devices/d1/../d2/state", ""); status != http.StatusNotFound {
			t.Errorf("dot segments: %d, want 404", status)
		}
		if status, _ := x.send(t, lamp.Key, http.MethodGet, "/elsewhere", ""); status != http.StatusNotFound {
			t.Errorf("unrouted path: %d, want 404", status)
		}

		// A team with control on every device: the member controls d2 on
		// its very next request, and not after leaving.
		ops := x.mkTeam(t, map[string]any{"name": "operators", "grants": []any{exGrant("device:*", "control")}})
		x.admin(t, x.root, http.MethodPut, "/workspaces/acme/teams/"+ops+"/members/"+lamp.ID, nil, http.StatusNoContent)
		x.want(t, http.StatusOK, lamp, http.MethodPost, "/devices/d2/commands")
		x.want(t, http.StatusOK, lamp, http.MethodPost, "/devices/d1/commands")
		x.want(t, http.StatusForbidden, lamp, http.MethodGet, "/devices/d2/state") // control is not read
		x.admin(t, x.root, http.MethodDelete, "/workspaces/acme/teams/"+ops+"/members/"+lamp.ID, nil, http.StatusNoContent)
		x.want(t, http.StatusForbidden, lamp, http.MethodPost, "/devices/d2/commands")
		x.want(t, http.StatusOK, lamp, http.MethodGet, "/devices/d1/state")

		// A team permission opens rules.manage for every member; deleting
		// the team closes it for all of them at once.
		heater := x.mkUser(t, "heater-app", "api_user", nil)
		outsider := x.mkUser(t, "outsider", "api_user", nil)
		for _, u := range []exUser{lamp, heater, outsider} {
			x.want(t, http.StatusForbidden, u, http.MethodGet, "/rules")
		}
		auto := x.mkTeam(t, map[string]any{"name": "automation", "permissions": []string{"rules.manage"}})
		for _, u := range []exUser{lamp, heater} {
			x.admin(t, x.root, http.MethodPut, "/workspaces/acme/teams/"+auto+"/members/"+u.ID, nil, http.StatusNoContent)
		}
		for _, u := range []exUser{lamp, heater} {
			x.want(t, http.StatusOK, u, http.MethodGet, "/rules")
			x.want(t, http.StatusOK, u, http.MethodPost, "/rules/night-mode")
		}
		x.want(t, http.StatusForbidden, outsider, http.MethodGet, "/rules")
		x.admin(t, x.root, http.MethodDelete, "/workspaces/acme/teams/"+auto, nil, http.StatusNoContent)
		for _, u := range []exUser{lamp, heater} {
			x.want(t, http.StatusForbidden, u, http.MethodGet, "/rules")
		}
	})
}

func TestE2EEvents(t *testing.T) {
	forEachExStore(t, "events", func(t *testing.T, x *exEnv) {
		alice := x.mkUser(t, "alice", "api_basic", nil)
		bob := x.mkUser(t, "bob", "api_basic", nil)
		cloud := x.mkUser(t, "cloud", "api_business", nil)
		station := x.mkUser(t, "station", "api_user", nil)

		// api_basic: its own data, by username or id; nobody else's.
		for _, owner := range []string{"alice", alice.ID} {
			x.want(t, http.StatusOK, alice, http.MethodPost, "/events/"+owner+"/e1")
			x.want(t, http.StatusOK, alice, http.MethodGet, "/events/"+owner)
			x.want(t, http.StatusOK, alice, http.MethodDelete, "/events/"+owner+"/e1")
		}
		for _, owner := range []string{"bob", bob.ID} {
			x.want(t, http.StatusForbidden, alice, http.MethodPost, "/events/"+owner+"/e1")
			x.want(t, http.StatusForbidden, alice, http.MethodGet, "/events/"+owner)
			x.want(t, http.StatusForbidden, alice, http.MethodDelete, "/events/"+owner+"/e1")
		}
		x.want(t, http.StatusOK, bob, http.MethodPut, "/events/bob/e2")
		x.want(t, http.StatusOK, alice, http.MethodGet, "/processed/alice/latest")
		x.want(t, http.StatusForbidden, alice, http.MethodGet, "/processed/bob/latest")
		// A path that cleaning turns into alice's is not served.
		if status, _ := x.send(t, alice.Key, http.MethodPost, "/events/bob/../alice/e1", ""); status != http.StatusNotFound {
			t.Errorf("dot segments: %d, want 404", status)
		}
		if status, _ := x.send(t, alice.Key, http.MethodOptions, "/events/alice", ""); status != http.StatusMethodNotAllowed {
			t.Errorf("OPTIONS: %d, want 405", status)
		}

		// api_business: everyone's data.
		for _, owner := range []string{"alice", "bob", bob.ID} {
			x.want(t, http.StatusOK, cloud, http.MethodGet, "/events/"+owner)
			x.want(t, http.StatusOK, cloud, http.MethodPost, "/events/"+owner+"/e3")
			x.want(t, http.StatusOK, cloud, http.MethodGet, "/processed/"+owner)
		}

		// api_user: no event rights at all, not even on its own name.
		for _, owner := range []string{"alice", "bob", "station"} {
			x.want(t, http.StatusForbidden, station, http.MethodGet, "/events/"+owner)
		}

		// Self-registration: an app's api_registration key makes api_basic
		// users with their first key, and nothing else.
		signup := x.mkUser(t, "signup-app", "api_registration", nil)
		var carol exUser
		body := x.admin(t, signup.Key, http.MethodPost, "/workspaces/acme/users",
			map[string]any{"username": "carol", "kind": "api", "role": "api_basic", "issue_key": true}, http.StatusCreated)
		if err := json.Unmarshal(body, &carol); err != nil || carol.Key == "" {
			t.Fatalf("registered user: %v %s", err, body)
		}
		x.want(t, http.StatusOK, carol, http.MethodPost, "/events/carol/first")
		x.want(t, http.StatusForbidden, carol, http.MethodGet, "/events/alice")
		x.want(t, http.StatusOK, cloud, http.MethodGet, "/events/carol")
		x.admin(t, signup.Key, http.MethodPost, "/workspaces/acme/users",
			map[string]any{"username": "dave", "kind": "api", "role": "api_user", "issue_key": true}, http.StatusForbidden)
		x.want(t, http.StatusForbidden, signup, http.MethodGet, "/events/carol")
	})
}

func TestE2EProjects(t *testing.T) {
	forEachExStore(t, "projects", func(t *testing.T, x *exEnv) {
		surveyor := x.mkUser(t, "surveyor", "api_user", map[string]any{"grants": []any{
			exGrant("project:p1", "access", "records.add", "photo.capture"),
			exGrant("project:p2", "records.add"), // a privilege without access
		}})
		x.want(t, http.StatusOK, surveyor, http.MethodGet, "/projects/p1")
		x.want(t, http.StatusOK, surveyor, http.MethodGet, "/projects/p1/records/r1")
		x.want(t, http.StatusOK, surveyor, http.MethodPost, "/projects/p1/records")
		x.want(t, http.StatusOK, surveyor, http.MethodPost, "/projects/p1/records/r1/photo")
		x.want(t, http.StatusForbidden, surveyor, http.MethodPost, "/projects/p1/records/r1/signature")
		x.want(t, http.StatusForbidden, surveyor, http.MethodPatch, "/projects/p1/records/r1")
		x.want(t, http.StatusForbidden, surveyor, http.MethodDelete, "/projects/p1/records/r1")
		x.want(t, http.StatusForbidden, surveyor, http.MethodPost, "/projects/p1/records/r1/trash")
		x.want(t, http.StatusForbidden, surveyor, http.MethodGet, "/projects/p1/records/r1/card/preview")
		x.want(t, http.StatusForbidden, surveyor, http.MethodPost, "/projects/p2/records")
		x.want(t, http.StatusForbidden, surveyor, http.MethodGet, "/projects/p3")
		if _, body := x.send(t, surveyor.Key, http.MethodPost, "/projects/p1/records/r1/card/print", ""); string(body) != "403 missing right card.print on the requested resource" {
			t.Errorf("403 body %q", body)
		}
		if status, _ := x.send(t, surveyor.Key, http.MethodPost, "/projects/p1/unknown", ""); status != http.StatusNotFound {
			t.Errorf("unmapped project route: %d, want 404", status)
		}

		// A team previews and prints cards in every project.
		printers := x.mkTeam(t, map[string]any{"name": "printers", "grants": []any{exGrant("project:*", "access", "card.preview", "card.print")}})
		x.admin(t, x.root, http.MethodPut, "/workspaces/acme/teams/"+printers+"/members/"+surveyor.ID, nil, http.StatusNoContent)
		x.want(t, http.StatusOK, surveyor, http.MethodGet, "/projects/p1/records/r1/card/preview")
		x.want(t, http.StatusOK, surveyor, http.MethodPost, "/projects/p3/records/r9/card/print")
		x.want(t, http.StatusForbidden, surveyor, http.MethodPost, "/projects/p3/records/r9/photo")
	})
}

// exMessage is an API message as the admin API lists it.
type exMessage struct {
	ID            string  `json:"id"`
	UserID        string  `json:"user_id"`
	KeyID         string  `json:"key_id"`
	Time          string  `json:"time"`
	Method        string  `json:"method"`
	Path          string  `json:"path"`
	Status        int     `json:"status"`
	DurationMS    float64 `json:"duration_ms"`
	BytesIn       int64   `json:"bytes_in"`
	BytesOut      int64   `json:"bytes_out"`
	ClientIP      string  `json:"client_ip"`
	Body          string  `json:"body"`
	BodyTruncated bool    `json:"body_truncated"`
}

// messages lists every message key may see with the query q (all pages).
func (x *exEnv) messages(t *testing.T, key string, q url.Values) []exMessage {
	t.Helper()
	var all []exMessage
	q = exCloneValues(q)
	q.Set("limit", "500")
	for {
		var page struct {
			Items      []exMessage `json:"items"`
			NextCursor string      `json:"next_cursor"`
		}
		body := x.admin(t, key, http.MethodGet, "/workspaces/acme/messages?"+q.Encode(), nil, http.StatusOK)
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Items...)
		if page.NextCursor == "" {
			return all
		}
		q.Set("cursor", page.NextCursor)
	}
}

func exCloneValues(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// counterValue reads a counter of the message metrics.
func exCounter(t *testing.T, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// adminMetric reads metric name from Caddy's admin endpoint /metrics.
func (x *exEnv) adminMetric(t *testing.T, name string) (float64, bool) {
	t.Helper()
	res, err := http.Get("http://localhost:" + strconv.Itoa(x.adminPort) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return v, true
		}
	}
	return 0, false
}

// poll calls cond until it holds or within has passed.
func exPoll(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestE2EListeners(t *testing.T) {
	forEachExStore(t, "listeners", func(t *testing.T, x *exEnv) {
		xu := x.mkUser(t, "x-station", "api_user", nil)
		yu := x.mkUser(t, "y-station", "api_user", nil)
		boss := x.mkUser(t, "boss", "admin", nil)

		long := strings.Repeat("é", 3000) // 6000 bytes; 4KiB falls inside a character
		calls := []struct {
			u            exUser
			method, path string
			body         string
		}{
			{xu, http.MethodPost, "/listeners/orders", `{"order":1}`},
			{xu, http.MethodGet, "/listeners/orders/1", ""},
			{yu, http.MethodPost, "/listeners/uploads", long},
		}
		for _, c := range calls {
			if status, body := x.send(t, c.u.Key, c.method, c.path, c.body); status != http.StatusOK {
				t.Fatalf("%s %s %s: %d %s", c.u.Username, c.method, c.path, status, body)
			}
		}
		// A denied call is not a message.
		if status, _ := x.send(t, boss.Key, http.MethodPost, "/listeners/orders", `{}`); status != http.StatusOK {
			t.Fatalf("admin calling a listener: %d", status)
		}
		viewer := x.mkUser(t, "viewer", "viewer", nil)
		if status, _ := x.send(t, viewer.Key, http.MethodPost, "/listeners/orders", `{}`); status != http.StatusForbidden {
			t.Fatalf("viewer calling a listener: %d", status)
		}

		// Writes are asynchronous: wait until all of them are listed.
		exPoll(t, "messages listed", 10*time.Second, func() bool {
			return len(x.messages(t, boss.Key, nil)) == 4
		})

		// X sees only its own messages, even when it asks for Y's.
		own := x.messages(t, xu.Key, nil)
		asked := x.messages(t, xu.Key, url.Values{"user": {yu.ID}})
		for _, ms := range [][]exMessage{own, asked} {
			if len(ms) != 2 {
				t.Fatalf("x-station sees %d messages, want its own 2: %+v", len(ms), ms)
			}
			for _, m := range ms {
				if m.UserID != xu.ID {
					t.Fatalf("x-station sees a message of %s", m.UserID)
				}
			}
		}
		// Newest first.
		get, post := own[0], own[1]
		if get.Method != "GET" || get.Path != "/listeners/orders/1" || post.Method != "POST" || post.Path != "/listeners/orders" {
			t.Fatalf("x-station's messages: %+v", own)
		}
		if post.KeyID != xu.KeyID || post.Status != http.StatusOK || post.Body != `{"order":1}` || post.BodyTruncated ||
			post.BytesIn != int64(len(`{"order":1}`)) || post.BytesOut != int64(len("hello x-station")) || post.DurationMS <= 0 {
			t.Errorf("POST message: %+v", post)
		}
		if ip := net.ParseIP(post.ClientIP); ip == nil || !ip.IsLoopback() {
			t.Errorf("client_ip %q", post.ClientIP)
		}
		if get.Body != "" || get.BytesIn != 0 {
			t.Errorf("GET message: %+v", get)
		}
		if _, err := time.Parse(time.RFC3339Nano, post.Time); err != nil {
			t.Errorf("time %q: %v", post.Time, err)
		}

		// The admin sees everyone's, and filters by user.
		ys := x.messages(t, boss.Key, url.Values{"user": {yu.ID}})
		if len(ys) != 1 || ys[0].UserID != yu.ID {
			t.Fatalf("admin filtering y-station: %+v", ys)
		}
		up := ys[0]
		// The body is cut at 4KiB, back to a whole character.
		if !up.BodyTruncated || up.BytesIn != int64(len(long)) || len(up.Body) != 4096 || up.Body != long[:4096] {
			t.Errorf("long body: truncated %v, bytes_in %d, kept %d bytes", up.BodyTruncated, up.BytesIn, len(up.Body))
		}
		if all := x.messages(t, boss.Key, url.Values{"user": {xu.ID}}); len(all) != 2 {
			t.Errorf("admin filtering x-station: %d messages", len(all))
		}

		// A burst of 10,000 calls by one user, 8 at a time: none is lost
		// when the store keeps up.
		burst := x.mkUser(t, "burst", "api_user", nil)
		recorded0, dropped0 := exCounter(t, messagesRecorded), exCounter(t, messagesDropped)
		const n, workers = 10000, 8
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers, DisableCompression: true}}
		defer client.CloseIdleConnections()
		var next, failed atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= n {
					req, _ := http.NewRequest(http.MethodPost, x.base+"/listeners/burst", strings.NewReader(`{"reading":21.5}`))
					req.Header.Set("Authorization", "Bearer "+burst.Key)
					res, err := client.Do(req)
					if err != nil {
						failed.Add(1)
						continue
					}
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != http.StatusOK {
						failed.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		if f := failed.Load(); f > 0 {
			t.Fatalf("%d of %d burst calls failed", f, n)
		}
		exPoll(t, "burst recorded", 60*time.Second, func() bool {
			return exCounter(t, messagesRecorded)-recorded0 >= n || exCounter(t, messagesDropped) > dropped0
		})
		if d := exCounter(t, messagesDropped) - dropped0; d != 0 {
			t.Fatalf("%v burst messages dropped", d)
		}
		if got := len(x.messages(t, boss.Key, url.Values{"user": {burst.ID}})); got != n {
			t.Fatalf("%d burst messages listed, want %d", got, n)
		}

		// Caddy exposes the counters.
		if v, ok := x.adminMetric(t, "apiusers_messages_recorded_total"); !ok || v < n {
			t.Errorf("apiusers_messages_recorded_total on /metrics: %v %v", v, ok)
		}
		if _, ok := x.adminMetric(t, "apiusers_messages_dropped_total"); !ok {
			t.Error("apiusers_messages_dropped_total not on /metrics")
		}

		if x.redis == nil {
			return
		}
		// Redis goes away while calls are recorded: no call fails (the
		// principal is cached), and the lost messages are counted.
		x.want(t, http.StatusOK, xu, http.MethodGet, "/listeners/warm")
		dropped0 = exCounter(t, messagesDropped)
		metric0, _ := x.adminMetric(t, "apiusers_messages_dropped_total")
		x.redis.Stop()
		const lost = 20
		for i := range lost {
			if status, body := x.send(t, xu.Key, http.MethodPost, "/listeners/orders", `{"order":`+strconv.Itoa(i)+`}`); status != http.StatusOK {
				t.Fatalf("call %d with Redis down: %d %s", i, status, body)
			}
		}
		exPoll(t, "lost messages counted", 30*time.Second, func() bool {
			return exCounter(t, messagesDropped)-dropped0 >= lost
		})
		if v, ok := x.adminMetric(t, "apiusers_messages_dropped_total"); !ok || v-metric0 < lost {
			t.Errorf("apiusers_messages_dropped_total on /metrics went from %v to %v, want +%d", metric0, v, lost)
		}
	})
}
