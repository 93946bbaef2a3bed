package module

import (
	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/limit"
)

// newService makes the service over store, with its own cache; notify, when
// not nil, is told every committed change. The caller closes the cache and
// the store.
func (s *settings) newService(store authz.Store, notify func(authz.Change)) (*authz.Service, *authz.Cache, error) {
	signer, err := authz.NewSigner(authz.SignerConfig{Secret: s.secret, Algorithm: s.algorithm})
	if err != nil {
		return nil, nil, err
	}
	cache, err := authz.NewCache(authz.CacheConfig{TTL: s.cacheTTL, StaleTTL: s.staleTTL})
	if err != nil {
		return nil, nil, err
	}
	svc, err := authz.NewService(authz.Config{Store: store, Signer: signer, Cache: cache, Notify: notify, ObserveStore: observeStore,
		People: authz.PeopleConfig{SessionTTL: s.sessionTTL, SessionIdle: s.sessionIdle, InviteTTL: s.inviteTTL,
			Hasher: sharedHasher(), SignIn: countSignIn}})
	if err != nil {
		cache.Close()
		return nil, nil, err
	}
	return svc, cache, nil
}

// backend is one shared cache and service over a shared store.
type backend struct {
	storeID  string
	cache    *authz.Cache
	svc      *authz.Service
	fleet    *fleet        // nil unless the store carries invalidations (Redis)
	limits   *limit.Engine // the store's
	failures *failureThrottle
}

// openBackend takes the shared store (opening it if no other backend holds
// it) and makes the service over it. Over a store shared by a fleet it
// also starts the fleet-wide invalidation (see fleet).
func (s *settings) openBackend(logger *zap.Logger) (*backend, error) {
	id := s.storeID()
	v, _, err := stores.LoadOrNew(id, func() (caddy.Destructor, error) {
		st, err := s.openStore()
		if err != nil {
			return nil, err
		}
		return sharedStore{Store: st, limits: newLimitEngine(st, logger)}, nil
	})
	if err != nil {
		return nil, err
	}
	shared := v.(sharedStore)
	st := shared.Store
	failures, err := newFailureThrottle(s.failures, st, logger)
	if err != nil {
		_, _ = stores.Delete(id)
		return nil, err
	}
	var fl *fleet
	notify := func(authz.Change) {}
	if feed, ok := st.(invalidationFeed); ok {
		fl = newFleet(feed, logger)
		notify = fl.notify
	}
	svc, cache, err := s.newService(st, notify)
	if err != nil {
		failures.close()
		_, _ = stores.Delete(id)
		return nil, err
	}
	if fl != nil {
		fl.start(svc.Apply, cache.InvalidateAll)
	}
	watchCache(cache)
	return &backend{storeID: id, cache: cache, svc: svc, fleet: fl, limits: shared.limits, failures: failures}, nil
}

// Destruct closes the cache and lets go of the store; the usage pool calls
// it when the last app instance using the backend is cleaned up.
func (b *backend) Destruct() error {
	forgetCache(b.cache)
	b.svc.Close()
	b.failures.close()
	if b.fleet != nil {
		b.fleet.stop()
	}
	// Nothing uses the cache any more: empty it.
	b.cache.Close()
	_, err := stores.Delete(b.storeID)
	return err
}

// sharedStore is a store in the stores pool, with its rate limiting and
// credit spending (counts and credits are the store's, so they outlive a
// reload that makes a new backend over the same store).
type sharedStore struct {
	authz.Store
	limits *limit.Engine
}

// Destruct gives back the credits held and closes the store once no
// backend uses it.
func (s sharedStore) Destruct() error {
	s.limits.Close()
	return s.Close()
}

// newLimitEngine makes the limit engine of store st: the fleet's counts
// and the credit ledger when the store keeps them.
func newLimitEngine(st authz.Store, logger *zap.Logger) *limit.Engine {
	cfg := limit.EngineConfig{
		OnError: func(what string, err error) {
			if err == nil {
				if c := logger.Check(zapcore.InfoLevel, "limits: the store answers again"); c != nil {
					c.Write(zap.String("what", what))
				}
				return
			}
			if c := logger.Check(zapcore.WarnLevel, "limits: the store cannot be reached; rate limits count per instance, credits spend what is held"); c != nil {
				c.Write(zap.String("what", what), zap.Error(err))
			}
		},
	}
	if t, ok := st.(limit.Tallier); ok {
		cfg.Tallier = t
	}
	if l, ok := st.(limit.Ledger); ok {
		cfg.Ledger = l
	}
	return limit.NewEngine(cfg)
}

// Two pools outlive config reloads, which overlap the old and the new app
// instance. backends holds cache and service by poolKey, so a reload that
// changes nothing keeps the cache warm. stores holds the store by storeID,
// so a reload that changes only the cache settings or the signing key makes
// a new backend over the same store: the embedded database can be opened
// by one holder only.
var (
	backends = caddy.NewUsagePool()
	stores   = caddy.NewUsagePool()
)

// Interface guards
var (
	_ caddy.Destructor = (*backend)(nil)
	_ caddy.Destructor = sharedStore{}
)
