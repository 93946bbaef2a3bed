package module

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/apiusers/apiusers/mail"
	"github.com/apiusers/apiusers/mail/mailtest"
)

func TestUnmarshalMail(t *testing.T) {
	for _, c := range []struct {
		name, input string
		want        *MailConfig
	}{
		{"url and from", `apiusers {
			mail smtp://mailer:pw@smtp.example.com:587 {
				from "Acme <noreply@acme.example>"
			}
		}`, &MailConfig{URL: "smtp://mailer:pw@smtp.example.com:587", From: "Acme <noreply@acme.example>"}},
		{"implicit tls", `apiusers {
			mail smtps://smtp.example.com {
				from noreply@acme.example
			}
		}`, &MailConfig{URL: "smtps://smtp.example.com", From: "noreply@acme.example"}},
		{"placeholders", `apiusers {
			mail smtp://apikey:{env.SMTP_PASSWORD}@smtp.example.com:587 {
				from {env.MAIL_FROM}
			}
		}`, &MailConfig{URL: "smtp://apikey:{env.SMTP_PASSWORD}@smtp.example.com:587", From: "{env.MAIL_FROM}"}},
		{"whole url from the environment", `apiusers {
			mail {env.SMTP_URL} {
				from noreply@acme.example
			}
		}`, &MailConfig{URL: "{env.SMTP_URL}", From: "noreply@acme.example"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var a App
			if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(c.input)); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a.Mail, c.want) {
				t.Fatalf("got %s, want %s", jsonOf(t, a.Mail), jsonOf(t, c.want))
			}
		})
	}
}

func TestUnmarshalMailErrors(t *testing.T) {
	for _, c := range []struct{ name, input, want string }{
		{"no url", "apiusers {\n\tmail\n}", "mail needs the SMTP server: mail smtp[s]://[user:password@]host:port { from <address> }, at Testfile:2"},
		{"no from", "apiusers {\n\tcache_ttl 1m\n\tmail smtp://smtp.example.com:587\n}", "mail needs a from address: mail <url> { from <address> }, at Testfile:3"},
		{"empty block", "apiusers {\n\tmail smtp://smtp.example.com:587 {\n\t}\n}", "mail needs a from address"},
		{"bad scheme", "apiusers {\n\tmail http://smtp.example.com {\n\t\tfrom a@acme.example\n\t}\n}", `mail: unsupported scheme "http" in the SMTP server URL; use smtp:// (STARTTLS) or smtps:// (TLS), at Testfile:2`},
		{"bad port", "apiusers {\n\tmail smtp://u:s3cret@smtp.example.com:99999 {\n\t\tfrom a@acme.example\n\t}\n}", `mail: invalid port "99999" in the SMTP server URL, at Testfile:2`},
		{"user without password", "apiusers {\n\tmail smtp://u@smtp.example.com:587 {\n\t\tfrom a@acme.example\n\t}\n}", "needs both user and password, as user:password@, or neither, at Testfile:2"},
		{"path", "apiusers {\n\tmail smtp://smtp.example.com:587/x {\n\t\tfrom a@acme.example\n\t}\n}", "must not have a path, query or fragment, at Testfile:2"},
		{"placeholder url bad scheme", "apiusers {\n\tmail ftp://{env.SMTP_HOST} {\n\t\tfrom a@acme.example\n\t}\n}", "must start with smtp:// (STARTTLS) or smtps:// (TLS), at Testfile:2"},
		{"bad from", "apiusers {\n\tmail smtp://smtp.example.com:587 {\n\t\tfrom not-an-address\n\t}\n}", `mail: invalid from address "not-an-address"`},
		{"bad from line", "apiusers {\n\tmail smtp://smtp.example.com:587 {\n\n\t\tfrom not-an-address\n\t}\n}", "at Testfile:4"},
		{"from twice", "apiusers {\n\tmail smtp://smtp.example.com:587 {\n\t\tfrom a@acme.example\n\t\tfrom b@acme.example\n\t}\n}", "from given twice, at Testfile:4"},
		{"from without address", "apiusers {\n\tmail smtp://smtp.example.com:587 {\n\t\tfrom\n\t}\n}", "wrong argument count or unexpected line ending after 'from', at Testfile:3"},
		{"from with two", "apiusers {\n\tmail smtp://smtp.example.com:587 {\n\t\tfrom a@acme.example b@acme.example\n\t}\n}", "wrong argument count or unexpected line ending after 'b@acme.example', at Testfile:3"},
		{"unknown option", "apiusers {\n\tmail smtp://smtp.example.com:587 {\n\t\tfrom a@acme.example\n\t\tsender x\n\t}\n}", `unknown option "sender" of mail (want from), at Testfile:4`},
		{"extra argument", "apiusers {\n\tmail smtp://smtp.example.com:587 tls {\n\t\tfrom a@acme.example\n\t}\n}", "wrong argument count or unexpected line ending after 'tls', at Testfile:2"},
		{"mail twice", "apiusers {\n\tmail smtp://a.example:587 {\n\t\tfrom a@acme.example\n\t}\n\tmail smtp://b.example:587 {\n\t\tfrom a@acme.example\n\t}\n}", "mail given twice, at Testfile:5"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var a App
			err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(c.input))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("the error %q repeats the password", err)
			}
		})
	}
}

// The option adapts to the app's JSON, and a mistake in a Caddyfile names
// the file and line.
func TestAdaptMailOption(t *testing.T) {
	adapter := caddyconfig.GetAdapter("caddyfile")
	out, warnings, err := adapter.Adapt([]byte(`{
	apiusers {
		mail smtp://apikey:{env.SMTP_PASSWORD}@smtp.example.com:587 {
			from "Acme <noreply@acme.example>"
		}
	}
}

:8080 {
	apiusers_admin
}
`), map[string]any{"filename": "Caddyfile"})
	if err != nil || len(warnings) > 0 {
		t.Fatalf("adapt: %v %v", err, warnings)
	}
	var cfg struct {
		Apps struct {
			APIUsers json.RawMessage `json:"apiusers"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	want := `{"mail":{"url":"smtp://apikey:{env.SMTP_PASSWORD}@smtp.example.com:587","from":"Acme \u003cnoreply@acme.example\u003e"}}`
	if string(cfg.Apps.APIUsers) != want {
		t.Fatalf("apps.apiusers = %s\nwant %s", cfg.Apps.APIUsers, want)
	}

	_, _, err = adapter.Adapt([]byte("{\n\tapiusers {\n\t\tmail smtp://smtp.example.com:587 {\n\t\t\tfrom noreply@\n\t\t}\n\t}\n}\n"), map[string]any{"filename": "Caddyfile"})
	if err == nil || !strings.Contains(err.Error(), `mail: invalid from address "noreply@"`) || !strings.Contains(err.Error(), "Caddyfile:4") {
		t.Fatalf("adapt error %v, want the from address and Caddyfile:4", err)
	}
}

func TestMailResolvePlaceholders(t *testing.T) {
	t.Setenv("APIUSERS_TEST_SMTP_PASSWORD", "p@ss:w/rd?#% {x}")
	t.Setenv("APIUSERS_TEST_SMTP_URL", "smtps://u:pw9@smtp.example.com")
	t.Setenv("APIUSERS_TEST_MAIL_FROM", "Acme <noreply@acme.example>")
	repl := caddy.NewReplacer()

	c, err := (&MailConfig{URL: "smtp://apikey:{env.APIUSERS_TEST_SMTP_PASSWORD}@smtp.example.com:587", From: "{env.APIUSERS_TEST_MAIL_FROM}"}).resolve(repl)
	if err != nil {
		t.Fatal(err)
	}
	if c.Username != "apikey" || c.Password != "p@ss:w/rd?#% {x}" || c.Host != "smtp.example.com" || c.Port != "587" || c.Security != mail.StartTLSRequired {
		t.Errorf("config %+v", c)
	}
	if c.From.Name != "Acme" || c.From.Address != "noreply@acme.example" {
		t.Errorf("from %+v", c.From)
	}

	c, err = (&MailConfig{URL: "{env.APIUSERS_TEST_SMTP_URL}", From: "noreply@acme.example"}).resolve(repl)
	if err != nil {
		t.Fatal(err)
	}
	if c.Username != "u" || c.Password != "pw9" || c.Port != "465" || c.Security != mail.ImplicitTLS {
		t.Errorf("config %+v", c)
	}

	_, err = (&MailConfig{URL: "{env.APIUSERS_TEST_UNSET}", From: "noreply@acme.example"}).resolve(repl)
	if err == nil || !strings.Contains(err.Error(), "URL is empty") {
		t.Errorf("an empty URL from the environment: %v", err)
	}
	_, err = (&MailConfig{URL: "smtp://smtp.example.com", From: "{env.APIUSERS_TEST_UNSET}"}).resolve(repl)
	if err == nil || !strings.Contains(err.Error(), "from address is required") {
		t.Errorf("an empty from from the environment: %v", err)
	}
}

// The app builds the mailer at provision without dialling, shares it
// across reloads, sends through it and counts on Caddy's metrics
// registry; the last Cleanup closes it.
func TestAppMailer(t *testing.T) {
	s := mailtest.Start(t, mailtest.Options{})
	dir := t.TempDir()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()

	lock := caddy.Duration(200 * time.Millisecond)
	newApp := func(mc *MailConfig) *App {
		t.Helper()
		a := &App{Store: &StoreConfig{Dir: dir, LockTimeout: lock}, Mail: mc}
		if err := a.Provision(ctx); err != nil {
			t.Fatalf("provision: %v", err)
		}
		if err := a.Validate(); err != nil {
			t.Fatal(err)
		}
		return a
	}

	without := newApp(nil)
	if without.Mailer() != nil {
		t.Fatal("an app without the mail option has a mailer")
	}

	// An unreachable server is fine at provision: nothing is dialled.
	unreachable := newApp(&MailConfig{URL: "smtp://127.0.0.1:1", From: "noreply@acme.example"})
	if unreachable.Mailer() == nil {
		t.Fatal("no mailer for the mail option")
	}

	mc := &MailConfig{URL: s.URL(), From: "Acme <noreply@acme.example>"}
	a := newApp(mc)
	reloaded := newApp(&MailConfig{URL: s.URL(), From: "Acme <noreply@acme.example>"})
	if a.Mailer() != reloaded.Mailer() {
		t.Fatal("a reload with the same mail option made a new mailer")
	}
	if a.Mailer() == unreachable.Mailer() {
		t.Fatal("another server shared the mailer")
	}

	families, err := ctx.GetMetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	registered := map[string]bool{}
	for _, f := range families {
		registered[f.GetName()] = true
	}
	for _, n := range []string{"apiusers_mails_sent_total", "apiusers_mails_failed_total"} {
		if !registered[n] {
			t.Errorf("metric %s not registered", n)
		}
	}

	sentBefore := counterValue(t, mailsSent.WithLabelValues("invitation"))
	failedBefore := counterValue(t, mailsFailed.WithLabelValues("password_reset"))
	link := "https://console.acme.example/invitations/accept?token=tok_moduleTest123"
	a.Mailer().Send(mail.Message{
		Kind: mail.KindInvitation, To: "bob@example.org", Language: "de",
		Workspace: "Acme", Inviter: "Alice", Link: link, Expires: time.Now().Add(time.Hour),
	})
	m := s.Next(t).Parse(t)
	if m.Subject != "Alice hat Sie zu Acme eingeladen" || m.Header.Get("From") != `"Acme" <noreply@acme.example>` {
		t.Errorf("subject %q from %q", m.Subject, m.Header.Get("From"))
	}
	if l := m.Links(); len(l) == 0 || l[0] != link || !strings.Contains(m.Text, link) {
		t.Errorf("links %v, text:\n%s", l, m.Text)
	}
	waitUntil(t, "the sent metric", func() bool {
		return counterValue(t, mailsSent.WithLabelValues("invitation")) == sentBefore+1
	})

	s.RefuseNext(550)
	reloaded.Mailer().Send(mail.Message{Kind: mail.KindPasswordReset, To: "carol@example.org", Link: link})
	waitUntil(t, "the failed metric", func() bool {
		return counterValue(t, mailsFailed.WithLabelValues("password_reset")) == failedBefore+1
	})

	// The old config goes; the reloaded one still sends through the mailer.
	shared := a.mailer
	if err := a.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if a.Mailer() != nil {
		t.Fatal("a cleaned-up app still hands out its mailer")
	}
	reloaded.Mailer().Send(mail.Message{Kind: mail.KindPasswordReset, To: "dave@example.org", Link: link})
	s.Next(t)
	// The last holder closes it: later mails are refused and counted.
	for _, app := range []*App{reloaded, unreachable, without} {
		if err := app.Cleanup(); err != nil {
			t.Fatal(err)
		}
	}
	failed := shared.Failed()
	shared.Send(mail.Message{Kind: mail.KindPasswordReset, To: "erin@example.org", Link: link})
	if shared.Failed() != failed+1 {
		t.Fatal("the mailer still takes mails after the last cleanup")
	}
	s.None(t)
}

// counterValue reads a counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// waitUntil polls cond until it holds (a bound against hangs, not a
// measurement).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAppMailProvisionErrors(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	t.Setenv("APIUSERS_TEST_BAD_SMTP", "smtp://u:s3cret@smtp.example.com:0")
	for _, mc := range []*MailConfig{
		{URL: "{env.APIUSERS_TEST_BAD_SMTP}", From: "noreply@acme.example"},
		{URL: "smtp://smtp.example.com"},
		{From: "noreply@acme.example"},
	} {
		a := &App{Store: &StoreConfig{Dir: t.TempDir()}, Mail: mc}
		err := a.Provision(ctx)
		if err == nil || !strings.HasPrefix(err.Error(), "mail: ") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: provision error %v", jsonOf(t, mc), err)
		}
		if err := a.Cleanup(); err != nil {
			t.Fatal(err)
		}
		if a.Mailer() != nil {
			t.Errorf("%s: a mailer after a failed provision", jsonOf(t, mc))
		}
	}
}
