// Package mailtest runs a real SMTP server (github.com/emersion/go-smtp) on
// a free loopback port for tests, records the mails it accepts and takes
// them apart as a mail client would. Tests of the mail package, of the
// module and of every flow that sends mail use it instead of a fake.
package mailtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"html"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	netmail "net/mail"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Options shape a Server.
type Options struct {
	StartTLS    bool   // offer STARTTLS (with a self-signed certificate)
	ImplicitTLS bool   // speak TLS from the first byte
	Username    string // when set, require AUTH PLAIN (after TLS) with these
	Password    string
}

// Server is an SMTP server on 127.0.0.1, stopped when its test ends.
type Server struct {
	Addr string // 127.0.0.1:port
	Port string

	// Pool trusts the server's self-signed certificate (TLS variants).
	Pool *x509.CertPool

	opts     Options
	mu       sync.Mutex
	refuse   []int         // codes for the next RCPT commands, in order
	rcpts    int           // RCPT commands seen
	auths    []string      // users that tried AUTH PLAIN
	block    chan struct{} // when set, DATA waits for it to close
	received chan Mail
}

// Mail is one accepted mail as the server saw it.
type Mail struct {
	From string   // envelope sender
	To   []string // envelope recipients
	Data []byte   // the message, CRLF line endings, dot-stuffing undone
	TLS  bool     // whether the connection was encrypted
	User string   // the authenticated user, if any
}

// Start starts a server and stops it when t ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	s := &Server{opts: o, received: make(chan Mail, 1000)}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		_, isTLS := c.TLSConnectionState()
		return &session{s: s, tls: isTLS}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if o.StartTLS || o.ImplicitTLS {
		cert, pool := selfSigned(t)
		s.Pool = pool
		cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
		if o.ImplicitTLS {
			ln = tls.NewListener(ln, cfg)
		} else {
			srv.TLSConfig = cfg
		}
	}
	s.Addr = ln.Addr().String()
	_, s.Port, _ = net.SplitHostPort(s.Addr)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		s.mu.Lock()
		if s.block != nil {
			select {
			case <-s.block:
			default:
				close(s.block)
			}
		}
		s.mu.Unlock()
		_ = srv.Close()
		<-done
	})
	return s
}

// URL is the server's smtp:// (or, with ImplicitTLS, smtps://) URL, with
// the credentials it requires.
func (s *Server) URL() string {
	scheme := "smtp"
	if s.opts.ImplicitTLS {
		scheme = "smtps"
	}
	creds := ""
	if s.opts.Username != "" {
		creds = s.opts.Username + ":" + s.opts.Password + "@"
	}
	return scheme + "://" + creds + s.Addr
}

// RefuseNext makes the next RCPT commands fail, one per code (451: try
// again later; 550: no such user; any 4xx or 5xx).
func (s *Server) RefuseNext(codes ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = append(s.refuse, codes...)
}

// BlockData makes DATA wait until the returned function is called (or
// the test ends).
func (s *Server) BlockData() (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.block = make(chan struct{})
	b := s.block
	var once sync.Once
	return func() { once.Do(func() { close(b) }) }
}

// Rcpts is how many RCPT commands the server has seen, refused or not.
func (s *Server) Rcpts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rcpts
}

// AuthUsers are the users that tried AUTH PLAIN, in order.
func (s *Server) AuthUsers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.auths...)
}

// Next waits (30s at most) for the next accepted mail.
func (s *Server) Next(t testing.TB) Mail {
	t.Helper()
	select {
	case m := <-s.received:
		return m
	case <-time.After(30 * time.Second):
		t.Fatal("no mail arrived")
		return Mail{}
	}
}

// None fails t when a mail is waiting.
func (s *Server) None(t testing.TB) {
	t.Helper()
	select {
	case m := <-s.received:
		t.Fatalf("a mail arrived for %v", m.To)
	default:
	}
}

type session struct {
	s    *Server
	tls  bool
	user string
	from string
	to   []string
}

func (x *session) AuthMechanisms() []string {
	if x.s.opts.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (x *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, username, password string) error {
		x.s.mu.Lock()
		x.s.auths = append(x.s.auths, username)
		x.s.mu.Unlock()
		if username != x.s.opts.Username || password != x.s.opts.Password {
			return smtp.ErrAuthFailed
		}
		x.user = username
		return nil
	}), nil
}

func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	if x.s.opts.Username != "" && x.user == "" {
		return smtp.ErrAuthRequired
	}
	x.from = from
	return nil
}

func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	x.s.rcpts++
	if len(x.s.refuse) > 0 {
		code := x.s.refuse[0]
		x.s.refuse = x.s.refuse[1:]
		return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{code / 100, 0, 0}, Message: "Refused by the test"}
	}
	x.to = append(x.to, to)
	return nil
}

func (x *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	x.s.mu.Lock()
	block := x.s.block
	x.s.mu.Unlock()
	if block != nil {
		<-block
	}
	x.s.received <- Mail{From: x.from, To: x.to, Data: data, TLS: x.tls, User: x.user}
	return nil
}

func (x *session) Reset()        { x.from, x.to = "", nil }
func (x *session) Logout() error { return nil }

// selfSigned makes a certificate for 127.0.0.1 and localhost, and a pool
// that trusts it.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "apiusers test SMTP server"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// Message is a mail taken apart as a mail client would: headers, the
// decoded subject and the two parts, quoted-printable decoded.
type Message struct {
	Header  netmail.Header
	Raw     string
	Subject string
	Types   []string // the parts' Content-Types, in order
	Text    string   // the text/plain part
	HTML    string   // the text/html part
}

// Parse takes m's data apart; it fails t when the mail is not a
// multipart/alternative a client could read.
func (m Mail) Parse(t testing.TB) Message {
	t.Helper()
	msg, err := ParseData(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// ParseData takes a raw message apart.
func ParseData(data []byte) (Message, error) {
	msg, err := netmail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return Message{}, fmt.Errorf("reading the mail: %v", err)
	}
	v := Message{Header: msg.Header, Raw: string(data)}
	if v.Subject, err = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject")); err != nil {
		return v, fmt.Errorf("decoding the subject: %v", err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		return v, fmt.Errorf("Content-Type %q (%v), want multipart/alternative", msg.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return v, fmt.Errorf("reading a part: %v", err)
		}
		body, err := io.ReadAll(p) // quoted-printable is decoded by the reader
		if err != nil {
			return v, fmt.Errorf("reading a part: %v", err)
		}
		ct := p.Header.Get("Content-Type")
		v.Types = append(v.Types, ct)
		switch ct {
		case "text/plain; charset=utf-8":
			v.Text = string(body)
		case "text/html; charset=utf-8":
			v.HTML = string(body)
		}
	}
	return v, nil
}

var hrefRE = regexp.MustCompile(`href="([^"]*)"`)

// Links are the targets of the HTML part's links, HTML-decoded: what a
// click opens.
func (m Message) Links() []string {
	var out []string
	for _, sub := range hrefRE.FindAllStringSubmatch(m.HTML, -1) {
		out = append(out, html.UnescapeString(sub[1]))
	}
	return out
}
