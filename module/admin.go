package module

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/apiusers/apiusers/admin"
	"github.com/apiusers/apiusers/mail"
)

func init() {
	caddy.RegisterModule(Admin{})
	httpcaddyfile.RegisterHandlerDirective("apiusers_admin", parseAdmin)
	httpcaddyfile.RegisterDirectiveOrder("apiusers_admin", httpcaddyfile.Before, "respond")
}

// Admin serves the apiusers admin API (workspaces, users, keys, teams,
// messages, audit) and the web console beside it (GET / and the console's
// pages and files, see admin/console) over the apiusers app's store. It is a terminal
// handler: mount it where the API lives, normally
//
//	handle_path /admin/* {
//		apiusers_admin
//	}
//
// so that its paths (/me, /workspaces/…) are relative to the mount. Callers
// authenticate with an API key (or an API user's session token) read
// exactly as the apiusers directive reads it by default: `Authorization:
// Bearer <key>`, then `X-API-Key`; else with the console session cookie
// apiusers_session, whose Path is the mount. Answers
// are JSON; errors are application/problem+json written by the handler
// itself (it sets no placeholders). While the apiusers app's store cannot
// be opened (only before the app has started) it answers 503 through
// Caddy's error handling, with Retry-After.
type Admin struct {
	app       *App
	opts      admin.Options
	api       *lazyAdmin
	secrets   logSecrets // where requests put secrets Caddy's access log would show
	accessLog *accessLog
}

// lazyAdmin is the admin API, made on the first request.
type lazyAdmin struct {
	mu sync.Mutex
	h  atomic.Pointer[admin.Handler]
}

// CaddyModule returns the Caddy module information.
func (Admin) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.apiusers_admin",
		New: func() caddy.Module { return new(Admin) },
	}
}

// Provision finds the apiusers app; the admin API is made over its service
// on the first request, once the app's store is open.
func (a *Admin) Provision(ctx caddy.Context) error {
	appIface, err := ctx.App("apiusers")
	if err != nil {
		return fmt.Errorf("getting apiusers app: %w", err)
	}
	a.app = appIface.(*App)
	srcs, err := compileSources(nil)
	if err != nil {
		return err
	}
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	a.opts = admin.Options{
		KeySources: adminKeySources(srcs),
		RetryAfter: a.app.retryAfterDur,
		Logger:     ctx.Logger(),
		PublicURL:  a.app.settings.publicURL,
		Mount:      mountOf,
		ClientAddr: clientAddr,
		Mailer:     adminMailer(a.app.Mailer()),
		AuthFailed: func(r *http.Request) error { return failuresOf(a.app).failed(r) },
		ServedHost: func(r *http.Request) bool { return servedByName(r, a) },
		ForwardedHTTPS: func(r *http.Request) bool {
			trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool)
			return trusted && strings.EqualFold(strings.TrimSpace(strings.Split(r.Header.Get("X-Forwarded-Proto"), ",")[0]), "https")
		},
	}
	if a.opts.Mailer != nil && a.opts.PublicURL == "" {
		ctx.Logger().Warn("public_url is not set: the links in mails are made from the request's host, and for a self-service " +
			"password reset only from a host the site names in its address (no mail is sent when asked for under another); set public_url")
	}
	a.api = new(lazyAdmin)
	// Keys (and API users' session tokens) come as the gateway reads them;
	// the console's links carry one-time secrets in a token parameter.
	a.secrets = secretsOfSources(srcs)
	a.secrets.query = append(a.secrets.query, "token")
	a.accessLog = newAccessLog(ctx)
	return nil
}

// handler returns the admin API, making it on the first call.
func (a *Admin) handler() (*admin.Handler, error) {
	if h := a.api.h.Load(); h != nil {
		return h, nil
	}
	svc, err := a.app.Service()
	if err != nil {
		return nil, err
	}
	a.api.mu.Lock()
	defer a.api.mu.Unlock()
	if h := a.api.h.Load(); h != nil {
		return h, nil
	}
	h := admin.New(svc, a.opts)
	a.api.h.Store(h)
	return h, nil
}

// mountOf returns the path the admin API is mounted at, with a trailing
// slash: the original request's path less the path the handler sees (what
// handle_path stripped).
func mountOf(r *http.Request) string {
	orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request)
	if !ok || orig.URL == nil {
		return "/"
	}
	mount := strings.TrimSuffix(orig.URL.Path, r.URL.Path)
	if !strings.HasSuffix(mount, "/") {
		mount += "/"
	}
	return mount
}

// clientAddr is the client address as Caddy determined it (honouring
// trusted_proxies), by which failed sign-ins are counted.
func clientAddr(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// adminMailer hands the admin API's mails to the app's mailer (nil
// without the mail option: the admin API then answers with the links).
func adminMailer(s mail.Sender) admin.Mailer {
	if s == nil {
		return nil
	}
	return mailSender{s}
}

// mailSender is a mail.Sender as the admin API's Mailer.
type mailSender struct{ s mail.Sender }

func (m mailSender) Send(msg admin.Mail) {
	m.s.Send(mail.Message{Kind: mail.Kind(msg.Kind), To: msg.To, Language: msg.Language, Name: msg.Name,
		Workspace: msg.Workspace, Inviter: msg.Inviter, Link: msg.Link, Expires: msg.Expires})
}

// adminKeySources turns the gateway's key sources into the admin API's, so
// both read keys the same way.
func adminKeySources(srcs []keySource) []admin.KeySource {
	out := make([]admin.KeySource, len(srcs))
	for i, s := range srcs {
		out[i] = s.value
	}
	return out
}

// Validate reports whether the handler is ready.
func (a *Admin) Validate() error {
	if a.app == nil {
		return errors.New("apiusers_admin: no apiusers app")
	}
	return nil
}

// ServeHTTP implements caddyhttp.MiddlewareHandler; the admin API answers
// every request itself and never calls next. Secrets in the request (keys,
// session tokens, and the one-time token of a console link's `token`
// parameter) are redacted from Caddy's access log line.
func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	a.accessLog.redactAccessLog(w, r, &a.secrets)
	h, err := a.handler()
	if err != nil {
		if c := a.opts.Logger.Check(zapcore.ErrorLevel, "authorization store unavailable"); c != nil {
			c.Write(zap.Error(err))
		}
		w.Header()[hdrRetryAfter] = a.app.retryAfter
		return caddyhttp.Error(http.StatusServiceUnavailable, errStoreUnavailable)
	}
	h.ServeHTTP(w, r)
	return nil
}

func parseAdmin(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	a := new(Admin)
	err := a.UnmarshalCaddyfile(h.Dispenser)
	return a, err
}

// UnmarshalCaddyfile sets up the admin handler from Caddyfile tokens.
// Syntax:
//
//	apiusers_admin [<matcher>]
//
// It takes no options yet.
func (a *Admin) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(0) {
		return d.Errf("unknown apiusers_admin subdirective %q", d.Val())
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Admin)(nil)
	_ caddy.Validator             = (*Admin)(nil)
	_ caddyfile.Unmarshaler       = (*Admin)(nil)
	_ caddyhttp.MiddlewareHandler = (*Admin)(nil)
)
