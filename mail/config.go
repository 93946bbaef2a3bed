package mail

import (
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/url"
	"strconv"
	"strings"
)

// Security is how a Mailer protects its SMTP connection.
type Security int

// The connection securities.
const (
	// StartTLSIfOffered upgrades with STARTTLS whenever the server offers
	// it and otherwise sends in the clear. It is the default for smtp://
	// on ports other than 587 without credentials (a local relay).
	StartTLSIfOffered Security = iota
	// StartTLSRequired upgrades with STARTTLS and refuses to send when the
	// server does not offer it: smtp:// on port 587, or with credentials.
	StartTLSRequired
	// ImplicitTLS speaks TLS from the first byte: smtps://, or port 465.
	ImplicitTLS
)

func (s Security) String() string {
	switch s {
	case StartTLSIfOffered:
		return "starttls if offered"
	case StartTLSRequired:
		return "starttls"
	case ImplicitTLS:
		return "tls"
	}
	return "security(" + strconv.Itoa(int(s)) + ")"
}

// Default ports when the URL names none.
const (
	DefaultSubmissionPort  = "587" // smtp://
	DefaultImplicitTLSPort = "465" // smtps://
)

// Config says which SMTP server a Mailer uses and who its mails are from.
// Make it with ParseConfig; Username and Password may be set afterwards
// (when they are configured apart from the URL), and Security is then
// raised to at least StartTLSRequired by the Mailer.
type Config struct {
	Host     string // host name or IP, also the name the TLS certificate must carry
	Port     string // decimal port
	Security Security
	Username string // AUTH PLAIN user; empty: no authentication
	Password string
	From     netmail.Address // envelope sender and From header
}

// Addr is host:port.
func (c Config) Addr() string { return net.JoinHostPort(c.Host, c.Port) }

// String describes the server without the password, for logs and errors.
func (c Config) String() string {
	scheme := "smtp"
	if c.Security == ImplicitTLS {
		scheme = "smtps"
	}
	u := url.URL{Scheme: scheme, Host: c.Addr()}
	if c.Username != "" {
		u.User = url.User(c.Username)
	}
	return u.String()
}

// requiredSecurity is c.Security raised for credentials: they are never
// sent over a connection that is not encrypted.
func (c Config) requiredSecurity() Security {
	if c.Security == StartTLSIfOffered && c.Username != "" {
		return StartTLSRequired
	}
	return c.Security
}

// ParseConfig reads an SMTP server URL, smtp[s]://[user:password@]host[:port],
// and the from address ("noreply@example.com" or "Example <noreply@example.com>").
//
// smtps:// and port 465 mean implicit TLS; smtp:// means STARTTLS, required
// on port 587 and whenever credentials are given, and used whenever the
// server offers it. The port defaults to 587 for smtp:// and 465 for
// smtps://. User and password are percent-decoded. Errors never repeat the
// password.
func ParseConfig(rawURL, from string) (Config, error) {
	var c Config
	if rawURL == "" {
		return c, errors.New("mail: the SMTP server URL is empty; expected smtp[s]://[user:password@]host:port")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error repeats the whole URL, password included: keep only
		// what went wrong.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return c, fmt.Errorf("mail: invalid SMTP server URL (expected smtp[s]://[user:password@]host:port): %v", err)
	}
	switch strings.ToLower(u.Scheme) {
	case "smtp":
	case "smtps":
		c.Security = ImplicitTLS
	case "":
		return c, errors.New("mail: the SMTP server URL needs a scheme: smtp:// (STARTTLS) or smtps:// (TLS)")
	default:
		return c, fmt.Errorf("mail: unsupported scheme %q in the SMTP server URL; use smtp:// (STARTTLS) or smtps:// (TLS)", u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" {
		return c, errors.New("mail: the SMTP server URL needs a host: smtp[s]://[user:password@]host:port")
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return c, errors.New("mail: the SMTP server URL must not have a path, query or fragment")
	}
	c.Host = u.Hostname()
	if c.Host == "" {
		return c, errors.New("mail: the SMTP server URL needs a host: smtp[s]://[user:password@]host:port")
	}
	c.Port = u.Port()
	if c.Port == "" {
		c.Port = DefaultSubmissionPort
		if c.Security == ImplicitTLS {
			c.Port = DefaultImplicitTLSPort
		}
	}
	if n, err := strconv.Atoi(c.Port); err != nil || n < 1 || n > 65535 {
		return c, fmt.Errorf("mail: invalid port %q in the SMTP server URL", c.Port)
	}
	switch {
	case c.Port == DefaultImplicitTLSPort:
		c.Security = ImplicitTLS
	case c.Port == DefaultSubmissionPort && c.Security == StartTLSIfOffered:
		c.Security = StartTLSRequired
	}
	if u.User != nil {
		c.Username = u.User.Username()
		pw, ok := u.User.Password()
		if c.Username == "" || !ok {
			return c, errors.New("mail: the SMTP server URL needs both user and password, as user:password@, or neither")
		}
		c.Password = pw
		c.Security = c.requiredSecurity()
	}
	if c.From, err = ParseFrom(from); err != nil {
		return c, err
	}
	return c, nil
}

// ParseFrom reads a from address: "noreply@example.com" or
// "Example <noreply@example.com>".
func ParseFrom(from string) (netmail.Address, error) {
	if strings.TrimSpace(from) == "" {
		return netmail.Address{}, errors.New("mail: a from address is required, such as noreply@example.com")
	}
	if strings.ContainsAny(from, "\r\n") {
		return netmail.Address{}, errors.New("mail: the from address must be on one line")
	}
	a, err := netmail.ParseAddress(from)
	if err != nil {
		return netmail.Address{}, fmt.Errorf("mail: invalid from address %q: %v", from, err)
	}
	at := strings.LastIndexByte(a.Address, '@')
	if at <= 0 || at == len(a.Address)-1 {
		return netmail.Address{}, fmt.Errorf("mail: invalid from address %q: no domain", from)
	}
	return *a, nil
}
