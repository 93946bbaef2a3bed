package admin

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/apiusers/apiusers/authz"
)

// SessionCookie is the name of the console session cookie.
const SessionCookie = "apiusers_session"

// Mail kinds (the mail package's Kind values).
const (
	MailInvitation    = "invitation"
	MailPasswordReset = "password_reset"
)

// Mail is one invitation or reset mail to send. Link is the one-time
// link, the only secret a mail carries.
type Mail struct {
	Kind      string
	To        string
	Language  string
	Name      string
	Workspace string
	Inviter   string
	Link      string
	Expires   time.Time
}

// Mailer sends mails off the request path: Send queues and returns at
// once; retries and failures are the mailer's (the mail package's Sender
// behind a small adapter in the module).
type Mailer interface {
	Send(Mail)
}

// authInfo is how a request was authenticated: the console session, when
// by cookie, and the session id (ses_…) when by any session.
type authInfo struct {
	console *authz.ConsoleCaller
	session string
}

type authKey struct{}

func withAuth(ctx context.Context, a *authInfo) context.Context {
	return context.WithValue(ctx, authKey{}, a)
}

func authOf(r *http.Request) *authInfo {
	if a, ok := r.Context().Value(authKey{}).(*authInfo); ok {
		return a
	}
	return &authInfo{}
}

func sessionCookie(r *http.Request) string {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return ""
	}
	return c.Value
}

// errCrossSite refuses a state-changing request from another site.
var errCrossSite = &requestError{status: http.StatusForbidden, field: "Origin",
	detail: "cross-site request refused: it must come from the console's own origin"}

// sameOrigin reports whether a request may change state on behalf of
// whoever its cookie names: its Origin, when it has one, is the
// request's own (or public_url's); without Origin, Sec-Fetch-Site, when
// there, is same-origin or none. A request with neither (not from a
// browser) passes: it cannot have ridden on a victim's cookie.
func (h *Handler) sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		return o == h.requestOrigin(r) || (h.publicURL != "" && o == originOf(h.publicURL))
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}

// requestOrigin is the origin a browser sees for r: https when r came
// over TLS or, through a trusted proxy, was https on the proxy's side
// (ForwardedHTTPS).
func (h *Handler) requestOrigin(r *http.Request) string {
	scheme := "http"
	if h.https(r) {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// https reports whether the browser reached r over HTTPS.
func (h *Handler) https(r *http.Request) bool { return r.TLS != nil || h.forwardedHTTPS(r) }

// secureCookie reports whether the session cookie is Secure: whenever the
// console is reached over HTTPS, directly, through a trusted proxy, or as
// public_url says.
func (h *Handler) secureCookie(r *http.Request) bool {
	return h.https(r) || strings.HasPrefix(h.publicURL, "https:")
}

func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// errNoLinkBase refuses a manager's mail whose link could only point at
// a host the request names and nothing vouches for.
var errNoLinkBase = &requestError{status: http.StatusForbidden, field: "Origin",
	detail: "no link can be made for this request: set public_url, or send it to a host the site serves by name, or from the console's origin"}

// linkBase returns what the links of a mail caused by r start with:
// public_url; else the request's own origin when the site serves its host
// by name, or, for a manager's mail (byManager), when the request passes
// the console's origin rule (sameOrigin). "" when none holds: the Host of
// a request is the client's to write, and a link to a host of the
// attacker's choosing would hand it the token.
func (h *Handler) linkBase(r *http.Request, byManager bool) string {
	switch {
	case h.publicURL != "":
		return h.publicURL
	case h.servedHost(r), byManager && h.sameOrigin(r):
		return h.requestOrigin(r)
	}
	return ""
}

// link makes the console link of page ("accept", "reset") with token
// under base (from linkBase).
func (h *Handler) link(r *http.Request, base, page, token string) string {
	return base + h.mount(r) + page + "?token=" + url.QueryEscape(token)
}

// setSession sets the console session cookie.
func (h *Handler) setSession(w http.ResponseWriter, r *http.Request, token string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: token, Path: h.mount(r), Expires: expires,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: h.secureCookie(r),
	})
}

func (h *Handler) clearSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: "", Path: h.mount(r), MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: h.secureCookie(r),
	})
}

// loginBody is the body of POST /login: email and password for a person,
// workspace, username and password for an API user.
type loginBody struct {
	Email     string `json:"email,omitempty"`
	Workspace string `json:"workspace,omitempty"`
	Username  string `json:"username,omitempty"`
	Password  string `json:"password"`
}

// personAnswer is what signing in and accepting answer a person.
type personAnswer struct {
	Account     authz.Account      `json:"account"`
	Memberships []authz.Membership `json:"memberships"`
}

// login answers POST /login.
func (h *Handler) login(w http.ResponseWriter, r *http.Request, _ *authz.Principal) error {
	var in loginBody
	if err := decodeBody(w, r, &in, false); err != nil {
		return err
	}
	switch {
	case in.Email != "" && (in.Username != "" || in.Workspace != ""):
		return badRequest("email", "give either email, or workspace and username")
	case in.Email != "":
		out, err := h.svc.SignInAccount(r.Context(), in.Email, in.Password, h.clientAddr(r))
		if err != nil {
			return err
		}
		if old := sessionCookie(r); old != "" {
			// Signing in again replaces the session this browser held:
			// it ends, so that sign-ins do not pile up sessions.
			_ = h.svc.EndConsoleToken(r.Context(), old)
		}
		h.setSession(w, r, out.Token, out.ExpiresAt)
		return writeJSON(w, http.StatusOK, personAnswer{Account: out.Account, Memberships: out.Memberships}, "")
	case in.Username != "" && in.Workspace != "":
		out, err := h.svc.SignInUser(r.Context(), in.Workspace, in.Username, in.Password, h.clientAddr(r))
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, out, "")
	}
	return badRequest("email", "give email and password, or workspace, username and password")
}

// logout answers POST /logout: the caller's session ends.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	a := authOf(r)
	if err := h.svc.Logout(r.Context(), caller, a.console, a.session); err != nil {
		return err
	}
	if a.console != nil {
		h.clearSession(w, r)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// changePassword answers POST /me/password.
func (h *Handler) changePassword(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	var in struct {
		Current string `json:"current_password"`
		New     string `json:"new_password"`
	}
	if err := decodeBody(w, r, &in, false); err != nil {
		return err
	}
	a := authOf(r)
	if err := h.svc.ChangePassword(r.Context(), caller, a.console, in.Current, in.New, h.clientAddr(r), a.session); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// invited is the answer of an invitation: the invited membership (with
// what the caller may do with it, "allowed"), and the link when no mailer
// is configured.
type invited struct {
	authz.User
	Allowed   []string `json:"allowed"`
	AcceptURL string   `json:"accept_url,omitempty"`
}

// invite answers POST /workspaces/{ws}/invitations with 201.
func (h *Handler) invite(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	var in authz.NewInvitation
	if err := decodeBody(w, r, &in, false); err != nil {
		return err
	}
	base := h.linkBase(r, true)
	if base == "" {
		return errNoLinkBase
	}
	ws := r.PathValue("ws")
	inv, err := h.svc.Invite(r.Context(), caller, ws, in)
	if err != nil {
		return err
	}
	out := h.sendInvitation(r, caller, base, inv)
	setLocation(w, r, pathOf("workspaces", ws, "users", inv.User.ID))
	return writeJSON(w, http.StatusCreated, out, etag(inv.User.Version))
}

// reinvite answers POST /workspaces/{ws}/users/{id}/invitation.
func (h *Handler) reinvite(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	base := h.linkBase(r, true)
	if base == "" {
		return errNoLinkBase
	}
	inv, err := h.svc.Reinvite(r.Context(), caller, r.PathValue("ws"), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, h.sendInvitation(r, caller, base, inv), etag(inv.User.Version))
}

// sendInvitation mails the link, or, without a mailer, puts it in the
// answer and logs that no mail was sent.
func (h *Handler) sendInvitation(r *http.Request, caller *authz.Principal, base string, inv *authz.Invitation) invited {
	link := h.link(r, base, "accept", inv.Token)
	out := invited{User: inv.User, Allowed: h.allowedAfter(r, caller, inv.User.Workspace, inv.User.ID)}
	if h.mailer == nil {
		out.AcceptURL = link
		h.log.Info("no mailer is configured: no invitation mail was sent; the inviter's answer carries the link",
			zap.String("workspace", inv.User.Workspace), zap.String("user_id", inv.User.ID))
		return out
	}
	lang := inv.Language
	if lang == "" {
		if u, err := h.svc.GetUser(r.Context(), caller, caller.Workspace, caller.UserID); err == nil {
			lang = u.Language
		}
	}
	h.mailer.Send(Mail{Kind: MailInvitation, To: inv.Email, Language: lang, Name: inv.Name,
		Workspace: inv.WorkspaceName, Inviter: inv.Inviter, Link: link, Expires: inv.ExpiresAt})
	return out
}

// resetSent is the answer of a manager's reset.
type resetSent struct {
	ExpiresAt time.Time `json:"expires_at"`
	ResetURL  string    `json:"reset_url,omitempty"`
}

// sendReset answers POST /workspaces/{ws}/users/{id}/password-reset with 202.
func (h *Handler) sendReset(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	base := h.linkBase(r, true)
	if base == "" {
		return errNoLinkBase
	}
	m, err := h.svc.SendReset(r.Context(), caller, authOf(r).console, r.PathValue("ws"), r.PathValue("id"))
	if err != nil {
		return err
	}
	out := resetSent{ExpiresAt: m.ExpiresAt}
	link := h.link(r, base, "reset", m.Token)
	if h.mailer == nil {
		out.ResetURL = link
		h.log.Info("no mailer is configured: no password reset mail was sent; the manager's answer carries the link",
			zap.String("workspace", r.PathValue("ws")), zap.String("user_id", r.PathValue("id")))
	} else {
		h.mailer.Send(Mail{Kind: MailPasswordReset, To: m.Email, Language: m.Language, Name: m.Name, Link: link, Expires: m.ExpiresAt})
	}
	return writeJSON(w, http.StatusAccepted, out, "")
}

// requestReset answers POST /password-reset {"email"} with 202, whether
// or not the email is known.
func (h *Handler) requestReset(w http.ResponseWriter, r *http.Request, _ *authz.Principal) error {
	var in struct {
		Email string `json:"email"`
	}
	if err := decodeBody(w, r, &in, false); err != nil {
		return err
	}
	base := h.linkBase(r, false)
	if base == "" {
		// Answered as any other (202), and nothing is made: the link
		// would point at a host only the client vouches for.
		if c := h.log.Check(zap.WarnLevel, "a self-service password reset was asked for under a host the site does not serve by name, and public_url is not set: no link was made, no mail sent"); c != nil {
			c.Write(zap.String("host", strings.ToValidUTF8(truncate(r.Host, 100), "?")))
		}
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	m, err := h.svc.RequestReset(r.Context(), in.Email, h.clientAddr(r))
	if err != nil {
		return err
	}
	if m != nil {
		if h.mailer == nil {
			h.log.Info("no mailer is configured: a password reset was asked for, and no mail was sent")
		} else {
			h.mailer.Send(Mail{Kind: MailPasswordReset, To: m.Email, Language: m.Language, Name: m.Name,
				Link: h.link(r, base, "reset", m.Token), Expires: m.ExpiresAt})
		}
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// confirmReset answers POST /password-reset/confirm with 204.
func (h *Handler) confirmReset(w http.ResponseWriter, r *http.Request, _ *authz.Principal) error {
	var in struct {
		Token string `json:"token"`
		New   string `json:"new_password"`
	}
	if err := decodeBody(w, r, &in, false); err != nil {
		return err
	}
	if err := h.svc.ConfirmReset(r.Context(), in.Token, in.New); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// acceptInvitation answers POST /invitations/accept: 200 with the account
// and its memberships, and the session cookie when accepting signed the
// person in.
func (h *Handler) acceptInvitation(w http.ResponseWriter, r *http.Request, _ *authz.Principal) error {
	var in struct {
		Token    string `json:"token"`
		Name     string `json:"name,omitempty"`
		Password string `json:"password,omitempty"`
	}
	if err := decodeBody(w, r, &in, false); err != nil {
		return err
	}
	out, err := h.svc.AcceptInvitation(r.Context(), in.Token, in.Name, in.Password, authOf(r).console)
	if err != nil {
		return err
	}
	if out.Token != "" {
		h.setSession(w, r, out.Token, out.ExpiresAt)
	}
	return writeJSON(w, http.StatusOK, personAnswer{Account: out.Account, Memberships: out.Memberships}, "")
}

// setPassword answers PUT /workspaces/{ws}/users/{id}/password with 204.
func (h *Handler) setPassword(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	var in struct {
		Password string `json:"password"`
	}
	if err := decodeBody(w, r, &in, false); err != nil {
		return err
	}
	if err := h.svc.SetUserPassword(r.Context(), caller, r.PathValue("ws"), r.PathValue("id"), in.Password); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listSessions answers GET /workspaces/{ws}/users/{id}/sessions. A user
// has a few sessions (at most authz.MaxTokenSessions tokens): the list is
// one page.
func (h *Handler) listSessions(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	if _, err := pageOf(r.URL.Query()); err != nil {
		return err
	}
	ss, err := h.svc.ListSessions(r.Context(), caller, authOf(r).console, r.PathValue("ws"), r.PathValue("id"), authOf(r).session)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newList(ss, ""), "")
}

// endSession answers DELETE /workspaces/{ws}/users/{id}/sessions/{sid}.
func (h *Handler) endSession(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	if err := h.svc.EndSession(r.Context(), caller, authOf(r).console, r.PathValue("ws"), r.PathValue("id"), r.PathValue("sid")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// truncate cuts s to at most n bytes.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
