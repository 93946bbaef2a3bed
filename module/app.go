// Package module is the Caddy glue of apiusers: the apiusers app, the
// gateway handler (directive apiusers), the admin handler (directive
// apiusers_admin), their Caddyfile parsing and the `caddy apiusers`
// commands. The domain lives in authz; this package only wires it to Caddy.
//
// The files by concern: app.go (the app's configuration and lifecycle),
// store.go (the store's configuration and opening), settings.go (defaults
// and placeholders resolved into settings), backend.go (the store, cache
// and service shared across reloads), secret.go (the file store's signing
// key), messages.go (the shared message recorder), mail.go (the mail
// option and the shared mailer), limits.go (rate limits and quotas at the
// gateway), people.go (the shared password hasher and the sign-in
// metrics), gateway.go, keysource.go
// (where a key is read from), record.go (recording a call), admin.go,
// fleet.go (invalidation across instances), caddyfile.go and command.go
// (`caddy apiusers bootstrap`).
package module

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/limit"
	"github.com/apiusers/apiusers/authz/recorder"
	"github.com/apiusers/apiusers/mail"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the apiusers app: the one store, signing key and principal cache
// that every apiusers and apiusers_admin handler of a configuration shares.
// It is configured by the global option block
//
//	{
//		apiusers {
//			store file [<dir>]
//			store redis <url>
//			signing_key <secret>
//			cache_ttl <duration>
//			...
//		}
//	}
//
// (see UnmarshalCaddyfile for every option). Without the block the app runs
// with its defaults: the file store in Caddy's data directory, and a signing
// key generated there.
//
// Provision only checks and resolves the configuration, so `caddy validate`
// and `caddy adapt` work while another Caddy holds the file store. The
// store is opened, and the signing key file made, by Start (or by the first
// request, should one come before Start).
//
// The store, the cache and the service are shared across config reloads
// while the store and the settings that shape the cache stay the same, so a
// reload keeps the cache warm and never opens the embedded database twice.
type App struct {
	// Store names where users, keys and teams live. Default: the file store
	// in "apiusers" under Caddy's data directory.
	Store *StoreConfig `json:"store,omitempty"`

	// SigningKey is the HMAC secret keys are signed with, at least 32 bytes.
	// Placeholders known at provision ({env.X}, {file./path}) are expanded.
	// Required with the Redis store, so every instance of a fleet verifies
	// the same keys; it is never written to Redis. Default with the file
	// store: a random secret made once and kept in the store's directory as
	// "signing.key" (mode 0600), whose contents can later be given here.
	SigningKey string `json:"signing_key,omitempty"`

	// SigningAlgorithm is the JWT algorithm keys are signed and verified
	// with: HS256, HS384 or HS512. Keys that name any other algorithm
	// (including "none") are rejected. Default: HS256.
	SigningAlgorithm string `json:"signing_algorithm,omitempty"`

	// CacheTTL is how long a cached principal (a user's status, role,
	// permissions, grants and live keys) may be used without news from the
	// store. Default: 30s.
	CacheTTL caddy.Duration `json:"cache_ttl,omitempty"`

	// StaleTTL lets a cached principal be used for this much longer than
	// cache_ttl, but only while the store cannot be reached; a principal
	// invalidated by a change (a revoked key, a deactivated user) is never
	// used. Default: 0 (deny with 503 once cache_ttl has passed).
	StaleTTL caddy.Duration `json:"stale_ttl,omitempty"`

	// RetryAfter is the value of the Retry-After header sent, rounded up to
	// whole seconds, when the store is unreachable and a request has to be
	// answered 503. Default: 5s.
	RetryAfter caddy.Duration `json:"retry_after,omitempty"`

	// MessagesKeep is how many API messages (calls recorded on routes with
	// `record`) are kept per user: when a user's new messages are written,
	// its oldest beyond this many are deleted. Default: 10000.
	MessagesKeep int `json:"messages_keep,omitempty"`

	// MessagesMaxAge is how long API messages are kept: when a user's new
	// messages are written, its messages older than this are deleted, and
	// a sweep deletes them for every user (those who stopped calling too)
	// every MessagesMaxAge/100, kept between one minute and one hour.
	// Default: 720h (30 days).
	MessagesMaxAge caddy.Duration `json:"messages_max_age,omitempty"`

	// MessagesQueue is how many API messages may wait to be written. When
	// the queue is full (the store is slow or away), new messages are
	// dropped, never the request, and counted in the
	// apiusers_messages_dropped_total metric. Default: 65536.
	MessagesQueue int `json:"messages_queue,omitempty"`

	// Mail is the SMTP server invitation and password-reset mails are
	// sent through (see MailConfig). Default: none; no mail is sent.
	Mail *MailConfig `json:"mail,omitempty"`

	// PublicURL is the base of the links in invitation and password reset
	// mails (scheme, host and an optional path before the admin mount),
	// such as https://console.example.com. Placeholders known at provision
	// are expanded. Default: the scheme and host of the request that
	// caused the mail when the site serves that host by name (an exact
	// host in the address of the site, or a host matcher, on the way to
	// apiusers_admin; for a manager's mails also a request from the
	// console's origin); a self-service reset asked for under any other
	// host (a catch-all site such as :8080, a wildcard) sends no mail, and
	// a warning at provisioning says that public_url is not set.
	PublicURL string `json:"public_url,omitempty"`

	// SessionTTL is how long a sign-in lasts: a person's console session
	// and an API user's bearer session token. Default: 12h.
	SessionTTL caddy.Duration `json:"session_ttl,omitempty"`

	// SessionIdle ends a console session that was not used for this long.
	// Default: 1h.
	SessionIdle caddy.Duration `json:"session_idle,omitempty"`

	// InviteTTL is how long an invitation link works. Default: 168h (7 days).
	InviteTTL caddy.Duration `json:"invite_ttl,omitempty"`

	// AuthFailures throttles failed authentication (a bad, unknown, revoked
	// or expired key or session token, at the gateway and the admin API)
	// per client address (see AuthFailures). Default: 100 failures per
	// minute, then 429 with a Retry-After from 1s, doubling.
	AuthFailures *AuthFailures `json:"auth_failures,omitempty"`

	// PasswordBudget is the share of the machine's CPUs that password
	// hashing (sign-ins, password changes, the policy's strength estimate)
	// may take on average, 0.001 <= PasswordBudget <= 1, once a burst of one CPU
	// second is spent; beyond it a sign-in waits, and after 5s is refused
	// with 503. Hashing is process-wide: the last configuration started
	// sets it. Default: 0.025 (on 2 CPUs, two or three sign-ins a second).
	PasswordBudget float64 `json:"password_budget,omitempty"`

	settings      *settings    // resolved by Provision
	messages      *appMessages // message settings; the recorder once taken
	retryAfter    []string
	retryAfterDur time.Duration
	logger        *zap.Logger
	mailer        *mail.Mailer // nil without the mail option
	mailKey       string       // in mailers
	state         *appState    // made by Provision
}

// AuthFailures is the failure throttle of the gateway and the admin API.
// Once one client address (Caddy's client_ip, so the server's
// trusted_proxies are honoured; an IPv6 address counts with its whole
// /64) has failed to authenticate Limit times within Window, each further
// failure from it is answered 429 with Retry-After instead of 401: Backoff
// after its latest failure, doubled with each failure beyond the limit, at
// most Window. A request without any key is not a failure. A valid key is
// never slowed: the throttle is consulted only once a key has failed, so
// the allowed path does not touch it. Counting happens in process; on the
// Redis store the instances of a fleet exchange their counts every second,
// off the request path, so an address blocked on one is blocked on all.
type AuthFailures struct {
	// Off disables the throttle. Default: false.
	Off bool `json:"off,omitempty"`

	// Limit is the number of failures from one address within Window
	// after which its failures get 429. Default: 100.
	Limit int `json:"limit,omitempty"`

	// Window is the sliding window failures are counted in. Default: 1m.
	Window caddy.Duration `json:"window,omitempty"`

	// Backoff is the first Retry-After once the limit is reached.
	// Default: 1s.
	Backoff caddy.Duration `json:"backoff,omitempty"`
}

// appState is the app's hold on what it serves with.
type appState struct {
	mu      sync.Mutex              // guards opening and cleaning up
	live    atomic.Pointer[serving] // set once the store is open
	poolKey string                  // in backends, once open
	cleaned bool
}

// serving is what an app serves requests with once its store is open: the
// service, and the message recorder when a route of the configuration
// records.
type serving struct {
	svc      *authz.Service
	rec      *recorder.Recorder
	limits   *limit.Engine
	failures *failureThrottle // nil when auth_failures is off
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "apiusers",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision resolves and checks the configuration, and takes the shared
// mailer. It is cheap: it opens no store, dials nothing (the mailer
// connects for each mail) and writes no file (see Start).
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	if err := a.provisionMail(ctx); err != nil {
		return err
	}
	s, err := a.resolve(caddy.NewReplacer())
	if err != nil {
		return err
	}
	if err := s.checkStore(); err != nil {
		return err
	}
	if a.messages, err = a.messageSettings(s.storeID()); err != nil {
		return err
	}
	a.settings = s
	a.state = new(appState)
	a.retryAfter = s.retryAfter
	a.retryAfterDur = s.retryAfterDur
	return nil
}

// Validate checks what Provision cannot have caught already.
func (a *App) Validate() error {
	if a.state == nil {
		return errors.New("apiusers app is not provisioned")
	}
	return nil
}

// Start opens the store (or takes it from the configuration this one
// replaces) and makes the service. The file store waits at most
// lock_timeout for another process to let go of the database; the Redis
// store connects on first use. Then it sets the process's password hashing
// budget (password_budget): a configuration that fails to start after
// this one started (another app's Start) leaves it set.
func (a *App) Start() error {
	if _, err := a.open(); err != nil {
		return err
	}
	return a.takeBudget(a.settings.passwordShare)
}

// Stop stops the app: the password budget it set goes back to the one
// in force before it, unless a later configuration has set its own.
func (a *App) Stop() error {
	a.giveBackBudget()
	return nil
}

// Cleanup releases this instance's hold on the shared store, cache,
// recorder and mailer; the last holder closes them (the mailer after
// delivering its queue, for at most 10s).
func (a *App) Cleanup() error {
	mailErr := a.releaseMail()
	st := a.state
	if st == nil {
		return mailErr
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.cleaned = true
	st.live.Store(nil)
	a.messages.release()
	if st.poolKey == "" {
		return mailErr
	}
	key := st.poolKey
	st.poolKey = ""
	_, err := backends.Delete(key)
	return errors.Join(err, mailErr)
}

// Service is the domain service the handlers use, over the app's store
// (opened on the first call when Start has not run yet).
func (a *App) Service() (*authz.Service, error) {
	sv, err := a.open()
	if err != nil {
		return nil, err
	}
	return sv.svc, nil
}

// open returns what the app serves with, opening it on the first call:
// the file store's signing key made when there is none, the shared
// backend taken (see openBackend), and the shared recorder when a route
// records. A failed open is tried again by the next call.
func (a *App) open() (*serving, error) {
	st := a.state
	if st == nil {
		return nil, errors.New("apiusers app is not provisioned")
	}
	if sv := st.live.Load(); sv != nil {
		return sv, nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if sv := st.live.Load(); sv != nil {
		return sv, nil
	}
	if st.cleaned {
		return nil, errors.New("apiusers app is cleaned up")
	}
	s := a.settings
	if err := s.loadSecret(); err != nil {
		return nil, err
	}
	key := s.poolKey()
	v, _, err := backends.LoadOrNew(key, func() (caddy.Destructor, error) {
		return s.openBackend(a.logger)
	})
	if err != nil {
		return nil, err
	}
	sv := &serving{svc: v.(*backend).svc, limits: v.(*backend).limits, failures: v.(*backend).failures}
	if sv.rec, err = a.messages.take(sv.svc); err != nil {
		_, _ = backends.Delete(key)
		return nil, err
	}
	st.poolKey = key
	st.live.Store(sv)
	return sv, nil
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
