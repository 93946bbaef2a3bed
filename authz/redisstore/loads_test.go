package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/redisstore/redistest"
)

// gateHook holds back the first round trips that carry script runs
// (commands or pipelines), the k-th until gates[k] is closed, and records,
// per round trip that carries script runs, how many it carries.
type gateHook struct {
	mu    sync.Mutex
	gates []chan struct{}
	runs  []int
	held  chan int // the runs of each round trip held back, as it is
}

func newGateHook(gates ...chan struct{}) *gateHook {
	return &gateHook{gates: gates, held: make(chan int, len(gates))}
}

func isScript(c redis.Cmder) bool { return c.Name() == "evalsha" || c.Name() == "eval" }

func (h *gateHook) sent(runs int) {
	h.mu.Lock()
	h.runs = append(h.runs, runs)
	var gate chan struct{}
	if len(h.gates) > 0 {
		gate, h.gates = h.gates[0], h.gates[1:]
	}
	h.mu.Unlock()
	if gate != nil {
		h.held <- runs
		<-gate
	}
}

func (h *gateHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *gateHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if isScript(cmd) {
			h.sent(1)
		}
		return next(ctx, cmd)
	}
}

func (h *gateHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		n := 0
		for _, c := range cmds {
			if isScript(c) {
				n++
			}
		}
		if n > 0 {
			h.sent(n)
		}
		return next(ctx, cmds)
	}
}

func (h *gateHook) take() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.runs
	h.runs = nil
	return r
}

// seedUsers writes n users (usr_0…) with a key each, user i in i%3 of
// teams tm_1, tm_2.
func seedUsers(t *testing.T, s *Store, n int) {
	t.Helper()
	mustUpdate(t, s, "acme", func(tx authz.Tx) error {
		errs := []error{
			tx.Put(teams, "tm_1", []byte(`{"id":"tm_1"}`)),
			tx.Put(teams, "tm_2", []byte(`{"id":"tm_2"}`)),
		}
		for i := range n {
			id := fmt.Sprintf("usr_%d", i)
			u, _ := json.Marshal(authz.User{ID: id, Workspace: "acme", Username: id, Teams: []string{"tm_1", "tm_2"}[:i%3]})
			errs = append(errs, tx.Put(users, id, u),
				tx.Put(authz.KeysCollection("acme", id), "key_"+id, []byte(`{"id":"key_`+id+`"}`)))
		}
		return errors.Join(errs...)
	})
}

// checkLoaded checks that rec is user i of seedUsers.
func checkLoaded(i int, rec *authz.PrincipalRecord, err error) error {
	id := fmt.Sprintf("usr_%d", i)
	switch {
	case err != nil:
		return fmt.Errorf("loading %s: %v", id, err)
	case !strings.Contains(string(rec.User), `"id":"`+id+`"`):
		return fmt.Errorf("loading %s: got user %s", id, rec.User)
	case len(rec.Keys) != 1 || string(rec.Keys[0]) != `{"id":"key_`+id+`"}`:
		return fmt.Errorf("loading %s: got keys %q", id, rec.Keys)
	case len(rec.Teams) != i%3:
		return fmt.Errorf("loading %s: got %d teams, want %d", id, len(rec.Teams), i%3)
	}
	return nil
}

// Loads that come while the senders are busy go out together, each
// answered with its own record; a pipeline the server answers NOSCRIPT
// (after a SCRIPT FLUSH) is sent again with EVAL.
func TestLoadPrincipalBatched(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL()})
	const n = 40
	seedUsers(t, s, n)
	ctx := context.Background()
	if _, err := s.LoadPrincipal(ctx, "acme", "usr_0"); err != nil {
		t.Fatal(err) // the script is known
	}
	for _, flush := range []bool{false, true} {
		// The senders' first loads are held back, and then the first
		// pipeline of those that queued meanwhile; with flush, the server
		// forgets the script before that pipeline goes.
		singles, batch := make(chan struct{}), make(chan struct{})
		gates := []chan struct{}{batch}
		for range loadSenders {
			gates = append([]chan struct{}{singles}, gates...)
		}
		h := newGateHook(gates...)
		s.Client().AddHook(h)
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				rec, err := s.LoadPrincipal(ctx, "acme", fmt.Sprintf("usr_%d", i))
				errs <- checkLoaded(i, rec, err)
			})
			if i < loadSenders {
				<-h.held // every sender is busy with a load held back
			}
		}
		time.Sleep(100 * time.Millisecond) // the other loads queue up
		close(singles)
		for range loadSenders { // only they can finish: the pipeline is held
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		<-h.held // the first pipeline (or, should a sender have taken one load alone, that load)
		if flush {
			if err := s.Client().ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		close(batch)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		sent := h.take()
		// Every load is one EVALSHA (and, for the loads the server got
		// after the flush, one EVAL too: at least those held back), and
		// fewer round trips than loads carry them.
		lo, hi := n, n
		if flush {
			lo, hi = n+1, 2*n-loadSenders
		}
		runs, batched := 0, false
		for _, k := range sent {
			runs += k
			batched = batched || k > 1
		}
		if !batched || runs < lo || runs > hi || len(sent) >= n {
			t.Fatalf("flush %v: script runs per round trip %v (%d runs), want %d to %d runs, batched in fewer than %d round trips", flush, sent, runs, lo, hi, n)
		}
	}
}

// Closing the store while loads wait ends each of them: with its record or
// an error wrapping authz.ErrUnavailable, never a hang.
func TestLoadPrincipalClosed(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL()})
	const n = 20
	seedUsers(t, s, n)
	ctx := context.Background()
	if _, err := s.LoadPrincipal(ctx, "acme", "usr_0"); err != nil {
		t.Fatal(err)
	}
	open := make(chan struct{})
	h := newGateHook(open, open)
	s.Client().AddHook(h)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			rec, err := s.LoadPrincipal(ctx, "acme", fmt.Sprintf("usr_%d", i))
			switch {
			case errors.Is(err, authz.ErrUnavailable):
				errs <- nil
			case err != nil:
				errs <- fmt.Errorf("usr_%d after Close: %v, want ErrUnavailable", i, err)
			default:
				errs <- checkLoaded(i, rec, nil)
			}
		}()
		if i < loadSenders {
			<-h.held
		}
	}
	time.Sleep(50 * time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	time.Sleep(50 * time.Millisecond)
	close(open)
	timeout := time.After(10 * time.Second)
	for range n {
		select {
		case err := <-errs:
			if err != nil {
				t.Error(err)
			}
		case <-timeout:
			t.Fatal("loads still waiting 10 s after Close")
		}
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadPrincipal(ctx, "acme", "usr_1"); !errors.Is(err, authz.ErrUnavailable) {
		t.Fatalf("LoadPrincipal after Close: %v, want ErrUnavailable", err)
	}
}

// inFlightHook counts the round trips carrying script runs that are in
// flight at once, and can panic in the first one it sees.
type inFlightHook struct {
	mu         sync.Mutex
	now, most  int
	panicFirst bool
}

func (h *inFlightHook) enter() {
	h.mu.Lock()
	h.now++
	h.most = max(h.most, h.now)
	p := h.panicFirst
	h.panicFirst = false
	h.mu.Unlock()
	if p {
		h.leave()
		panic("a hook that fails")
	}
	time.Sleep(time.Millisecond) // long enough for others to come meanwhile
}

func (h *inFlightHook) leave() {
	h.mu.Lock()
	h.now--
	h.mu.Unlock()
}

func (h *inFlightHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *inFlightHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !isScript(cmd) {
			return next(ctx, cmd)
		}
		h.enter()
		defer h.leave()
		return next(ctx, cmd)
	}
}

func (h *inFlightHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if !slices.ContainsFunc(cmds, isScript) {
			return next(ctx, cmds)
		}
		h.enter()
		defer h.leave()
		return next(ctx, cmds)
	}
}

// However loads come (one alone, or a hundred at once), no more than
// loadSenders round trips of them are in flight; a load that panics (here
// in a client hook) gives its turn back, so the loads after it still go.
func TestLoadPrincipalInFlight(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL()})
	const n = 100
	seedUsers(t, s, n)
	ctx := context.Background()
	h := &inFlightHook{panicFirst: true}
	s.Client().AddHook(h)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the hook's panic did not reach the load")
			}
		}()
		_, _ = s.LoadPrincipal(ctx, "acme", "usr_0")
	}()
	for round := range 3 {
		errs := make(chan error, n)
		for i := range n {
			go func() {
				rec, err := s.LoadPrincipal(ctx, "acme", fmt.Sprintf("usr_%d", i))
				errs <- checkLoaded(i, rec, err)
			}()
		}
		timeout := time.After(10 * time.Second)
		for range n {
			select {
			case err := <-errs:
				if err != nil {
					t.Fatal(err)
				}
			case <-timeout:
				t.Fatalf("round %d: loads still waiting after 10 s", round)
			}
		}
	}
	if h.most > loadSenders {
		t.Errorf("%d round trips of loads in flight at once, want at most %d", h.most, loadSenders)
	}
	if h.most < loadSenders {
		t.Errorf("at most %d round trips of loads in flight at once under %d concurrent loads, want %d", h.most, n, loadSenders)
	}
}
