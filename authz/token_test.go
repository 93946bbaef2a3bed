package authz

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func testSigner(t testing.TB, secret string) *Signer {
	t.Helper()
	s, err := NewSigner(SignerConfig{Secret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const secretA = "0123456789abcdef0123456789abcdef"
const secretB = "fedcba9876543210fedcba9876543210"

func TestSignerRoundTripAndDeterminism(t *testing.T) {
	t.Parallel()
	s := testSigner(t, secretA)
	c := Claims{UserID: "usr_1", Workspace: "acme", KeyID: "key_1", IssuedAt: 1700000000}
	k1, err := s.Sign(c, "")
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := s.Sign(c, s.KeyID())
	if k1 != k2 {
		t.Fatal("signing the same claims twice gave two keys; reveal would not return the created key")
	}
	got, err := s.Verify(k1)
	if err != nil {
		t.Fatal(err)
	}
	if got.UserID != "usr_1" || got.Workspace != "acme" || got.KeyID != "key_1" || got.ExpiresAt != 0 || got.Issuer != "apiusers" {
		t.Fatalf("claims = %+v", got)
	}
	if strings.Contains(decodePart(t, k1, 1), `"exp"`) {
		t.Fatal("a key without expiry carries exp")
	}
	if !strings.Contains(decodePart(t, k1, 0), s.KeyID()) {
		t.Fatal("header has no kid")
	}
}

func decodePart(t *testing.T, key string, i int) string {
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(key, ".")[i])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSignerRejects(t *testing.T) {
	t.Parallel()
	s := testSigner(t, secretA)
	good, _ := s.Sign(Claims{UserID: "usr_1", Workspace: "acme", KeyID: "key_1", IssuedAt: 1}, "")
	other, _ := testSigner(t, secretB).Sign(Claims{UserID: "usr_1", Workspace: "acme", KeyID: "key_1", IssuedAt: 1}, "")
	parts := strings.Split(good, ".")
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"apiusers","sub":"usr_2","ws":"acme","jti":"key_1","iat":1}`))
	tampered := parts[0] + "." + payload + "." + parts[2]
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"`+s.KeyID()+`","typ":"JWT"}`)) + "." + parts[1] + "."
	// An HS512 key signed with the right secret: algorithm switching.
	h512 := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS512","kid":"` + s.KeyID() + `","typ":"JWT"}`))
	mac := hmac.New(sha256.New, []byte(secretA))
	mac.Write([]byte(h512 + "." + parts[1]))
	switched := h512 + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	for name, tc := range map[string]struct {
		key  string
		want error
	}{
		"garbage":        {"garbage", ErrKeyMalformed},
		"three dots":     {"a.b.c", ErrKeyMalformed},
		"tampered":       {tampered, ErrKeySignature},
		"other secret":   {other, ErrKeySignature},
		"alg none":       {none, ErrKeySignature},
		"alg switching":  {switched, ErrKeySignature},
		"truncated sig":  {good[:len(good)-4], ErrKeySignature},
		"empty segments": {"..", ErrKeyMalformed},
		// The same signature bytes spelled otherwise: stray low bits in
		// the last character, padding, the standard alphabet.
		"stray bits": {good[:len(good)-1] + flipLowBit(good[len(good)-1:]), ErrKeySignature},
		"padding":    {good + "=", ErrKeySignature},
		"std base64": {parts[0] + "." + parts[1] + "." + base64.RawStdEncoding.EncodeToString(mustDecode(t, parts[2])), ErrKeySignature},
		"four parts": {good + ".x", ErrKeyMalformed},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := s.Verify(tc.key)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, tc.want) && !(tc.want == ErrKeySignature && errors.Is(err, ErrKeyMalformed)) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if strings.Contains(err.Error(), tc.key) && len(tc.key) > 3 {
				t.Fatal("error echoes the key")
			}
		})
	}
}

// flipLowBit returns the base64url character whose value differs from c's
// in the lowest bit.
func flipLowBit(c string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	return string(alphabet[strings.Index(alphabet, c)^1])
}

func mustDecode(t *testing.T, s string) []byte {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Verify accepts what Sign makes with each algorithm, and the same claims
// come back.
func TestSignerAlgorithms(t *testing.T) {
	for _, alg := range []string{"HS256", "HS384", "HS512"} {
		s, err := NewSigner(SignerConfig{Secret: []byte(secretA), Algorithm: alg})
		if err != nil {
			t.Fatal(err)
		}
		c := Claims{Issuer: "apiusers", UserID: "usr_1", Workspace: "acme", KeyID: "key_1", IssuedAt: 1700000000, ExpiresAt: 1800000000}
		k, err := s.Sign(c, "")
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Verify(k)
		if err != nil || *got != c {
			t.Fatalf("%s: Verify = %+v, %v; want %+v", alg, got, err, c)
		}
		other, _ := NewSigner(SignerConfig{Secret: []byte(secretA), Algorithm: map[string]string{"HS256": "HS384", "HS384": "HS512", "HS512": "HS256"}[alg]})
		if _, err := other.Verify(k); !errors.Is(err, ErrKeySignature) {
			t.Fatalf("a %s key is not refused by a signer pinned to another algorithm: %v", alg, err)
		}
	}
}

func TestSignerConfig(t *testing.T) {
	t.Parallel()
	if _, err := NewSigner(SignerConfig{Secret: []byte("short")}); err == nil {
		t.Fatal("short secret accepted")
	}
	if _, err := NewSigner(SignerConfig{Secret: []byte(secretA), Algorithm: "RS256"}); err == nil {
		t.Fatal("RS256 accepted for an HMAC signer")
	}
	// Rotation: keys signed with a previous secret still verify.
	old := testSigner(t, secretB)
	k, _ := old.Sign(Claims{UserID: "usr_1", Workspace: "w", KeyID: "key_1", IssuedAt: 1}, "")
	s, err := NewSigner(SignerConfig{Secret: []byte(secretA), Previous: [][]byte{[]byte(secretB)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(k); err != nil {
		t.Fatalf("previous secret not accepted: %v", err)
	}
}

func TestClaimsExpired(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	if (&Claims{}).Expired(now) {
		t.Fatal("no exp means no expiry")
	}
	if !(&Claims{ExpiresAt: 1000}).Expired(now) || (&Claims{ExpiresAt: 1001}).Expired(now) {
		t.Fatal("exp boundary wrong")
	}
}

func TestClaimsNotYetValid(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	if (&Claims{}).NotYetValid(now) {
		t.Fatal("no nbf means valid from the start")
	}
	if !(&Claims{NotBefore: 1001}).NotYetValid(now) || (&Claims{NotBefore: 1000}).NotYetValid(now) {
		t.Fatal("nbf boundary wrong")
	}
	s := testSigner(t, secretA)
	k, err := s.Sign(Claims{UserID: "usr_1", Workspace: "acme", KeyID: "key_1", IssuedAt: 1, NotBefore: 1001}, "")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := s.Verify(k)
	if err != nil || cl.NotBefore != 1001 {
		t.Fatalf("nbf lost: %+v %v", cl, err)
	}
}

// TestSignerOneSpelling: any other spelling of a key's parts (unused
// trailing bits set, padding) is refused.
func TestSignerOneSpelling(t *testing.T) {
	t.Parallel()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for _, alg := range []string{"HS256", "HS384", "HS512"} {
		s, err := NewSigner(SignerConfig{Secret: []byte(secretA), Algorithm: alg})
		if err != nil {
			t.Fatal(err)
		}
		key, _ := s.Sign(Claims{UserID: "usr_1", Workspace: "acme", KeyID: "key_1", IssuedAt: 1700000000}, "")
		if _, err := s.Verify(key); err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(key, ".")
		variants := 0
		for i, p := range parts {
			if len(p)%4 == 0 {
				continue // no unused bits in this part
			}
			unused := map[int]int{2: 15, 3: 3}[len(p)%4]
			c := strings.IndexByte(alphabet, p[len(p)-1])
			for extra := 1; extra <= unused; extra++ {
				alt := append([]string(nil), parts...)
				alt[i] = p[:len(p)-1] + string(alphabet[c|extra])
				variant := strings.Join(alt, ".")
				if b1, _ := base64.RawURLEncoding.DecodeString(alt[i]); string(b1) != decodeLoose(t, p) {
					continue
				}
				variants++
				if _, err := s.Verify(variant); err == nil {
					t.Errorf("%s: part %d spelled with trailing bits %d verifies", alg, i, extra)
				}
			}
			padded := append([]string(nil), parts...)
			padded[i] = p + strings.Repeat("=", 4-len(p)%4)
			if _, err := s.Verify(strings.Join(padded, ".")); err == nil {
				t.Errorf("%s: part %d padded verifies", alg, i)
			}
		}
		if variants == 0 {
			t.Errorf("%s: no variant spelling was tried", alg)
		}
		// encoding/base64 skips line breaks: they are another spelling too.
		for _, br := range []string{"\n", "\r", "\r\n"} {
			if _, err := s.Verify(key[:10] + br + key[10:]); err == nil {
				t.Errorf("%s: a key with %q in it verifies", alg, br)
			}
		}
	}
}

func decodeLoose(t *testing.T, s string) string {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The claims reader of Verify reads what Sign writes, and anything it
// reads it reads as encoding/json does.
func TestParseSignedMatchesJSON(t *testing.T) {
	for _, c := range []Claims{
		{Issuer: "apiusers", UserID: "usr_1", Workspace: "acme", KeyID: "key_1", IssuedAt: 1700000000},
		{Issuer: "apiusers", UserID: "usr_1", Workspace: "acme", KeyID: "ses_1", IssuedAt: 1700000000, ExpiresAt: 1800000000},
		{Issuer: "apiusers", UserID: "usr_1", Workspace: "a-b", KeyID: "key_1", IssuedAt: 1, ExpiresAt: 2, NotBefore: 3},
		{Issuer: "apiusers", UserID: "usr_1", Workspace: "acme", KeyID: "key_1", IssuedAt: 1700000000, NotBefore: 1700000001},
	} {
		b, err := json.Marshal(&jwtClaims{Issuer: c.Issuer, Subject: c.UserID, Workspace: c.Workspace, ID: c.KeyID, IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt, NotBefore: c.NotBefore})
		if err != nil {
			t.Fatal(err)
		}
		var fast jwtClaims
		if !fast.parseSigned(string(b)) {
			t.Fatalf("%s: not read", b)
		}
		var slow jwtClaims
		if err := json.Unmarshal(b, &slow); err != nil || fast != slow {
			t.Fatalf("%s: read %+v, encoding/json %+v (%v)", b, fast, slow, err)
		}
	}
	for _, b := range []string{
		`{"iss":"a\u003cb","sub":"usr_1","ws":"w","jti":"key_1","iat":1}`,
		`{"sub":"usr_1","iss":"a","ws":"w","jti":"key_1","iat":1}`,
		`{"iss":"a","sub":"usr_1","ws":"w","jti":"key_1","iat":01}`,
		`{"iss":"a","sub":"usr_1","ws":"w","jti":"key_1","iat":1} `,
		`{"iss":"a","sub":"usr_1","ws":"w","jti":"key_1","iat":-1}`,
		`{"iss":"a","sub":"usr_1","ws":"w","jti":"key_1","iat":1,"exp":2,"exp":3}`,
		`{"iss":"a","sub":"usr_1","ws":"w","jti":"key_1","iat":99999999999999999999}`,
	} {
		var c jwtClaims
		if c.parseSigned(b) {
			t.Errorf("%s: read by the fast reader, which must leave it to encoding/json", b)
		}
	}
}

func FuzzParseSigned(f *testing.F) {
	f.Add([]byte(`{"iss":"apiusers","sub":"usr_1","ws":"acme","jti":"key_1","iat":1700000000,"exp":1800000000,"nbf":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast jwtClaims
		if !fast.parseSigned(string(b)) {
			return
		}
		var slow jwtClaims
		if err := json.Unmarshal(b, &slow); err != nil || fast != slow {
			t.Fatalf("%q: read %+v, encoding/json %+v (%v)", b, fast, slow, err)
		}
	})
}
