package authz

import (
	"errors"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Service is the domain: it authenticates keys for the gateway and carries
// out admin operations with the who-may-manage-whom rules. It is safe for
// concurrent use.
type Service struct {
	store  Store
	signer *Signer
	cache  *Cache
	now    func() time.Time
	loads  singleflight.Group
	notify func(Change)
	people PeopleConfig
	// signIns throttles failed sign-ins.
	signIns *signInThrottle

	cursorKey    []byte // the MAC secret of list cursors (page.go)
	observeStore func(op string, d time.Duration)

	toucher     Toucher    // writes last_used_at (the store, or updateToucher)
	touches     chan Touch // last_used_at updates (see lastused.go)
	touchesDone chan struct{}
	touchMu     sync.RWMutex
	touchClosed bool

	// indexed holds the workspaces whose user index is known complete
	// (see userindex.go).
	indexed sync.Map
}

// Config configures a Service.
type Config struct {
	Store  Store
	Signer *Signer
	Cache  *Cache
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Notify, when set, is called after every committed mutation with what
	// changed, after the local cache was invalidated (fleet-wide
	// invalidation hooks in here).
	Notify func(Change)
	// People configures accounts, sessions and passwords (defaults: see
	// PeopleConfig).
	People PeopleConfig
	// ObserveStore, when set, is told the duration of each store round
	// trip the gateway waits for, by operation ("load_principal"), for
	// metrics. Default: none.
	ObserveStore func(op string, d time.Duration)
}

// Change says what a committed mutation touched, for cache invalidation.
type Change struct {
	// Origin names the instance that made the change, so it can skip its
	// own echo on a fleet-wide feed ("" when unknown).
	Origin    string
	Workspace string
	// Users whose principal changed. Empty with Workspace set means the whole
	// workspace: a service sends a change of more than maxChangeUsers so,
	// and one of no users not at all.
	Users []string
	// At is when the change was committed, as its instance's clock says
	// (zero when unknown): a fleet's receivers measure their lag with it.
	At time.Time
}

// NewService makes a Service.
func NewService(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Signer == nil || cfg.Cache == nil {
		return nil, errors.New("service needs a store, a signer and a cache")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := cfg.People.defaults(cfg.Store); err != nil {
		return nil, err
	}
	s := &Service{store: cfg.Store, signer: cfg.Signer, cache: cfg.Cache, now: cfg.Now, notify: cfg.Notify,
		people: cfg.People, cursorKey: cfg.Signer.derive("apiusers list cursors"), observeStore: cfg.ObserveStore}
	if s.toucher, _ = cfg.Store.(Toucher); s.toucher == nil {
		s.toucher = updateToucher{cfg.Store}
	}
	var err error
	if s.signIns, err = newSignInThrottle(cfg.Store, cfg.Now); err != nil {
		return nil, err
	}
	s.startTouches()
	return s, nil
}

// Signer returns the service's signer.
func (s *Service) Signer() *Signer { return s.signer }

// People returns the service's people settings.
func (s *Service) People() PeopleConfig { return s.people }

// Cache returns the service's cache.
func (s *Service) Cache() *Cache { return s.cache }

// Store returns the service's store.
func (s *Service) Store() Store { return s.store }

// changed invalidates the local cache and tells the fleet.
func (s *Service) changed(c Change) {
	switch {
	case len(c.Users) == 0:
		return // nobody's principal changed (a team without members)
	case len(c.Users) > maxChangeUsers:
		c.Users = nil // the whole workspace
	}
	s.Apply(c)
	if s.notify != nil {
		s.notify(c)
	}
}

// maxChangeUsers is the most users a change names; a change of more (a
// team of many devices changed) drops the workspace's principals instead,
// rather than sending every instance a list it would walk one id at a
// time.
const maxChangeUsers = 1000

// Apply applies a change received from another instance to the local cache.
func (s *Service) Apply(c Change) {
	if len(c.Users) == 0 {
		s.cache.InvalidateWorkspace(c.Workspace)
	}
	for _, u := range c.Users {
		s.cache.InvalidateUser(u)
	}
}
