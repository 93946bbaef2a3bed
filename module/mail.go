package module

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/apiusers/apiusers/mail"
)

// MailConfig is the SMTP server that invitation and password-reset mails
// go through. Without it no mail is sent: an inviter gets the link in the
// answer instead.
type MailConfig struct {
	// URL is the SMTP server: smtp://[user:password@]host[:port] for
	// STARTTLS (used whenever the server offers it; required on port 587
	// and whenever credentials are given, which are sent with AUTH PLAIN)
	// or smtps://[user:password@]host[:port] for TLS from the first byte
	// (also meant by port 465). User and password are percent-encoded in
	// the URL; placeholders known at provision ({env.SMTP_PASSWORD}) are
	// expanded, and what they put into user:password is encoded for the
	// URL, so it may hold any character. Default port: 587 for smtp://,
	// 465 for smtps://. Required.
	URL string `json:"url,omitempty"`

	// From is the sender of every mail, "noreply@example.com" or
	// "Example <noreply@example.com>": the envelope sender and the From
	// header. Placeholders known at provision are expanded. Required.
	From string `json:"from,omitempty"`
}

// mailCloseTimeout is how long the last Cleanup that holds a mailer waits
// for its queue to be delivered before giving up the rest (logged and
// counted as failed).
const mailCloseTimeout = 10 * time.Second

// mailers holds the running mailers by the configuration they send with,
// so a reload that keeps the mail option keeps the queue (and what waits in
// it) instead of draining one mailer and starting another.
var mailers = caddy.NewUsagePool()

// pooledMailer is a mailer in the usage pool; the last holder's Cleanup
// closes it.
type pooledMailer struct{ *mail.Mailer }

// Destruct drains the queue for at most mailCloseTimeout.
func (p pooledMailer) Destruct() error {
	ctx, cancel := context.WithTimeout(context.Background(), mailCloseTimeout)
	defer cancel()
	return p.Close(ctx)
}

// resolve expands the placeholders of the mail option and checks it.
func (mc *MailConfig) resolve(repl *caddy.Replacer) (mail.Config, error) {
	if mc.URL == "" {
		return mail.Config{}, errors.New("mail: url is required (smtp[s]://[user:password@]host:port)")
	}
	return mail.ParseConfig(expandMailURL(repl, mc.URL), repl.ReplaceKnown(mc.From, ""))
}

// expandMailURL expands the placeholders of an SMTP URL. Those in its
// user:password part are percent-encoded as they go in, so a password
// from {env.SMTP_PASSWORD} may hold ':', '@', '/' or any other character.
func expandMailURL(repl *caddy.Replacer, raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	at := strings.LastIndexByte(rest, '@')
	if !ok || at < 0 || !strings.Contains(rest[:at], "{") {
		return repl.ReplaceKnown(raw, "")
	}
	user, pass, hasPass := strings.Cut(rest[:at], ":")
	out := scheme + "://" + expandUserinfo(repl, user)
	if hasPass {
		out += ":" + expandUserinfo(repl, pass)
	}
	return out + "@" + repl.ReplaceKnown(rest[at+1:], "")
}

// expandUserinfo expands the known placeholders of one half of a URL's
// user:password, encoding their values (and only those) for the URL.
func expandUserinfo(repl *caddy.Replacer, s string) string {
	var b strings.Builder
	for s != "" {
		open := strings.IndexByte(s, '{')
		if open < 0 {
			b.WriteString(s)
			break
		}
		end := strings.IndexByte(s[open:], '}')
		if end < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:open])
		ph := s[open : open+end+1]
		if v, ok := repl.GetString(ph[1 : len(ph)-1]); ok {
			b.WriteString(strings.ReplaceAll(url.QueryEscape(v), "+", "%20"))
		} else {
			b.WriteString(ph)
		}
		s = s[open+end+1:]
	}
	return b.String()
}

// mailPoolKey names a mailer by everything it sends with; the password is
// hashed in, never kept in the key.
func mailPoolKey(c mail.Config) string {
	h := sha256.New()
	for _, s := range []string{c.Host, c.Port, fmt.Sprint(int(c.Security)), c.Username, c.Password, c.From.String()} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "mail:" + hex.EncodeToString(h.Sum(nil))
}

// provisionMail takes (or makes) the shared mailer of the mail option. It
// does not dial: each mail opens its own connection when it is sent.
func (a *App) provisionMail(ctx caddy.Context) error {
	if a.Mail == nil {
		return nil
	}
	cfg, err := a.Mail.resolve(caddy.NewReplacer())
	if err != nil {
		return err
	}
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	key := mailPoolKey(cfg)
	logger := a.logger.Named("mail")
	v, _, err := mailers.LoadOrNew(key, func() (caddy.Destructor, error) {
		m := mail.New(cfg, mail.Options{
			Logger:   logger,
			OnSent:   func(k mail.Kind) { mailsSent.WithLabelValues(string(k)).Inc() },
			OnFailed: func(k mail.Kind) { mailsFailed.WithLabelValues(string(k)).Inc() },
		})
		// The mailer outlives this configuration while a reload keeps the
		// option; the pool's destructor ends it.
		m.Start(context.Background())
		logger.Info("sending mail", zap.String("server", cfg.String()), zap.String("security", cfg.Security.String()), zap.String("from", cfg.From.Address))
		return pooledMailer{m}, nil
	})
	if err != nil {
		return err
	}
	a.mailKey = key
	a.mailer = v.(pooledMailer).Mailer
	return nil
}

// releaseMail lets go of the shared mailer; the last holder drains and
// closes it.
func (a *App) releaseMail() error {
	if a.mailKey == "" {
		return nil
	}
	key := a.mailKey
	a.mailKey, a.mailer = "", nil
	_, err := mailers.Delete(key)
	return err
}

// Mailer is what the admin handlers send invitation and password-reset
// mails through, or nil when the mail option is not set (an inviter then
// gets the link in the answer, and a log line says no mail was sent).
func (a *App) Mailer() mail.Sender {
	if a.mailer == nil {
		return nil
	}
	return a.mailer
}

// unmarshalMail parses `mail <url> { from <address> }`; d is on "mail".
// What holds no placeholder is checked here, so a mistake names its file
// and line.
func unmarshalMail(d *caddyfile.Dispenser) (*MailConfig, error) {
	mailAt := *d
	if !d.NextArg() {
		return nil, d.Err("mail needs the SMTP server: mail smtp[s]://[user:password@]host:port { from <address> }")
	}
	mc := &MailConfig{URL: d.Val()}
	urlAt := *d
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	var fromAt caddyfile.Dispenser
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "from":
			if mc.From != "" {
				return nil, d.Err("from given twice")
			}
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			mc.From, fromAt = d.Val(), *d
			if d.NextArg() {
				return nil, d.ArgErr()
			}
		default:
			return nil, d.Errf("unknown option %q of mail (want from)", d.Val())
		}
	}
	if mc.From == "" {
		return nil, mailAt.Err("mail needs a from address: mail <url> { from <address> }")
	}
	if !strings.Contains(mc.URL, "{") {
		if _, err := mail.ParseConfig(mc.URL, "check@example.com"); err != nil {
			return nil, urlAt.Err(err.Error())
		}
	} else if !strings.HasPrefix(mc.URL, "{") && !strings.HasPrefix(mc.URL, "smtp://") && !strings.HasPrefix(mc.URL, "smtps://") {
		return nil, urlAt.Err("mail: the SMTP server URL must start with smtp:// (STARTTLS) or smtps:// (TLS)")
	}
	if !strings.Contains(mc.From, "{") {
		if _, err := mail.ParseFrom(mc.From); err != nil {
			return nil, fromAt.Err(err.Error())
		}
	}
	return mc, nil
}
