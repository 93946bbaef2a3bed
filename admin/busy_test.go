package admin

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/password"
)

// TestSignInBusyHashing: when the hashing budget is spent, sign-ins are
// refused with 503, Retry-After and a detail that blames the hashing, not
// the store; a flood of them is one log line (with its count), not one
// line each, and no password is in it.
func TestSignInBusyHashing(t *testing.T) {
	// A budget that one hash overdraws for minutes: every sign-in after
	// the first is refused at once.
	hasher, err := password.New(password.Config{Budget: 1e-6, Burst: time.Nanosecond, MaxWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := authz.NewSigner(authz.SignerConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	cache, err := authz.NewCache(authz.CacheConfig{MaxPrincipals: 100, MaxKeys: 100})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := authz.NewService(authz.Config{Store: openStore(t), Signer: signer, Cache: cache,
		People: authz.PeopleConfig{Hasher: hasher}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Bootstrap(context.Background(), "ws", "root"); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	e := &testEnv{t: t, h: New(svc, Options{Logger: zap.New(core), RetryAfter: 7 * time.Second}), svc: svc}

	const pw = "not the password, surely"
	signIn := func(i int) *problem {
		w := e.do(req{method: "POST", path: "/login", body: `{"email":"flood` + strconv.Itoa(i) + `@example.com","password":"` + pw + `"}`})
		if w.Code == http.StatusUnauthorized {
			return nil // the one hash the budget allowed
		}
		p := problemOf(t, w, http.StatusServiceUnavailable)
		if got := w.Header().Get("Retry-After"); got != "7" {
			t.Errorf("Retry-After %q, want 7", got)
		}
		return &p
	}
	refused := 0
	for i := range 20 {
		if p := signIn(i); p != nil {
			refused++
			if p.Detail != detailBusy {
				t.Errorf("detail %q, want %q", p.Detail, detailBusy)
			}
		}
	}
	if refused < 19 {
		t.Fatalf("%d of 20 sign-ins refused, want 19 or 20 (the budget allows at most one hash)", refused)
	}
	busy := logs.FilterMessageSnippet("password hashing is busy").All()
	if len(busy) != 1 || busy[0].Level != zap.WarnLevel {
		t.Fatalf("logged %+v, want one warning for the refused sign-ins", logs.All())
	}
	if n, _ := busy[0].ContextMap()["refused"].(int64); n != 1 {
		t.Errorf("the first line counts %d refusals, want 1 (itself)", n)
	}
	for _, l := range logs.All() {
		if l.Level > zap.DebugLevel && l.Message != busy[0].Message {
			t.Errorf("unexpected log line %+v", l)
		}
		for k, v := range l.ContextMap() {
			if s, ok := v.(string); ok && s == pw {
				t.Errorf("log line %q carries the password in %s", l.Message, k)
			}
		}
	}

	// A minute on, the next refusal logs the ones since the last line.
	e.h.busy.mu.Lock()
	e.h.busy.last = e.h.busy.last.Add(-busyLogEvery)
	e.h.busy.mu.Unlock()
	if p := signIn(100); p == nil {
		t.Fatal("a sign-in got through an overdrawn budget")
	}
	busy = logs.FilterMessageSnippet("password hashing is busy").All()
	if len(busy) != 2 {
		t.Fatalf("%d busy lines after a minute, want 2", len(busy))
	}
	if n, _ := busy[1].ContextMap()["refused"].(int64); n != int64(refused) {
		t.Errorf("the second line counts %d refusals, want %d", n, refused)
	}
}
