package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Defaults of Options.
const (
	DefaultQueueSize  = 1000
	DefaultWorkers    = 2
	DefaultAttempts   = 8
	DefaultBackoff    = 5 * time.Second
	DefaultMaxBackoff = 5 * time.Minute
	DefaultTimeout    = 2 * time.Minute
)

// Options tune a Mailer; the zero value of every field means its default.
type Options struct {
	// Logger receives one line per failed attempt (Warn) and per mail
	// given up (Error): the kind, the recipient's domain, the attempt and
	// the error; never the recipient's full address, a name or the link.
	// Default: no logs.
	Logger *zap.Logger

	// TLSConfig is the base of every TLS connection (its ServerName is
	// always the server's host). Default: the system's roots, TLS 1.2 or
	// newer.
	TLSConfig *tls.Config

	// QueueSize is how many mails may wait. Send drops (and counts as
	// failed) what does not fit. Default: 1000.
	QueueSize int

	// Workers is how many mails are delivered at once. Default: 2.
	Workers int

	// Attempts is how often a mail is tried before it is given up: a
	// transient failure (a 4xx answer, a network or TLS error) is tried
	// again, a permanent one (a 5xx answer, a refused policy) is not.
	// Default: 8.
	Attempts int

	// Backoff is the wait before the second attempt; it doubles for each
	// further one, up to MaxBackoff. Defaults: 5s and 5m (so 8 attempts
	// span about 10 minutes).
	Backoff    time.Duration
	MaxBackoff time.Duration

	// Timeout bounds one attempt: connecting, TLS and the whole SMTP
	// conversation. Default: 2m.
	Timeout time.Duration

	// HelloName is the name the Mailer gives in EHLO. Default: the host's
	// name, or "localhost".
	HelloName string

	// OnSent and OnFailed, when set, are called once per mail delivered
	// and per mail given up (or dropped), from the goroutine that decided
	// it, for metrics.
	OnSent   func(Kind)
	OnFailed func(Kind)

	// Now is the clock of the Date header. Default: time.Now.
	Now func() time.Time

	// Sleep waits d between attempts, or returns ctx's error when ctx ends
	// first. Default: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Mailer sends mails through one SMTP server. Send queues; the workers
// begun by Start deliver; Close stops taking mails and drains the queue
// within a deadline. A Mailer is safe for concurrent use.
type Mailer struct {
	cfg        Config
	security   Security
	tls        *tls.Config
	logger     *zap.Logger
	attempts   int
	backoff    time.Duration
	maxBackoff time.Duration
	timeout    time.Duration
	hello      string
	onSent     func(Kind)
	onFailed   func(Kind)
	now        func() time.Time
	sleep      func(context.Context, time.Duration) error
	workers    int

	mu      sync.RWMutex // guards closed against Send
	closed  bool
	queue   chan Message
	started bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	sent   atomic.Uint64
	failed atomic.Uint64
}

// New makes a Mailer for cfg. It does not connect: each mail opens its own
// connection when a worker delivers it. Call Start to begin delivering.
func New(cfg Config, opts Options) *Mailer {
	m := &Mailer{
		cfg:        cfg,
		security:   cfg.requiredSecurity(),
		logger:     opts.Logger,
		attempts:   opts.Attempts,
		backoff:    opts.Backoff,
		maxBackoff: opts.MaxBackoff,
		timeout:    opts.Timeout,
		hello:      opts.HelloName,
		onSent:     opts.OnSent,
		onFailed:   opts.OnFailed,
		now:        opts.Now,
		sleep:      opts.Sleep,
		workers:    opts.Workers,
	}
	if m.logger == nil {
		m.logger = zap.NewNop()
	}
	if opts.TLSConfig != nil {
		m.tls = opts.TLSConfig.Clone()
	} else {
		m.tls = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	m.tls.ServerName = cfg.Host
	if m.attempts <= 0 {
		m.attempts = DefaultAttempts
	}
	if m.backoff <= 0 {
		m.backoff = DefaultBackoff
	}
	if m.maxBackoff <= 0 {
		m.maxBackoff = DefaultMaxBackoff
	}
	if m.maxBackoff < m.backoff {
		m.maxBackoff = m.backoff
	}
	if m.timeout <= 0 {
		m.timeout = DefaultTimeout
	}
	if m.hello == "" {
		m.hello = helloName()
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.sleep == nil {
		m.sleep = sleep
	}
	if m.workers <= 0 {
		m.workers = DefaultWorkers
	}
	size := opts.QueueSize
	if size <= 0 {
		size = DefaultQueueSize
	}
	m.queue = make(chan Message, size)
	return m
}

// helloName is this host's name if it looks like one, for EHLO.
func helloName() string {
	h, err := os.Hostname()
	if err != nil || h == "" || strings.ContainsAny(h, " \r\n") {
		return "localhost"
	}
	return h
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Config is the configuration the Mailer sends with.
func (m *Mailer) Config() Config { return m.cfg }

// Sent is how many mails were delivered.
func (m *Mailer) Sent() uint64 { return m.sent.Load() }

// Failed is how many mails were given up: refused by the server, still
// failing after every attempt, dropped because the queue was full or the
// Mailer closed, or not composable.
func (m *Mailer) Failed() uint64 { return m.failed.Load() }

// Start begins the workers. They deliver until ctx ends (abandoning what
// is still queued, counted as failed by Close) or until Close. Later calls
// do nothing.
func (m *Mailer) Start(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started || m.closed {
		return
	}
	m.started = true
	ctx, m.cancel = context.WithCancel(ctx)
	for range m.workers {
		m.wg.Add(1)
		go m.work(ctx)
	}
}

var (
	errQueueFull = errors.New("the mail queue is full")
	errClosed    = errors.New("the mailer is closed")
)

// Send queues msg and returns at once. A message that does not fit in the
// queue, or comes after Close, is logged and counted as failed.
func (m *Mailer) Send(msg Message) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		m.giveUp(msg, 0, errClosed)
		return
	}
	select {
	case m.queue <- msg:
	default:
		m.giveUp(msg, 0, errQueueFull)
	}
}

// Close stops taking mails and waits for the workers to deliver what is
// queued, until ctx ends: then it stops them (an attempt under way is cut
// off), counts what was not delivered as failed and returns an error
// saying how many mails were given up while closing. A Mailer that was
// never started delivers nothing here: its queue is counted as failed.
// Later calls return nil at once.
func (m *Mailer) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.queue)
	m.mu.Unlock()

	failedBefore := m.failed.Load()
	done := make(chan struct{})
	go func() {
		m.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if m.cancel != nil {
		m.cancel()
	}
	<-done
	for msg := range m.queue {
		m.giveUp(msg, 0, errClosed)
	}
	if err != nil {
		return fmt.Errorf("mail: closing gave up %d mails: %w", m.failed.Load()-failedBefore, err)
	}
	return nil
}

func (m *Mailer) work(ctx context.Context) {
	defer m.wg.Done()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case msg, ok := <-m.queue:
			if !ok {
				return
			}
			m.deliver(ctx, msg)
		}
	}
}

// deliver composes msg once and tries it until it is sent, fails
// permanently, runs out of attempts or ctx ends.
func (m *Mailer) deliver(ctx context.Context, msg Message) {
	raw, to, err := compose(msg, m.cfg.From, m.now())
	if err != nil {
		m.giveUp(msg, 0, permanent{err})
		return
	}
	wait := m.backoff
	for attempt := 1; ; attempt++ {
		err := m.attempt(ctx, to, raw)
		if err == nil {
			m.sent.Add(1)
			if m.onSent != nil {
				m.onSent(msg.Kind)
			}
			return
		}
		if ctx.Err() != nil {
			m.giveUp(msg, attempt, fmt.Errorf("stopped: %w", err))
			return
		}
		var p permanent
		if errors.As(err, &p) || attempt >= m.attempts {
			m.giveUp(msg, attempt, err)
			return
		}
		m.logger.Warn("mail not sent yet, will retry",
			zap.String("kind", string(msg.Kind)),
			zap.String("to_domain", domain(to)),
			zap.Int("attempt", attempt),
			zap.Duration("retry_in", wait),
			zap.Error(err))
		if err := m.sleep(ctx, wait); err != nil {
			m.giveUp(msg, attempt, fmt.Errorf("stopped while waiting to retry: %w", err))
			return
		}
		wait = min(2*wait, m.maxBackoff)
	}
}

// giveUp counts and logs a mail that will not be sent.
func (m *Mailer) giveUp(msg Message, attempts int, err error) {
	m.failed.Add(1)
	if m.onFailed != nil {
		m.onFailed(msg.Kind)
	}
	m.logger.Error("mail not sent",
		zap.String("kind", string(msg.Kind)),
		zap.String("to_domain", domain(msg.To)),
		zap.Int("attempts", attempts),
		zap.Error(err))
}

// permanent marks an error that another attempt will not cure.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// classify marks an SMTP 5xx answer permanent; everything else (4xx,
// network, TLS) is worth another attempt.
func classify(err error) error {
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 && te.Code < 600 {
		return permanent{err}
	}
	return err
}

// attempt delivers raw to one recipient over a new connection.
func (m *Mailer) attempt(ctx context.Context, to string, raw []byte) (err error) {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", m.cfg.Addr())
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", m.cfg.Addr(), err)
	}
	// The deadline bounds every read and write; cancelling ctx (Close)
	// cuts the conversation off at once.
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	defer conn.Close()

	tlsOn := false
	if m.security == ImplicitTLS {
		tc := tls.Client(conn, m.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS with %s: %w", m.cfg.Addr(), err)
		}
		conn = tc
		tlsOn = true
	}
	c, err := smtp.NewClient(conn, m.cfg.Host)
	if err != nil {
		return classify(fmt.Errorf("greeting of %s: %w", m.cfg.Addr(), err))
	}
	defer c.Close()
	if err := c.Hello(m.hello); err != nil {
		return classify(fmt.Errorf("EHLO: %w", err))
	}
	if !tlsOn {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(m.tls); err != nil {
				return classify(fmt.Errorf("STARTTLS with %s: %w", m.cfg.Addr(), err))
			}
			tlsOn = true
		} else if m.security == StartTLSRequired {
			return permanent{fmt.Errorf("%s does not offer STARTTLS, which is required on port 587 and with credentials", m.cfg.Addr())}
		}
	}
	if m.cfg.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return permanent{fmt.Errorf("%s does not offer AUTH, and credentials are configured", m.cfg.Addr())}
		}
		if err := c.Auth(smtp.PlainAuth("", m.cfg.Username, m.cfg.Password, m.cfg.Host)); err != nil {
			return classify(fmt.Errorf("AUTH PLAIN as %q: %w", m.cfg.Username, err))
		}
	}
	if err := c.Mail(m.cfg.From.Address); err != nil {
		return classify(fmt.Errorf("MAIL FROM: %w", err))
	}
	if err := c.Rcpt(to); err != nil {
		return classify(fmt.Errorf("RCPT TO: %w", err))
	}
	w, err := c.Data()
	if err != nil {
		return classify(fmt.Errorf("DATA: %w", err))
	}
	// net/smtp's data writer dot-stuffs lines that begin with '.'.
	if _, err := w.Write(raw); err != nil {
		return fmt.Errorf("sending the message: %w", err)
	}
	if err := w.Close(); err != nil {
		return classify(fmt.Errorf("end of DATA: %w", err))
	}
	if err := c.Quit(); err != nil {
		// The server has taken the mail; a failed QUIT changes nothing.
		m.logger.Debug("SMTP QUIT failed after the mail was accepted", zap.Error(err))
	}
	return nil
}

// Interface guards
var _ Sender = (*Mailer)(nil)
