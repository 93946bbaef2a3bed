package module

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/recorder"
)

// The app's side of recording API messages: the settings, the metrics, and
// the one recorder per store and message settings that configurations
// share across reloads.

// Message defaults and bounds.
const (
	defaultMessagesKeep   = 10000
	defaultMessagesMaxAge = 30 * 24 * time.Hour
	defaultMessagesQueue  = 65536

	// recorderCloseTimeout bounds writing what is queued when a recorder
	// is let go (the last configuration using it was unloaded).
	recorderCloseTimeout = 2 * time.Second

	// recorderErrorLogEvery spaces out the log lines of a failing store.
	recorderErrorLogEvery = 10 * time.Second
)

// appMessages is what an app instance knows about recording: the resolved
// settings, whether a route records, and the shared recorder once taken.
// The app state's mu guards it.
type appMessages struct {
	storeID string
	keep    authz.Retention
	queue   int
	logger  *zap.Logger

	wanted bool   // a route of the configuration records
	key    string // in recorders, once taken
	rec    *recorder.Recorder
}

// messageSettings applies the message defaults and checks the values.
func (a *App) messageSettings(storeID string) (*appMessages, error) {
	if a.MessagesKeep < 0 {
		return nil, errors.New("messages_keep must not be negative")
	}
	if a.MessagesMaxAge < 0 {
		return nil, errors.New("messages_max_age must not be negative")
	}
	if a.MessagesQueue < 0 {
		return nil, errors.New("messages_queue must not be negative")
	}
	m := &appMessages{
		storeID: storeID,
		keep: authz.Retention{
			MaxPerUser: a.MessagesKeep,
			MaxAge:     durationOr(a.MessagesMaxAge, defaultMessagesMaxAge),
		},
		queue:  a.MessagesQueue,
		logger: a.logger,
	}
	if m.keep.MaxPerUser == 0 {
		m.keep.MaxPerUser = defaultMessagesKeep
	}
	if m.queue == 0 {
		m.queue = defaultMessagesQueue
	}
	return m, nil
}

// wantRecorder tells the app that a route of its configuration records.
// The app takes the shared recorder when it opens the store, or at once
// when it is open already: only configurations with a record line pay for
// its queue and writer. The message metrics are registered in ctx's
// registry.
func (a *App) wantRecorder(ctx caddy.Context) error {
	m := a.messages
	if m == nil {
		return errors.New("apiusers app is not provisioned")
	}
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	st := a.state
	st.mu.Lock()
	defer st.mu.Unlock()
	m.wanted = true
	if sv := st.live.Load(); sv != nil && sv.rec == nil {
		rec, err := m.take(sv.svc)
		if err != nil {
			return err
		}
		st.live.Store(&serving{svc: sv.svc, rec: rec})
	}
	return nil
}

// take returns the message recorder of svc's store when a route records
// (nil when none does), making it if no configuration holds one yet.
// Configurations with the same store and message settings share one
// recorder, so a reload loses nothing that was queued.
func (m *appMessages) take(svc *authz.Service) (*recorder.Recorder, error) {
	if !m.wanted {
		return nil, nil
	}
	if m.rec != nil {
		return m.rec, nil
	}
	ms, ok := svc.Store().(authz.MessageStore)
	if !ok {
		return nil, errors.New("record: the store does not keep API messages")
	}
	key := m.storeID + "\x00" + strconv.Itoa(m.keep.MaxPerUser) + "\x00" + m.keep.MaxAge.String() + "\x00" + strconv.Itoa(m.queue)
	v, _, err := recorders.LoadOrNew(key, func() (caddy.Destructor, error) {
		// Hold the store for as long as the recorder writes to it. The
		// app's backend holds it already, so it is never opened here.
		if _, _, err := stores.LoadOrNew(m.storeID, func() (caddy.Destructor, error) {
			return nil, errors.New("record: the store is not open")
		}); err != nil {
			return nil, err
		}
		sr := &sharedRecorder{storeID: m.storeID, logger: m.logger}
		sr.rec = recorder.New(ms, recorder.Config{
			Queue:   m.queue,
			Keep:    m.keep,
			OnDrop:  func(n int) { messagesDropped.Add(float64(n)) },
			OnBatch: sr.batchDone,
			OnSweep: sr.sweepDone,
		})
		return sr, nil
	})
	if err != nil {
		return nil, err
	}
	m.key = key
	m.rec = v.(*sharedRecorder).rec
	return m.rec, nil
}

// release lets go of the shared recorder, if this app instance took it.
func (m *appMessages) release() {
	if m == nil || m.key == "" {
		return
	}
	_, _ = recorders.Delete(m.key)
	m.key, m.rec = "", nil
}

// recorders holds the message recorders by store and message settings.
var recorders = caddy.NewUsagePool()

// sharedRecorder is a recorder in the recorders pool.
type sharedRecorder struct {
	storeID string
	rec     *recorder.Recorder
	logger  *zap.Logger
	lastLog atomic.Int64 // unix nanoseconds of the last error logged
}

// batchDone counts a written batch, and logs a failed one (at most once
// every recorderErrorLogEvery: a store that is away fails every batch).
func (s *sharedRecorder) batchDone(n int, err error) {
	if err == nil {
		messagesRecorded.Add(float64(n))
		return
	}
	now := time.Now().UnixNano()
	last := s.lastLog.Load()
	if now-last < int64(recorderErrorLogEvery) || !s.lastLog.CompareAndSwap(last, now) {
		return
	}
	if c := s.logger.Check(zapcore.WarnLevel, "storing API messages failed; they are dropped and counted in apiusers_messages_dropped_total"); c != nil {
		c.Write(zap.Int("messages", n), zap.Error(err))
	}
}

// sweepDone logs a sweep of old messages: the number deleted at debug
// level, a failure as a warning (the next sweep tries again).
func (s *sharedRecorder) sweepDone(n int, err error) {
	if err != nil {
		if c := s.logger.Check(zapcore.WarnLevel, "deleting API messages past messages_max_age failed; the next sweep tries again"); c != nil {
			c.Write(zap.Int("deleted", n), zap.Error(err))
		}
		return
	}
	if c := s.logger.Check(zapcore.DebugLevel, "deleted API messages past messages_max_age"); c != nil {
		c.Write(zap.Int("deleted", n))
	}
}

// Destruct writes what is queued (for at most recorderCloseTimeout), stops
// the recorder and lets go of the store.
func (s *sharedRecorder) Destruct() error {
	ctx, cancel := context.WithTimeout(context.Background(), recorderCloseTimeout)
	defer cancel()
	s.rec.Close(ctx)
	_, err := stores.Delete(s.storeID)
	return err
}

// Interface guards
var _ caddy.Destructor = (*sharedRecorder)(nil)
