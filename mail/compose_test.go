package mail

import (
	"strings"
	"testing"
	"time"
)

func TestComposeKeepsHeadersClean(t *testing.T) {
	from, _ := ParseFrom("Acme <noreply@acme.example>")
	raw, to, err := compose(Message{
		Kind:      KindInvitation,
		To:        "bob@example.org",
		Name:      "Bob\r\nBcc: eve@evil.test",
		Workspace: "Ops\r\nX-Evil: 1\u202e",
		Inviter:   "Zoë",
		Link:      testLink,
	}, from, time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if to != "bob@example.org" {
		t.Errorf("recipient %q", to)
	}
	s := string(raw)
	head, _, _ := strings.Cut(s, "\r\n\r\n")
	for _, line := range strings.Split(head, "\r\n") {
		name, _, ok := strings.Cut(line, ":")
		if !ok || strings.EqualFold(name, "Bcc") || strings.EqualFold(name, "X-Evil") {
			t.Errorf("header line %q", line)
		}
	}
	if strings.Contains(strings.ReplaceAll(s, "\r\n", ""), "\n") || strings.Contains(strings.ReplaceAll(s, "\r\n", ""), "\r") {
		t.Error("a bare CR or LF in the message")
	}
	v := parseMail(t, raw)
	if want := "Zoë invited you to Ops X-Evil: 1"; v.Subject != want {
		t.Errorf("subject %q, want %q", v.Subject, want)
	}
	if !strings.HasPrefix(v.Header.Get("Subject"), "=?utf-8?q?") {
		t.Errorf("non-ASCII subject not encoded: %q", v.Header.Get("Subject"))
	}
	if got := v.Header.Get("Date"); got != "Wed, 02 Jan 2030 03:04:05 +0000" {
		t.Errorf("Date %q", got)
	}
	if strings.Contains(v.Text, "\u202e") || !strings.Contains(v.Text, "Hello Bob Bcc: eve@evil.test,") {
		t.Errorf("names not flattened in the text:\n%s", v.Text)
	}
	if strings.Contains(v.Text, "works until") {
		t.Error("an expiry shown for a message without one")
	}
}

func TestCleanCutsLongNames(t *testing.T) {
	got := clean(strings.Repeat("a", 500))
	if n := len([]rune(got)); n != maxField+1 || !strings.HasSuffix(got, "…") {
		t.Errorf("clean kept %d runes", n)
	}
	if got := clean("  a \t\n b  "); got != "a b" {
		t.Errorf("clean = %q", got)
	}
}

func TestLanguageChoice(t *testing.T) {
	for tag, want := range map[string]string{"de": "de", "DE-at": "de", "de_CH": "de", "dee": "en", "en-US": "en", "": "en", "fr": "en"} {
		if got := language(tag); got != want {
			t.Errorf("language(%q) = %q, want %q", tag, got, want)
		}
	}
}
