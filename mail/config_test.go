package mail

import (
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		url, host, port, user, password string
		security                        Security
	}{
		{url: "smtp://mail.example.com:587", host: "mail.example.com", port: "587", security: StartTLSRequired},
		{url: "smtp://mail.example.com", host: "mail.example.com", port: "587", security: StartTLSRequired},
		{url: "smtp://localhost:1025", host: "localhost", port: "1025", security: StartTLSIfOffered},
		{url: "SMTP://relay:25", host: "relay", port: "25", security: StartTLSIfOffered},
		{url: "smtp://u:pw9@relay:25", host: "relay", port: "25", user: "u", password: "pw9", security: StartTLSRequired},
		{url: "smtp://apikey:p%40ss%3Aw%2Frd@smtp.example.com:587", host: "smtp.example.com", port: "587", user: "apikey", password: "p@ss:w/rd", security: StartTLSRequired},
		{url: "smtps://mail.example.com", host: "mail.example.com", port: "465", security: ImplicitTLS},
		{url: "smtps://u:pw9@mail.example.com:2465", host: "mail.example.com", port: "2465", user: "u", password: "pw9", security: ImplicitTLS},
		{url: "smtp://mail.example.com:465", host: "mail.example.com", port: "465", security: ImplicitTLS},
		{url: "smtp://[::1]:2525/", host: "::1", port: "2525", security: StartTLSIfOffered},
	} {
		c, err := ParseConfig(tc.url, "noreply@example.com")
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if c.Host != tc.host || c.Port != tc.port || c.Username != tc.user || c.Password != tc.password || c.Security != tc.security {
			t.Errorf("%s: got %+v", tc.url, c)
		}
		if c.From.Address != "noreply@example.com" {
			t.Errorf("%s: from %+v", tc.url, c.From)
		}
		if tc.password != "" && strings.Contains(c.String(), tc.password) {
			t.Errorf("%s: String() %q shows the password", tc.url, c.String())
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct{ url, from, want string }{
		{"", "a@example.com", "URL is empty"},
		{"http://u:s3cret@mail.example.com", "a@example.com", `unsupported scheme "http"`},
		{"mail.example.com:587", "a@example.com", "unsupported scheme"},
		{"//mail.example.com:587", "a@example.com", "needs a scheme"},
		{"smtp://", "a@example.com", "needs a host"},
		{"smtp://u:s3cret@:587", "a@example.com", "needs a host"},
		{"smtp://u:s3cret@mail.example.com:abc", "a@example.com", "invalid SMTP server URL"},
		{"smtp://u:s3cret@mail.example.com:0", "a@example.com", `invalid port "0"`},
		{"smtp://u:s3cret@mail.example.com:70000", "a@example.com", `invalid port "70000"`},
		{"smtp://u:s3cret@mail.example.com:587/inbox", "a@example.com", "must not have a path"},
		{"smtp://mail.example.com:587?tls=no", "a@example.com", "must not have a path, query"},
		{"smtp://user@mail.example.com:587", "a@example.com", "both user and password"},
		{"smtp://:s3cret@mail.example.com:587", "a@example.com", "both user and password"},
		{"smtp://u:s3cret{x@mail.example.com:587", "a@example.com", "invalid SMTP server URL"},
		{"smtp://mail.example.com:587", "", "from address is required"},
		{"smtp://u:s3cret@mail.example.com:587", "not an address", `invalid from address "not an address"`},
		{"smtp://mail.example.com:587", "noreply@", "invalid from address"},
		{"smtp://mail.example.com:587", "a@example.com\r\nBcc: eve@evil.test", "on one line"},
	} {
		_, err := ParseConfig(tc.url, tc.from)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseConfig(%q, %q) = %v, want an error with %q", tc.url, tc.from, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("ParseConfig(%q): the error %q repeats the password", tc.url, err)
		}
	}
}

func TestParseFromWithName(t *testing.T) {
	a, err := ParseFrom(`Acme Plattform <noreply@acme.example>`)
	if err != nil || a.Name != "Acme Plattform" || a.Address != "noreply@acme.example" {
		t.Fatalf("ParseFrom = %+v, %v", a, err)
	}
}
