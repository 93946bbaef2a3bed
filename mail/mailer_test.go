package mail

import (
	"context"
	"crypto/tls"
	"fmt"
	"html"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/apiusers/apiusers/mail/mailtest"
)

// token is the secret part of the test links: it must reach the mail
// intact and never a log.
const token = "tok_Zx8Q-3vYp_7LmN0aB2cD4eF6gH9iJ1kK"

var testLink = "https://console.example.test/invitations/accept?token=" + token + "&ws=acme"

// testEnv is a Mailer wired to a test server, with its logs and waits.
type testEnv struct {
	m      *Mailer
	logs   *observer.ObservedLogs
	mu     sync.Mutex
	waits  []time.Duration
	sent   map[Kind]int
	failed map[Kind]int
}

// hooks are the counts OnSent and OnFailed saw for kind.
func (e *testEnv) hooks(k Kind) (sent, failed int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sent[k], e.failed[k]
}

func (e *testEnv) slept() []time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]time.Duration(nil), e.waits...)
}

// newEnv makes a Mailer for url (with from noreply@example.test, unless
// o.From says otherwise) that trusts s's certificate, sleeps not at all
// between attempts (it records the waits) and logs into an observer. The
// Mailer is closed when the test ends.
func newEnv(t *testing.T, s *mailtest.Server, url string, o Options) *testEnv {
	t.Helper()
	cfg, err := ParseConfig(url, "Example Platform <noreply@example.test>")
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	e := &testEnv{logs: logs, sent: map[Kind]int{}, failed: map[Kind]int{}}
	o.Logger = zap.New(core)
	if s != nil && s.Pool != nil && o.TLSConfig == nil {
		o.TLSConfig = &tls.Config{RootCAs: s.Pool}
	}
	o.Sleep = func(ctx context.Context, d time.Duration) error {
		e.mu.Lock()
		e.waits = append(e.waits, d)
		e.mu.Unlock()
		return ctx.Err()
	}
	o.OnSent = func(k Kind) { e.mu.Lock(); e.sent[k]++; e.mu.Unlock() }
	o.OnFailed = func(k Kind) { e.mu.Lock(); e.failed[k]++; e.mu.Unlock() }
	e.m = New(cfg, o)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.m.Close(ctx)
	})
	return e
}

// waitFor polls cond until it holds (a bound against hangs, not a
// measurement).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// noSecretsLogged fails when any log line carries the token, the link or
// the recipient's full address.
func noSecretsLogged(t *testing.T, logs *observer.ObservedLogs, to string) {
	t.Helper()
	for _, e := range logs.All() {
		line := e.Message + " " + fmt.Sprint(e.ContextMap())
		for _, secret := range []string{token, "token=", to, strings.SplitN(to, "@", 2)[0]} {
			if strings.Contains(line, secret) {
				t.Errorf("log line %q carries %q", line, secret)
			}
		}
	}
}

// parseMail takes a composed or received message apart.
func parseMail(t *testing.T, data []byte) mailtest.Message {
	t.Helper()
	v, err := mailtest.ParseData(data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	return v
}

func invitation() Message {
	return Message{
		Kind:      KindInvitation,
		To:        "bob@example.org",
		Language:  "en-GB",
		Name:      "Bob Example",
		Workspace: "Acme <Robotics> & Co",
		Inviter:   ".Alice", // a line starting with a dot: dot-stuffing must keep it
		Link:      testLink,
		Expires:   time.Date(2030, 3, 4, 5, 6, 0, 0, time.FixedZone("CET", 3600)),
	}
}

func TestInvitationArrivesOverEveryTransport(t *testing.T) {
	for _, tc := range []struct {
		name     string
		server   mailtest.Options
		url      string
		wantTLS  bool
		wantUser string
	}{
		{name: "plain relay", server: mailtest.Options{}, url: "smtp://127.0.0.1:%s"},
		{name: "starttls offered", server: mailtest.Options{StartTLS: true}, url: "smtp://127.0.0.1:%s", wantTLS: true},
		{name: "starttls and auth plain", server: mailtest.Options{StartTLS: true, Username: "mailer", Password: "p@ss:w/rd"},
			url: "smtp://mailer:p%%40ss%%3Aw%%2Frd@127.0.0.1:%s", wantTLS: true, wantUser: "mailer"},
		{name: "implicit tls and auth plain", server: mailtest.Options{ImplicitTLS: true, Username: "mailer", Password: "secret"},
			url: "smtps://mailer:secret@127.0.0.1:%s", wantTLS: true, wantUser: "mailer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mailtest.Start(t, tc.server)
			e := newEnv(t, s, fmt.Sprintf(tc.url, s.Port), Options{
				Now: func() time.Time { return time.Date(2030, 3, 1, 12, 0, 0, 0, time.UTC) },
			})
			e.m.Start(context.Background())
			e.m.Send(invitation())
			r := s.Next(t)

			if r.TLS != tc.wantTLS || r.User != tc.wantUser {
				t.Errorf("TLS = %v, user = %q; want %v, %q", r.TLS, r.User, tc.wantTLS, tc.wantUser)
			}
			if r.From != "noreply@example.test" || len(r.To) != 1 || r.To[0] != "bob@example.org" {
				t.Errorf("envelope from %q to %v", r.From, r.To)
			}
			v := parseMail(t, r.Data)
			checkHeaders(t, v)
			if want := ".Alice invited you to Acme <Robotics> & Co"; v.Subject != want {
				t.Errorf("subject %q, want %q", v.Subject, want)
			}
			if got := v.Header.Get("Content-Language"); got != "en" {
				t.Errorf("Content-Language %q, want en", got)
			}
			if fmt.Sprint(v.Types) != "[text/plain; charset=utf-8 text/html; charset=utf-8]" {
				t.Errorf("parts %v, want plain text then HTML", v.Types)
			}
			for _, want := range []string{
				"Hello Bob Example,",
				"\r\n.Alice has invited you to join the workspace \"Acme <Robotics> & Co\".",
				"\r\n" + testLink + "\r\n",
				"works until Monday, 4 March 2030, 04:06 UTC.",
			} {
				if !strings.Contains(v.Text, want) {
					t.Errorf("text lacks %q:\n%s", want, v.Text)
				}
			}
			for _, want := range []string{
				`<html lang="en">`,
				"Hello Bob Example,",
				".Alice has invited you to join the workspace <strong>Acme &lt;Robotics&gt; &amp; Co</strong>.",
				"Accept the invitation</a>",
				"Monday, 4 March 2030, 04:06 UTC",
			} {
				if !strings.Contains(v.HTML, want) {
					t.Errorf("HTML lacks %q:\n%s", want, v.HTML)
				}
			}
			if strings.Contains(v.HTML, "<Robotics>") {
				t.Error("the workspace name reached the HTML unescaped")
			}
			links := v.Links()
			if len(links) != 2 || links[0] != testLink || links[1] != testLink {
				t.Errorf("HTML links %q, want the link twice", links)
			}
			if !strings.Contains(html.UnescapeString(v.HTML), ">"+testLink+"</a>") {
				t.Error("the HTML does not show the link as text")
			}
			waitFor(t, "the sent count", func() bool { return e.m.Sent() == 1 })
			if sent, _ := e.hooks(KindInvitation); e.m.Failed() != 0 || sent != 1 {
				t.Errorf("sent %d failed %d, OnSent saw %d", e.m.Sent(), e.m.Failed(), sent)
			}
			noSecretsLogged(t, e.logs, "bob@example.org")
		})
	}
}

// checkHeaders asserts the headers every mail has.
func checkHeaders(t *testing.T, v mailtest.Message) {
	t.Helper()
	h := v.Header
	if got := h.Get("From"); got != `"Example Platform" <noreply@example.test>` {
		t.Errorf("From %q", got)
	}
	if to, err := h.AddressList("To"); err != nil || len(to) != 1 || to[0].Address != "bob@example.org" || to[0].Name != "Bob Example" {
		t.Errorf("To %q (%v)", h.Get("To"), err)
	}
	if d, err := h.Date(); err != nil || !d.Equal(time.Date(2030, 3, 1, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("Date %q (%v)", h.Get("Date"), err)
	}
	if !regexp.MustCompile(`^<[0-9a-f]{32}@example\.test>$`).MatchString(h.Get("Message-ID")) {
		t.Errorf("Message-ID %q", h.Get("Message-ID"))
	}
	if h.Get("MIME-Version") != "1.0" || h.Get("Auto-Submitted") != "auto-generated" {
		t.Errorf("MIME-Version %q, Auto-Submitted %q", h.Get("MIME-Version"), h.Get("Auto-Submitted"))
	}
	if strings.Contains(strings.ReplaceAll(v.Raw, "\r\n", ""), "\n") {
		t.Error("a line of the mail does not end in CRLF")
	}
	for _, line := range strings.Split(v.Raw, "\r\n") {
		if len(line) > 78 && !strings.HasPrefix(line, "Content-Type:") {
			t.Errorf("line of %d characters: %q", len(line), line)
		}
	}
}

func TestLanguages(t *testing.T) {
	s := mailtest.Start(t, mailtest.Options{})
	e := newEnv(t, s, "smtp://127.0.0.1:"+s.Port, Options{Now: func() time.Time { return time.Date(2030, 3, 1, 12, 0, 0, 0, time.UTC) }})
	e.m.Start(context.Background())
	expires := time.Date(2030, 3, 1, 13, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		msg                             Message
		lang, subject, rawSubjectPrefix string
		text, html                      []string
	}{
		{
			msg:     Message{Kind: KindInvitation, Language: "de", Name: "Jürgen", Workspace: "Acme", Inviter: "Alice"},
			lang:    "de",
			subject: "Alice hat Sie zu Acme eingeladen",
			text:    []string{"Hallo Jürgen,", "Alice hat Sie in den Workspace „Acme“ eingeladen.", "gilt bis Freitag, 1. März 2030, 13:00 UTC."},
			html:    []string{`<html lang="de">`, "Einladung annehmen</a>", "Falls die Schaltfläche nicht funktioniert"},
		},
		{
			msg:              Message{Kind: KindPasswordReset, Language: "de-AT"},
			lang:             "de",
			subject:          "Passwort zurücksetzen",
			rawSubjectPrefix: "=?utf-8?q?",
			text:             []string{"Hallo,\r\n", "Passwort Ihres Kontos zurückzusetzen", "Ihr Passwort bleibt unverändert."},
			html:             []string{`<html lang="de">`, "Neues Passwort wählen</a>"},
		},
		{
			msg:     Message{Kind: KindPasswordReset, Language: "fr-CA", Name: "Zoé"},
			lang:    "en",
			subject: "Reset your password",
			text:    []string{"Hello Zoé,", "reset the password of your account", "works until Friday, 1 March 2030, 13:00 UTC."},
			html:    []string{`<html lang="en">`, "Choose a new password</a>"},
		},
		{
			msg:     Message{Kind: KindInvitation, Workspace: "Acme"},
			lang:    "en",
			subject: "You are invited to Acme",
			text:    []string{"Hello,\r\n", "You have been invited to join the workspace \"Acme\"."},
			html:    []string{"You have been invited to join the workspace <strong>Acme</strong>."},
		},
	} {
		t.Run(tc.msg.Language+"/"+string(tc.msg.Kind), func(t *testing.T) {
			msg := tc.msg
			msg.To, msg.Link, msg.Expires = "bob@example.org", testLink, expires
			e.m.Send(msg)
			v := parseMail(t, s.Next(t).Data)
			if v.Subject != tc.subject {
				t.Errorf("subject %q, want %q", v.Subject, tc.subject)
			}
			if !strings.HasPrefix(v.Header.Get("Subject"), tc.rawSubjectPrefix) {
				t.Errorf("raw subject %q, want it encoded as %s…", v.Header.Get("Subject"), tc.rawSubjectPrefix)
			}
			if got := v.Header.Get("Content-Language"); got != tc.lang {
				t.Errorf("Content-Language %q, want %q", got, tc.lang)
			}
			text := strings.ReplaceAll(v.Text, "\r\n", "\n")
			for _, want := range tc.text {
				if !strings.Contains(text, strings.ReplaceAll(want, "\r\n", "\n")) {
					t.Errorf("text lacks %q:\n%s", want, v.Text)
				}
			}
			if !strings.Contains(text, "\n"+testLink+"\n") {
				t.Errorf("text lacks the link:\n%s", v.Text)
			}
			for _, want := range tc.html {
				if !strings.Contains(v.HTML, want) {
					t.Errorf("HTML lacks %q:\n%s", want, v.HTML)
				}
			}
			if l := v.Links(); len(l) != 2 || l[0] != testLink {
				t.Errorf("HTML links %q", l)
			}
		})
	}
}

func TestRetriesAfterTemporaryRefusal(t *testing.T) {
	s := mailtest.Start(t, mailtest.Options{})
	s.RefuseNext(451, 451)
	e := newEnv(t, s, "smtp://127.0.0.1:"+s.Port, Options{Backoff: 3 * time.Second, MaxBackoff: 4 * time.Second})
	e.m.Start(context.Background())
	e.m.Send(invitation())
	r := s.Next(t)
	if v := parseMail(t, r.Data); !strings.Contains(v.Text, testLink) {
		t.Error("the retried mail lost its link")
	}
	waitFor(t, "the sent count", func() bool { return e.m.Sent() == 1 })
	if got := s.Rcpts(); got != 3 {
		t.Errorf("%d RCPT commands, want 3 (two refused, one accepted)", got)
	}
	if got := fmt.Sprint(e.slept()); got != "[3s 4s]" {
		t.Errorf("waited %s between attempts, want [3s 4s] (doubling, capped)", got)
	}
	if e.m.Failed() != 0 {
		t.Errorf("failed %d, want 0", e.m.Failed())
	}
	retries := e.logs.FilterMessage("mail not sent yet, will retry").All()
	if len(retries) != 2 || retries[0].ContextMap()["to_domain"] != "example.org" {
		t.Errorf("retry log lines %v", retries)
	}
	noSecretsLogged(t, e.logs, "bob@example.org")
	s.None(t)
}

func TestGivesUpAfterTheLastAttempt(t *testing.T) {
	s := mailtest.Start(t, mailtest.Options{})
	s.RefuseNext(451, 451, 451, 451)
	e := newEnv(t, s, "smtp://127.0.0.1:"+s.Port, Options{Attempts: 3})
	e.m.Start(context.Background())
	e.m.Send(invitation())
	waitFor(t, "the failed count", func() bool { return e.m.Failed() == 1 })
	if got := s.Rcpts(); got != 3 {
		t.Errorf("%d attempts, want 3", got)
	}
	if _, failed := e.hooks(KindInvitation); e.m.Sent() != 0 || failed != 1 {
		t.Errorf("sent %d, OnFailed saw %d", e.m.Sent(), failed)
	}
	lines := e.logs.FilterMessage("mail not sent").All()
	if len(lines) != 1 {
		t.Fatalf("%d give-up log lines, want 1", len(lines))
	}
	l := lines[0]
	f := l.ContextMap()
	if l.Level != zapcore.ErrorLevel || f["kind"] != "invitation" || f["to_domain"] != "example.org" || f["attempts"] != int64(3) ||
		!strings.Contains(fmt.Sprint(f["error"]), "451") {
		t.Errorf("give-up line %s %v", l.Level, f)
	}
	noSecretsLogged(t, e.logs, "bob@example.org")
	s.None(t)
}

func TestPermanentRefusalIsNotRetried(t *testing.T) {
	s := mailtest.Start(t, mailtest.Options{})
	s.RefuseNext(550)
	e := newEnv(t, s, "smtp://127.0.0.1:"+s.Port, Options{})
	e.m.Start(context.Background())
	e.m.Send(invitation())
	waitFor(t, "the failed count", func() bool { return e.m.Failed() == 1 })
	if got := s.Rcpts(); got != 1 || len(e.slept()) != 0 {
		t.Errorf("%d attempts and waits %v after a 550, want 1 and none", got, e.slept())
	}
	noSecretsLogged(t, e.logs, "bob@example.org")
}

func TestCredentialsNeverGoInTheClear(t *testing.T) {
	s := mailtest.Start(t, mailtest.Options{}) // no STARTTLS
	e := newEnv(t, s, "smtp://mailer:secret@127.0.0.1:"+s.Port, Options{})
	e.m.Start(context.Background())
	e.m.Send(invitation())
	waitFor(t, "the failed count", func() bool { return e.m.Failed() == 1 })
	if u := s.AuthUsers(); len(u) != 0 || s.Rcpts() != 0 {
		t.Errorf("the server saw AUTH %v and %d RCPT", u, s.Rcpts())
	}
	l := e.logs.FilterMessage("mail not sent").All()
	if len(l) != 1 || !strings.Contains(fmt.Sprint(l[0].ContextMap()["error"]), "does not offer STARTTLS") {
		t.Errorf("log %v", l)
	}
	if strings.Contains(fmt.Sprint(e.logs.All()), "secret") {
		t.Error("the password reached the log")
	}
}

func TestUntrustedCertificateFails(t *testing.T) {
	s := mailtest.Start(t, mailtest.Options{StartTLS: true})
	e := newEnv(t, s, "smtp://127.0.0.1:"+s.Port, Options{Attempts: 2, TLSConfig: &tls.Config{}})
	e.m.Start(context.Background())
	e.m.Send(invitation())
	waitFor(t, "the failed count", func() bool { return e.m.Failed() == 1 })
	s.None(t)
	if s.Rcpts() != 0 {
		t.Error("the mail went on past a certificate nobody trusts")
	}
}

func TestWrongPasswordFails(t *testing.T) {
	s := mailtest.Start(t, mailtest.Options{StartTLS: true, Username: "mailer", Password: "right"})
	e := newEnv(t, s, "smtp://mailer:wrong@127.0.0.1:"+s.Port, Options{})
	e.m.Start(context.Background())
	e.m.Send(invitation())
	waitFor(t, "the failed count", func() bool { return e.m.Failed() == 1 })
	if u := s.AuthUsers(); len(u) != 1 {
		t.Errorf("AUTH tried %d times, want once (535 is permanent)", len(u))
	}
	if strings.Contains(fmt.Sprint(e.logs.All()), "wrong") {
		t.Error("the password reached the log")
	}
}

func TestSendNeverBlocks(t *testing.T) {
	s := mailtest.Start(t, mailtest.Options{})
	e := newEnv(t, s, "smtp://127.0.0.1:"+s.Port, Options{QueueSize: 2, Workers: 1})
	// Not started: nothing takes from the queue, so Send must drop, not wait.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 5 {
			e.m.Send(invitation())
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Send blocked on a full queue")
	}
	if _, failed := e.hooks(KindInvitation); e.m.Failed() != 3 || failed != 3 {
		t.Errorf("failed %d (OnFailed saw %d), want the 3 that did not fit", e.m.Failed(), failed)
	}
	if l := e.logs.FilterMessage("mail not sent").All(); len(l) != 3 || !strings.Contains(fmt.Sprint(l[0].ContextMap()["error"]), "queue is full") {
		t.Errorf("log %v", l)
	}
	e.m.Start(context.Background())
	s.Next(t)
	s.Next(t)
	waitFor(t, "the sent count", func() bool { return e.m.Sent() == 2 })

	// A server that hangs in DATA holds the one worker; Send still returns.
	release := s.BlockData()
	defer release()
	for range 10 {
		e.m.Send(invitation())
	}
	if e.m.Failed() < 3+7 {
		t.Errorf("failed %d, want at least 10 (queue of 2, one in flight)", e.m.Failed())
	}
	noSecretsLogged(t, e.logs, "bob@example.org")
}

func TestCloseDrainsTheQueue(t *testing.T) {
	s := mailtest.Start(t, mailtest.Options{})
	e := newEnv(t, s, "smtp://127.0.0.1:"+s.Port, Options{Workers: 1})
	release := s.BlockData()
	e.m.Start(context.Background())
	for range 3 {
		e.m.Send(invitation())
	}
	closed := make(chan error)
	go func() { closed <- e.m.Close(context.Background()) }()
	release()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	for range 3 {
		s.Next(t)
	}
	if e.m.Sent() != 3 || e.m.Failed() != 0 {
		t.Errorf("sent %d failed %d, want 3 and 0", e.m.Sent(), e.m.Failed())
	}
	e.m.Send(invitation())
	if e.m.Failed() != 1 {
		t.Error("a mail after Close was not counted as failed")
	}
}

func TestCloseGivesUpAtItsDeadline(t *testing.T) {
	s := mailtest.Start(t, mailtest.Options{})
	e := newEnv(t, s, "smtp://127.0.0.1:"+s.Port, Options{Workers: 1})
	release := s.BlockData()
	defer release()
	e.m.Start(context.Background())
	for range 3 {
		e.m.Send(invitation())
	}
	waitFor(t, "the first mail in DATA", func() bool { return s.Rcpts() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := e.m.Close(ctx)
	if err == nil || !strings.Contains(err.Error(), "gave up 3 mails") {
		t.Errorf("Close = %v, want an error naming the 3 mails given up", err)
	}
	if e.m.Failed() != 3 || e.m.Sent() != 0 {
		t.Errorf("failed %d sent %d, want 3 (one cut off, two queued) and 0", e.m.Failed(), e.m.Sent())
	}
	noSecretsLogged(t, e.logs, "bob@example.org")
}

func TestUnsendableMessagesFailAtOnce(t *testing.T) {
	s := mailtest.Start(t, mailtest.Options{})
	e := newEnv(t, s, "smtp://127.0.0.1:"+s.Port, Options{})
	e.m.Start(context.Background())
	bad := []Message{
		{Kind: "newsletter", To: "bob@example.org", Link: testLink},
		{Kind: KindPasswordReset, To: "bob@example.org\r\nRCPT TO:<eve@evil.test>", Link: testLink},
		{Kind: KindPasswordReset, To: "Bob <bob@example.org>", Link: testLink},
		{Kind: KindPasswordReset, To: "bob@example.org", Link: "javascript:alert(1)"},
		{Kind: KindPasswordReset, To: "bob@example.org"},
		{Kind: KindInvitation, To: "bob@example.org", Link: testLink},
	}
	for _, m := range bad {
		e.m.Send(m)
	}
	waitFor(t, "the failed count", func() bool { return e.m.Failed() == uint64(len(bad)) })
	if s.Rcpts() != 0 {
		t.Errorf("%d RCPT for messages that cannot be sent", s.Rcpts())
	}
	noSecretsLogged(t, e.logs, "bob@example.org")
}
