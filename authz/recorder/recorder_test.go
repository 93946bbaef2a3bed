package recorder_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/recorder"
)

// fakeMessages is a MessageStore that keeps what it is given, or fails.
type fakeMessages struct {
	mu   sync.Mutex
	msgs []authz.Message
	keep authz.Retention
	err  error
}

func (f *fakeMessages) AppendMessages(_ context.Context, msgs []authz.Message, keep authz.Retention) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.msgs = append(f.msgs, msgs...)
	f.keep = keep
	return nil
}

func (f *fakeMessages) ListMessages(context.Context, string, authz.MessageQuery) ([]authz.Message, error) {
	return nil, nil
}

func (f *fakeMessages) EraseMessages(context.Context, string, string) error { return nil }

func TestRecorderWritesAndNamesMessages(t *testing.T) {
	t.Parallel()
	st := &fakeMessages{}
	var mu sync.Mutex
	stored := 0
	keep := authz.Retention{MaxPerUser: 7, MaxAge: time.Hour}
	r := recorder.New(st, recorder.Config{Keep: keep, OnBatch: func(n int, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			stored += n
		}
	}})
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	r.Record(authz.Message{Workspace: "acme", UserID: "usr_1", Time: at})
	r.Record(authz.Message{ID: authz.NewMessageID(at), Workspace: "acme", UserID: "usr_1", Time: at})
	r.Close(context.Background())

	if len(st.msgs) != 2 || stored != 2 {
		t.Fatalf("stored %d messages, OnBatch counted %d; want 2", len(st.msgs), stored)
	}
	if st.keep != keep {
		t.Errorf("retention %+v, want %+v", st.keep, keep)
	}
	for _, m := range st.msgs {
		if !strings.HasPrefix(m.ID, "msg_") || m.Validate() != nil {
			t.Errorf("message id %q", m.ID)
		}
	}
	if st.msgs[0].ID[:14] != st.msgs[1].ID[:14] {
		t.Errorf("ids %s and %s do not share the time of the message", st.msgs[0].ID, st.msgs[1].ID)
	}
	if r.Dropped() != 0 {
		t.Errorf("dropped %d", r.Dropped())
	}
}

func TestRecorderDropsAndCounts(t *testing.T) {
	t.Parallel()
	st := &fakeMessages{err: errors.New("store down")}
	var mu sync.Mutex
	dropped, failed := 0, 0
	r := recorder.New(st, recorder.Config{
		OnDrop: func(n int) { mu.Lock(); dropped += n; mu.Unlock() },
		OnBatch: func(n int, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed += n
			}
		},
	})
	for range 3 {
		r.Record(authz.Message{Workspace: "acme", UserID: "usr_1", Time: time.Now()})
	}
	r.Close(context.Background())
	r.Record(authz.Message{Workspace: "acme", UserID: "usr_1", Time: time.Now()}) // after Close
	if r.Dropped() != 4 || dropped != 4 || failed != 3 {
		t.Fatalf("Dropped() = %d, OnDrop counted %d, OnBatch failed %d; want 4, 4, 3", r.Dropped(), dropped, failed)
	}
}

// sweepingMessages is a fakeMessages that is also a MessageSweeper: it
// notes each sweep's bound and answers with the counts in results (then
// 0), failing while sweepErr is set.
type sweepingMessages struct {
	fakeMessages
	sweeps   chan time.Time
	results  []int
	sweepErr error
}

func (s *sweepingMessages) SweepMessages(_ context.Context, before time.Time, limit int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweeps <- before
	if s.sweepErr != nil {
		return 0, s.sweepErr
	}
	n := 0
	if len(s.results) > 0 {
		n, s.results = min(s.results[0], limit), s.results[1:]
	}
	return n, nil
}

// With an age bound, the recorder sweeps every store-wide at start and then
// every SweepEvery, calling again while a call deleted a full chunk; it
// reports each sweep, keeps sweeping after a failure, and stops on Close.
func TestRecorderSweeps(t *testing.T) {
	t.Parallel()
	st := &sweepingMessages{sweeps: make(chan time.Time, 100), results: []int{10000, 10000, 7}}
	type sweep struct {
		n   int
		err error
	}
	done := make(chan sweep, 100)
	rec := recorder.New(st, recorder.Config{
		Keep:       authz.Retention{MaxAge: time.Hour},
		SweepEvery: 20 * time.Millisecond,
		OnSweep:    func(n int, err error) { done <- sweep{n, err} },
	})
	next := func() sweep {
		t.Helper()
		select {
		case s := <-done:
			return s
		case <-time.After(10 * time.Second):
			t.Fatal("no sweep")
			return sweep{}
		}
	}
	start := time.Now()
	if s := next(); s.n != 20007 || s.err != nil {
		t.Fatalf("first sweep: %+v, want 20007 messages in three calls", s)
	}
	lo, hi := start.Add(-time.Hour-time.Second), time.Now().Add(-time.Hour+time.Second)
	for range 3 {
		if before := <-st.sweeps; before.Before(lo) || before.After(hi) {
			t.Fatalf("swept before %v, want about an hour ago (%v to %v)", before, lo, hi)
		}
	}
	st.mu.Lock()
	st.sweepErr = errors.New("connection refused")
	st.mu.Unlock()
	for {
		if s := next(); s.err != nil {
			break
		}
	}
	st.mu.Lock()
	st.sweepErr = nil
	st.mu.Unlock()
	for {
		if s := next(); s.err == nil {
			break
		}
	}
	rec.Close(context.Background())
	for len(st.sweeps) > 0 {
		<-st.sweeps
	}
	time.Sleep(60 * time.Millisecond)
	if n := len(st.sweeps); n != 0 {
		t.Fatalf("%d sweeps after Close", n)
	}

	// Without an age bound, or with a store that cannot sweep, nothing runs.
	st2 := &sweepingMessages{sweeps: make(chan time.Time, 1)}
	recorder.New(st2, recorder.Config{SweepEvery: time.Millisecond}).Close(context.Background())
	if len(st2.sweeps) != 0 {
		t.Fatal("swept without an age bound")
	}
}
