package module

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/apiusers/apiusers/internal/apitest"
)

// End-to-end tests of the devices, events, listeners and projects examples:
// a real Caddy (in process) loads each example's Caddyfile, on the file
// store and on a real redis-server, with a real upstream (forEachStore).

func TestE2EDevices(t *testing.T) {
	forEachStore(t, e2eSite{example: "devices"}, func(t *testing.T, x *e2e) {
		lamp := x.MkUser(t, x.Root, "acme", "lamp-app", "api_user", map[string]any{"grants": []any{apitest.Grant("device:d1", "read")}})
		x.Want(t, http.StatusOK, lamp, http.MethodGet, "/devices/d1")
		x.Want(t, http.StatusOK, lamp, http.MethodGet, "/devices/d1/state")
		x.Want(t, http.StatusForbidden, lamp, http.MethodPost, "/devices/d1/commands")
		x.Want(t, http.StatusForbidden, lamp, http.MethodGet, "/devices/d2/state")
		x.Want(t, http.StatusForbidden, lamp, http.MethodPut, "/devices/d2/state")
		if _, body := x.Send(t, lamp.Key, http.MethodPost, "/devices/d1/commands", ""); string(body) != "403 missing right control on the requested resource" {
			t.Errorf("403 body %q", body)
		}
		// Dot segments never reach the upstream as another device.
		if status, _ := x.Send(t, lamp.Key, http.MethodGet, "/devices/d1/../d2/state", ""); status != http.StatusNotFound {
			t.Errorf("dot segments: %d, want 404", status)
		}
		if status, _ := x.Send(t, lamp.Key, http.MethodGet, "/elsewhere", ""); status != http.StatusNotFound {
			t.Errorf("unrouted path: %d, want 404", status)
		}

		// A team with control on every device: the member controls d2 on
		// its very next request, and not after leaving.
		ops := x.MkTeam(t, x.Root, "acme", map[string]any{"name": "operators", "grants": []any{apitest.Grant("device:*", "control")}})
		x.Admin(t, x.Root, http.MethodPut, "/workspaces/acme/teams/"+ops+"/members/"+lamp.ID, nil, http.StatusNoContent)
		x.Want(t, http.StatusOK, lamp, http.MethodPost, "/devices/d2/commands")
		x.Want(t, http.StatusOK, lamp, http.MethodPost, "/devices/d1/commands")
		x.Want(t, http.StatusForbidden, lamp, http.MethodGet, "/devices/d2/state") // control is not read
		x.Admin(t, x.Root, http.MethodDelete, "/workspaces/acme/teams/"+ops+"/members/"+lamp.ID, nil, http.StatusNoContent)
		x.Want(t, http.StatusForbidden, lamp, http.MethodPost, "/devices/d2/commands")
		x.Want(t, http.StatusOK, lamp, http.MethodGet, "/devices/d1/state")

		// A team permission opens rules.manage for every member; deleting
		// the team closes it for all of them at once.
		heater := x.MkUser(t, x.Root, "acme", "heater-app", "api_user", nil)
		outsider := x.MkUser(t, x.Root, "acme", "outsider", "api_user", nil)
		for _, u := range []apitest.User{lamp, heater, outsider} {
			x.Want(t, http.StatusForbidden, u, http.MethodGet, "/rules")
		}
		auto := x.MkTeam(t, x.Root, "acme", map[string]any{"name": "automation", "permissions": []string{"rules.manage"}})
		for _, u := range []apitest.User{lamp, heater} {
			x.Admin(t, x.Root, http.MethodPut, "/workspaces/acme/teams/"+auto+"/members/"+u.ID, nil, http.StatusNoContent)
		}
		for _, u := range []apitest.User{lamp, heater} {
			x.Want(t, http.StatusOK, u, http.MethodGet, "/rules")
			x.Want(t, http.StatusOK, u, http.MethodPost, "/rules/night-mode")
		}
		x.Want(t, http.StatusForbidden, outsider, http.MethodGet, "/rules")
		x.Admin(t, x.Root, http.MethodDelete, "/workspaces/acme/teams/"+auto, nil, http.StatusNoContent)
		for _, u := range []apitest.User{lamp, heater} {
			x.Want(t, http.StatusForbidden, u, http.MethodGet, "/rules")
		}
	})
}

func TestE2EEvents(t *testing.T) {
	forEachStore(t, e2eSite{example: "events"}, func(t *testing.T, x *e2e) {
		alice := x.MkUser(t, x.Root, "acme", "alice", "api_basic", nil)
		bob := x.MkUser(t, x.Root, "acme", "bob", "api_basic", nil)
		cloud := x.MkUser(t, x.Root, "acme", "cloud", "api_business", nil)
		station := x.MkUser(t, x.Root, "acme", "station", "api_user", nil)

		// api_basic: its own data, by username or id; nobody else's.
		for _, owner := range []string{"alice", alice.ID} {
			x.Want(t, http.StatusOK, alice, http.MethodPost, "/events/"+owner+"/e1")
			x.Want(t, http.StatusOK, alice, http.MethodGet, "/events/"+owner)
			x.Want(t, http.StatusOK, alice, http.MethodDelete, "/events/"+owner+"/e1")
		}
		for _, owner := range []string{"bob", bob.ID} {
			x.Want(t, http.StatusForbidden, alice, http.MethodPost, "/events/"+owner+"/e1")
			x.Want(t, http.StatusForbidden, alice, http.MethodGet, "/events/"+owner)
			x.Want(t, http.StatusForbidden, alice, http.MethodDelete, "/events/"+owner+"/e1")
		}
		x.Want(t, http.StatusOK, bob, http.MethodPut, "/events/bob/e2")
		x.Want(t, http.StatusOK, alice, http.MethodGet, "/processed/alice/latest")
		x.Want(t, http.StatusForbidden, alice, http.MethodGet, "/processed/bob/latest")
		// A path that cleaning turns into alice's is not served.
		if status, _ := x.Send(t, alice.Key, http.MethodPost, "/events/bob/../alice/e1", ""); status != http.StatusNotFound {
			t.Errorf("dot segments: %d, want 404", status)
		}
		if status, _ := x.Send(t, alice.Key, http.MethodOptions, "/events/alice", ""); status != http.StatusMethodNotAllowed {
			t.Errorf("OPTIONS: %d, want 405", status)
		}

		// api_business: everyone's data.
		for _, owner := range []string{"alice", "bob", bob.ID} {
			x.Want(t, http.StatusOK, cloud, http.MethodGet, "/events/"+owner)
			x.Want(t, http.StatusOK, cloud, http.MethodPost, "/events/"+owner+"/e3")
			x.Want(t, http.StatusOK, cloud, http.MethodGet, "/processed/"+owner)
		}

		// api_user: no event rights at all, not even on its own name.
		for _, owner := range []string{"alice", "bob", "station"} {
			x.Want(t, http.StatusForbidden, station, http.MethodGet, "/events/"+owner)
		}

		// Self-registration: an app's api_registration key makes api_basic
		// users with their first key, and nothing else.
		signup := x.MkUser(t, x.Root, "acme", "signup-app", "api_registration", nil)
		var carol apitest.User
		body := x.Admin(t, signup.Key, http.MethodPost, "/workspaces/acme/users",
			map[string]any{"username": "carol", "kind": "api", "role": "api_basic", "issue_key": true}, http.StatusCreated)
		if err := json.Unmarshal(body, &carol); err != nil || carol.Key == "" {
			t.Fatalf("registered user: %v %s", err, body)
		}
		x.Want(t, http.StatusOK, carol, http.MethodPost, "/events/carol/first")
		x.Want(t, http.StatusForbidden, carol, http.MethodGet, "/events/alice")
		x.Want(t, http.StatusOK, cloud, http.MethodGet, "/events/carol")
		x.Admin(t, signup.Key, http.MethodPost, "/workspaces/acme/users",
			map[string]any{"username": "dave", "kind": "api", "role": "api_user", "issue_key": true}, http.StatusForbidden)
		x.Want(t, http.StatusForbidden, signup, http.MethodGet, "/events/carol")
	})
}

func TestE2EProjects(t *testing.T) {
	forEachStore(t, e2eSite{example: "projects"}, func(t *testing.T, x *e2e) {
		surveyor := x.MkUser(t, x.Root, "acme", "surveyor", "api_user", map[string]any{"grants": []any{
			apitest.Grant("project:p1", "access", "records.add", "photo.capture"),
			apitest.Grant("project:p2", "records.add"), // a privilege without access
		}})
		x.Want(t, http.StatusOK, surveyor, http.MethodGet, "/projects/p1")
		x.Want(t, http.StatusOK, surveyor, http.MethodGet, "/projects/p1/records/r1")
		x.Want(t, http.StatusOK, surveyor, http.MethodPost, "/projects/p1/records")
		x.Want(t, http.StatusOK, surveyor, http.MethodPost, "/projects/p1/records/r1/photo")
		x.Want(t, http.StatusForbidden, surveyor, http.MethodPost, "/projects/p1/records/r1/signature")
		x.Want(t, http.StatusForbidden, surveyor, http.MethodPatch, "/projects/p1/records/r1")
		x.Want(t, http.StatusForbidden, surveyor, http.MethodDelete, "/projects/p1/records/r1")
		x.Want(t, http.StatusForbidden, surveyor, http.MethodPost, "/projects/p1/records/r1/trash")
		x.Want(t, http.StatusForbidden, surveyor, http.MethodGet, "/projects/p1/records/r1/card/preview")
		x.Want(t, http.StatusForbidden, surveyor, http.MethodPost, "/projects/p2/records")
		x.Want(t, http.StatusForbidden, surveyor, http.MethodGet, "/projects/p3")
		if _, body := x.Send(t, surveyor.Key, http.MethodPost, "/projects/p1/records/r1/card/print", ""); string(body) != "403 missing right card.print on the requested resource" {
			t.Errorf("403 body %q", body)
		}
		if status, _ := x.Send(t, surveyor.Key, http.MethodPost, "/projects/p1/unknown", ""); status != http.StatusNotFound {
			t.Errorf("unmapped project route: %d, want 404", status)
		}

		// A team previews and prints cards in every project.
		printers := x.MkTeam(t, x.Root, "acme", map[string]any{"name": "printers", "grants": []any{apitest.Grant("project:*", "access", "card.preview", "card.print")}})
		x.Admin(t, x.Root, http.MethodPut, "/workspaces/acme/teams/"+printers+"/members/"+surveyor.ID, nil, http.StatusNoContent)
		x.Want(t, http.StatusOK, surveyor, http.MethodGet, "/projects/p1/records/r1/card/preview")
		x.Want(t, http.StatusOK, surveyor, http.MethodPost, "/projects/p3/records/r9/card/print")
		x.Want(t, http.StatusForbidden, surveyor, http.MethodPost, "/projects/p3/records/r9/photo")
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
func (a *e2e) messages(t *testing.T, key string, q url.Values) []exMessage {
	t.Helper()
	var all []exMessage
	q = exCloneValues(q)
	q.Set("limit", "500")
	for {
		var page struct {
			Items      []exMessage `json:"items"`
			NextCursor string      `json:"next_cursor"`
		}
		body := a.Admin(t, key, http.MethodGet, "/workspaces/acme/messages?"+q.Encode(), nil, http.StatusOK)
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
func (a *e2e) adminMetric(t *testing.T, name string) (float64, bool) {
	t.Helper()
	res, err := http.Get("http://localhost:" + strconv.Itoa(a.adminPort) + "/metrics")
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

func TestE2EListeners(t *testing.T) {
	forEachStore(t, e2eSite{example: "listeners"}, func(t *testing.T, x *e2e) {
		xu := x.MkUser(t, x.Root, "acme", "x-station", "api_user", nil)
		yu := x.MkUser(t, x.Root, "acme", "y-station", "api_user", nil)
		boss := x.MkUser(t, x.Root, "acme", "boss", "admin", nil)

		long := strings.Repeat("é", 3000) // 6000 bytes; 4KiB falls inside a character
		calls := []struct {
			u            apitest.User
			method, path string
			body         string
		}{
			{xu, http.MethodPost, "/listeners/orders", `{"order":1}`},
			{xu, http.MethodGet, "/listeners/orders/1", ""},
			{yu, http.MethodPost, "/listeners/uploads", long},
		}
		for _, c := range calls {
			if status, body := x.Send(t, c.u.Key, c.method, c.path, c.body); status != http.StatusOK {
				t.Fatalf("%s %s %s: %d %s", c.u.Username, c.method, c.path, status, body)
			}
		}
		// A denied call is not a message.
		if status, _ := x.Send(t, boss.Key, http.MethodPost, "/listeners/orders", `{}`); status != http.StatusOK {
			t.Fatalf("admin calling a listener: %d", status)
		}
		viewer := x.MkUser(t, x.Root, "acme", "viewer", "viewer", nil)
		if status, _ := x.Send(t, viewer.Key, http.MethodPost, "/listeners/orders", `{}`); status != http.StatusForbidden {
			t.Fatalf("viewer calling a listener: %d", status)
		}

		// Writes are asynchronous: wait until all of them are listed.
		apitest.Poll(t, "messages listed", 10*time.Second, func() bool {
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
		burst := x.MkUser(t, x.Root, "acme", "burst", "api_user", nil)
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
					req, _ := http.NewRequest(http.MethodPost, x.Base+"/listeners/burst", strings.NewReader(`{"reading":21.5}`))
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
		apitest.Poll(t, "burst recorded", 60*time.Second, func() bool {
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
		x.Want(t, http.StatusOK, xu, http.MethodGet, "/listeners/warm")
		dropped0 = exCounter(t, messagesDropped)
		metric0, _ := x.adminMetric(t, "apiusers_messages_dropped_total")
		x.redis.Stop()
		const lost = 20
		for i := range lost {
			if status, body := x.Send(t, xu.Key, http.MethodPost, "/listeners/orders", `{"order":`+strconv.Itoa(i)+`}`); status != http.StatusOK {
				t.Fatalf("call %d with Redis down: %d %s", i, status, body)
			}
		}
		apitest.Poll(t, "lost messages counted", 30*time.Second, func() bool {
			return exCounter(t, messagesDropped)-dropped0 >= lost
		})
		if v, ok := x.adminMetric(t, "apiusers_messages_dropped_total"); !ok || v-metric0 < lost {
			t.Errorf("apiusers_messages_dropped_total on /metrics went from %v to %v, want +%d", metric0, v, lost)
		}
	})
}
