package authz_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiusers/apiusers/authz"
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
	st := &fakeMessages{}
	var mu sync.Mutex
	stored := 0
	keep := authz.Retention{MaxPerUser: 7, MaxAge: time.Hour}
	r := authz.NewRecorder(st, authz.RecorderConfig{Keep: keep, OnBatch: func(n int, err error) {
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
	st := &fakeMessages{err: errors.New("store down")}
	var mu sync.Mutex
	dropped, failed := 0, 0
	r := authz.NewRecorder(st, authz.RecorderConfig{
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
