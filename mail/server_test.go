package mail

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// smtpServer is a real SMTP server (github.com/emersion/go-smtp) on a
// free loopback port, recording every mail it accepts.
type smtpServer struct {
	t    *testing.T
	Addr string // 127.0.0.1:port
	Port string

	// Pool trusts the server's self-signed certificate (TLS variants).
	Pool *x509.CertPool

	mu       sync.Mutex
	refuse   []*smtp.SMTPError // answers to the next RCPTs, in order
	rcpts    int               // RCPT commands seen
	auths    []string          // users that tried AUTH PLAIN
	block    chan struct{}     // when set, DATA waits for it to close
	received chan received
}

// received is one accepted mail as the server saw it.
type received struct {
	From string
	To   []string
	Data []byte
	TLS  bool
	User string // the authenticated user, if any
}

type serverOptions struct {
	startTLS bool   // offer STARTTLS
	implicit bool   // TLS from the first byte
	user     string // require AUTH PLAIN with user and password
	password string
}

// startServer starts an SMTP server on 127.0.0.1 and stops it when the
// test ends.
func startServer(t *testing.T, o serverOptions) *smtpServer {
	t.Helper()
	s := &smtpServer{t: t, received: make(chan received, 100)}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		_, isTLS := c.TLSConnectionState()
		return &session{s: s, o: o, tls: isTLS}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if o.startTLS || o.implicit {
		cert, pool := selfSigned(t)
		s.Pool = pool
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		if o.implicit {
			ln = tls.NewListener(ln, srv.TLSConfig)
			srv.TLSConfig = nil // no STARTTLS inside TLS
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

// refuseNext makes the next RCPT commands fail with these answers.
func (s *smtpServer) refuseNext(errs ...*smtp.SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = append(s.refuse, errs...)
}

// blockData makes DATA wait until the returned function is called.
func (s *smtpServer) blockData() (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.block = make(chan struct{})
	b := s.block
	var once sync.Once
	return func() { once.Do(func() { close(b) }) }
}

func (s *smtpServer) rcptCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rcpts
}

func (s *smtpServer) authUsers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.auths...)
}

// next waits for the next accepted mail.
func (s *smtpServer) next() received {
	s.t.Helper()
	select {
	case r := <-s.received:
		return r
	case <-time.After(30 * time.Second):
		s.t.Fatal("no mail arrived")
		return received{}
	}
}

// none checks that no mail arrived.
func (s *smtpServer) none() {
	s.t.Helper()
	select {
	case r := <-s.received:
		s.t.Fatalf("a mail arrived for %v", r.To)
	default:
	}
}

type session struct {
	s    *smtpServer
	o    serverOptions
	tls  bool
	user string
	from string
	to   []string
}

func (x *session) AuthMechanisms() []string {
	if x.o.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (x *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		x.s.mu.Lock()
		x.s.auths = append(x.s.auths, username)
		x.s.mu.Unlock()
		if username != x.o.user || password != x.o.password {
			return smtp.ErrAuthFailed
		}
		x.user = username
		return nil
	}), nil
}

func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	if x.o.user != "" && x.user == "" {
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
		err := x.s.refuse[0]
		x.s.refuse = x.s.refuse[1:]
		return err
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
	x.s.received <- received{From: x.from, To: x.to, Data: data, TLS: x.tls, User: x.user}
	return nil
}

func (x *session) Reset()        { x.from, x.to = "", nil }
func (x *session) Logout() error { return nil }

var (
	errTryLater = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}
	errNoUser   = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
)

// selfSigned makes a certificate for 127.0.0.1 and localhost, and a pool
// that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
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
