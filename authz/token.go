package authz

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/golang-jwt/jwt/v5"
)

// MinSecretLen is the shortest HMAC signing secret accepted.
const MinSecretLen = 32

// Claims are the verified claims of an API key.
type Claims struct {
	Issuer    string
	UserID    string // sub
	Workspace string // ws
	KeyID     string // jti
	IssuedAt  int64  // iat, Unix seconds
	ExpiresAt int64  // exp, Unix seconds; 0 when the key does not expire
	NotBefore int64  // nbf, Unix seconds; 0 when the key is valid from the start
}

// Expired reports whether the key has expired at t.
func (c *Claims) Expired(t time.Time) bool {
	return c.ExpiresAt != 0 && t.Unix() >= c.ExpiresAt
}

// NotYetValid reports whether the key's nbf lies after t.
func (c *Claims) NotYetValid(t time.Time) bool {
	return c.NotBefore != 0 && t.Unix() < c.NotBefore
}

type jwtClaims struct {
	Issuer    string `json:"iss"`
	Subject   string `json:"sub"`
	Workspace string `json:"ws"`
	ID        string `json:"jti"`
	IssuedAt  int64  `json:"iat"`
	ExpiresAt int64  `json:"exp,omitempty"`
	NotBefore int64  `json:"nbf,omitempty"`
}

// The jwt.Claims methods: validation of exp and nbf is done here rather
// than by the library so that "expired" is told apart from "bad".
func (c *jwtClaims) GetExpirationTime() (*jwt.NumericDate, error) { return nil, nil }
func (c *jwtClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return nil, nil }
func (c *jwtClaims) GetNotBefore() (*jwt.NumericDate, error)      { return nil, nil }
func (c *jwtClaims) GetIssuer() (string, error)                   { return c.Issuer, nil }
func (c *jwtClaims) GetSubject() (string, error)                  { return c.Subject, nil }
func (c *jwtClaims) GetAudience() (jwt.ClaimStrings, error)       { return nil, nil }

// Errors of Verify; all of them map to 401.
var (
	ErrKeyMalformed = errors.New("malformed key")
	ErrKeySignature = errors.New("invalid key signature")
)

// The signing algorithms: HMAC with SHA-256, SHA-384 or SHA-512.
var signingMethods = map[string]*jwt.SigningMethodHMAC{
	"HS256": jwt.SigningMethodHS256,
	"HS384": jwt.SigningMethodHS384,
	"HS512": jwt.SigningMethodHS512,
}

// DefaultSigningAlgorithm is the algorithm of a Signer configured with
// none.
const DefaultSigningAlgorithm = "HS256"

// SigningAlgorithms names the algorithms ValidSigningAlgorithm takes, for
// messages.
const SigningAlgorithms = "HS256, HS384 or HS512"

// ValidSigningAlgorithm reports whether a Signer signs with alg.
func ValidSigningAlgorithm(alg string) bool {
	_, ok := signingMethods[alg]
	return ok
}

// Signer signs and verifies API keys with an HMAC secret. The algorithm is
// pinned: a key whose header names any other algorithm (including "none") is
// rejected before its signature is looked at. A key has one accepted
// spelling: its parts are strict unpadded base64url (no trailing bits set,
// so the last character of the signature has no variants).
type Signer struct {
	method  *jwt.SigningMethodHMAC
	issuer  string
	kid     string
	secrets map[string][]byte // kid -> secret (current, then retired ones)
	// headers maps the encoded header segment this signer writes for each
	// of its kids to that kid's verifier: a key is verified by looking its
	// header up, not by decoding it.
	headers map[string]*keyVerifier
}

// keyVerifier checks signatures made with one secret; its HMAC states are
// reused across calls.
type keyVerifier struct {
	macs sync.Pool // of hash.Hash
}

// SignerConfig configures a Signer.
type SignerConfig struct {
	// Secret is the current signing secret, at least MinSecretLen bytes.
	Secret []byte
	// Algorithm is one of SigningAlgorithms. Default: HS256.
	Algorithm string
	// Issuer is the iss claim. Default: "apiusers".
	Issuer string
	// Previous secrets still accepted for verification (key rotation).
	Previous [][]byte
}

// NewSigner makes a Signer.
func NewSigner(cfg SignerConfig) (*Signer, error) {
	if len(cfg.Secret) < MinSecretLen {
		return nil, fmt.Errorf("signing key must be at least %d bytes, got %d", MinSecretLen, len(cfg.Secret))
	}
	alg := cfg.Algorithm
	if alg == "" {
		alg = DefaultSigningAlgorithm
	}
	m, ok := signingMethods[alg]
	if !ok {
		return nil, fmt.Errorf("unsupported signing algorithm %q (want %s)", cfg.Algorithm, SigningAlgorithms)
	}
	iss := cfg.Issuer
	if iss == "" {
		iss = "apiusers"
	}
	s := &Signer{
		method:  m,
		issuer:  iss,
		kid:     SigningKeyID(cfg.Secret),
		secrets: map[string][]byte{},
	}
	s.secrets[s.kid] = append([]byte(nil), cfg.Secret...)
	for _, p := range cfg.Previous {
		if len(p) < MinSecretLen {
			return nil, fmt.Errorf("previous signing key must be at least %d bytes", MinSecretLen)
		}
		s.secrets[SigningKeyID(p)] = append([]byte(nil), p...)
	}
	s.headers = make(map[string]*keyVerifier, len(s.secrets))
	for kid, secret := range s.secrets {
		t := jwt.New(s.method)
		t.Header["kid"] = kid
		signing, err := t.SigningString()
		if err != nil {
			return nil, fmt.Errorf("encoding the key header: %w", err)
		}
		head, _, _ := strings.Cut(signing, ".")
		hashFn := s.method.Hash.New
		s.headers[head] = &keyVerifier{macs: sync.Pool{New: func() any { return hmac.New(hashFn, secret) }}}
	}
	return s, nil
}

// parseSigned reads claims in the one form Sign writes them (json.Marshal
// of jwtClaims: these fields in this order, exp and nbf only when set,
// strings without escapes), without encoding/json's reflection; it reports
// false for anything else, which Verify then decodes with encoding/json.
// It runs only on a payload whose signature was checked. The strings it
// sets are parts of b (no copies).
func (c *jwtClaims) parseSigned(b string) bool {
	var ok bool
	if b, ok = strings.CutPrefix(b, `{"iss":"`); !ok {
		return false
	}
	if c.Issuer, b, ok = cutString(b); !ok {
		return false
	}
	if b, ok = strings.CutPrefix(b, `,"sub":"`); !ok {
		return false
	}
	if c.Subject, b, ok = cutString(b); !ok {
		return false
	}
	if b, ok = strings.CutPrefix(b, `,"ws":"`); !ok {
		return false
	}
	if c.Workspace, b, ok = cutString(b); !ok {
		return false
	}
	if b, ok = strings.CutPrefix(b, `,"jti":"`); !ok {
		return false
	}
	if c.ID, b, ok = cutString(b); !ok {
		return false
	}
	if b, ok = strings.CutPrefix(b, `,"iat":`); !ok {
		return false
	}
	if c.IssuedAt, b, ok = cutInt(b); !ok {
		return false
	}
	if rest, found := strings.CutPrefix(b, `,"exp":`); found {
		if c.ExpiresAt, b, ok = cutInt(rest); !ok {
			return false
		}
	}
	if rest, found := strings.CutPrefix(b, `,"nbf":`); found {
		if c.NotBefore, b, ok = cutInt(rest); !ok {
			return false
		}
	}
	return b == "}"
}

// cutString reads a string's characters up to its closing quote; a string
// with an escape, a control character or anything but ASCII is not read
// here.
func cutString(b string) (string, string, bool) {
	for i := 0; i < len(b); i++ {
		switch ch := b[i]; {
		case ch == '"':
			return b[:i], b[i+1:], true
		case ch == '\\' || ch < 0x20 || ch >= 0x80:
			return "", b, false
		}
	}
	return "", b, false
}

// cutInt reads a positive integer without leading zeros, as json.Marshal
// writes one.
func cutInt(b string) (int64, string, bool) {
	var n int64
	i := 0
	for ; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
		if i == 18 || (i > 0 && n == 0) {
			return 0, b, false
		}
		n = n*10 + int64(b[i]-'0')
	}
	if i == 0 {
		return 0, b, false
	}
	return n, b[i:], true
}

// equalConstantTime reports whether b and s hold the same bytes (of equal
// length), in time that depends only on the length.
func equalConstantTime(b []byte, s string) bool {
	var v byte
	for i := range b {
		v |= b[i] ^ s[i]
	}
	return subtle.ConstantTimeByteEq(v, 0) == 1
}

// SigningKeyID derives the public key id (kid) of a secret: a truncated
// SHA-256 under a domain prefix, which reveals nothing usable about it.
func SigningKeyID(secret []byte) string {
	h := hmac.New(sha256.New, []byte("apiusers signing key id"))
	h.Write(secret)
	return "sk_" + hex.EncodeToString(h.Sum(nil)[:8])
}

// derive returns a secret for another use than signing keys, made from
// the current signing secret under label (HMAC-SHA256): it reveals nothing
// of the secret, and every instance sharing the secret derives the same.
func (s *Signer) derive(label string) []byte {
	h := hmac.New(sha256.New, s.secrets[s.kid])
	h.Write([]byte(label))
	return h.Sum(nil)
}

// KeyID is the kid of the current signing secret.
func (s *Signer) KeyID() string { return s.kid }

// Sign makes the key for c. Signing the same claims with the same secret
// yields the same string, which is how Reveal shows a key again.
func (s *Signer) Sign(c Claims, kid string) (string, error) {
	if kid == "" {
		kid = s.kid
	}
	secret, ok := s.secrets[kid]
	if !ok {
		return "", fmt.Errorf("signing key %s is no longer configured", kid)
	}
	t := jwt.NewWithClaims(s.method, &jwtClaims{
		Issuer: s.issuer, Subject: c.UserID, Workspace: c.Workspace, ID: c.KeyID,
		IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt, NotBefore: c.NotBefore,
	})
	t.Header["kid"] = kid
	return t.SignedString(secret)
}

// Verify checks the key's algorithm, kid, signature and claims, and returns
// its claims. Time is not checked here (see Claims.Expired and
// Claims.NotYetValid). Errors wrap
// ErrKeyMalformed or ErrKeySignature and never contain the key.
//
// A key is accepted only in the spelling Sign gives it: its header must be
// the one this signer writes for one of its kids (which pins the algorithm:
// "none" and any other algorithm are refused before the signature is looked
// at), and its signature segment must be the canonical encoding of the
// HMAC (base64url without padding or stray bits), compared in constant
// time.
func (s *Signer) Verify(key string) (*Claims, error) {
	if len(key) > 4096 {
		return nil, ErrKeyMalformed
	}
	head, rest, ok1 := strings.Cut(key, ".")
	payload, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || head == "" || payload == "" || strings.IndexByte(sig, '.') >= 0 {
		return nil, ErrKeyMalformed
	}
	kv := s.headers[head]
	if kv == nil {
		// Not a header of ours: say whether it is one at all.
		var h map[string]any
		raw, err := base64.RawURLEncoding.Strict().DecodeString(head)
		if err != nil || json.Unmarshal(raw, &h) != nil {
			return nil, ErrKeyMalformed
		}
		return nil, ErrKeySignature
	}
	signed := key[:len(head)+1+len(payload)]
	mac := kv.macs.Get().(hash.Hash)
	mac.Reset()
	// A read-only view of the string: hash.Hash does not keep or change
	// what it is given, and a copy would be an allocation per key.
	mac.Write(unsafe.Slice(unsafe.StringData(signed), len(signed)))
	var sum [sha512.Size]byte
	var enc [88]byte // base64url of the largest HMAC, 64 bytes
	want := mac.Sum(sum[:0])
	kv.macs.Put(mac)
	n := base64.RawURLEncoding.EncodedLen(len(want))
	base64.RawURLEncoding.Encode(enc[:n], want)
	if len(sig) != n || !equalConstantTime(enc[:n], sig) {
		return nil, ErrKeySignature
	}
	// The payload is decoded on the stack, and copied once into the one
	// string the claims' strings are parts of.
	var buf [512]byte
	var raw []byte
	if n := base64.RawURLEncoding.DecodedLen(len(payload)); n <= len(buf) {
		raw = buf[:n]
	} else {
		raw = make([]byte, n)
	}
	n, err := base64.RawURLEncoding.Strict().Decode(raw, unsafe.Slice(unsafe.StringData(payload), len(payload)))
	if err != nil {
		return nil, ErrKeyMalformed
	}
	text := string(raw[:n])
	var jc jwtClaims
	if !jc.parseSigned(text) {
		// (A copy of its own: buf and jc stay on the stack.)
		var dj jwtClaims
		if err := json.Unmarshal([]byte(text), &dj); err != nil {
			return nil, ErrKeyMalformed
		}
		jc = dj
	}
	if jc.Issuer != s.issuer || !strings.HasPrefix(jc.Subject, "usr_") ||
		!(strings.HasPrefix(jc.ID, "key_") || strings.HasPrefix(jc.ID, "ses_")) || !ValidWorkspaceID(jc.Workspace) || jc.IssuedAt <= 0 {
		return nil, ErrKeyMalformed
	}
	return &Claims{
		Issuer: s.issuer, UserID: jc.Subject, Workspace: jc.Workspace, KeyID: jc.ID,
		IssuedAt: jc.IssuedAt, ExpiresAt: jc.ExpiresAt, NotBefore: jc.NotBefore,
	}, nil
}
