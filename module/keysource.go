package module

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/apiusers/apiusers/admin"
)

// Where the gateway (and the admin API, see admin.go) reads a key from,
// and how it removes the key from the request.

// Key sources.
const (
	SourceBearer = "bearer" // Authorization: Bearer <key>
	SourceHeader = "header" // a request header
	SourceQuery  = "query"  // a query string parameter
	SourceCookie = "cookie" // a cookie
)

// KeySource is one place a key may be taken from.
type KeySource struct {
	// From is "bearer" (the Authorization header's Bearer credential),
	// "header", "query" or "cookie".
	From string `json:"from"`

	// Name is the header, query parameter or cookie name. Required unless
	// From is "bearer".
	Name string `json:"name,omitempty"`
}

// DefaultKeySources are used when a route names none.
var DefaultKeySources = []KeySource{{From: SourceBearer}, {From: SourceHeader, Name: "X-API-Key"}}

// keySource is a compiled KeySource.
type keySource struct {
	kind uint8
	name string // canonical header name, query parameter or cookie name
}

const (
	kindNone uint8 = iota
	kindBearer
	kindHeader
	kindQuery
	kindCookie
)

func compileSources(srcs []KeySource) ([]keySource, error) {
	if len(srcs) == 0 {
		srcs = DefaultKeySources
	}
	out := make([]keySource, 0, len(srcs))
	for _, s := range srcs {
		var ks keySource
		switch s.From {
		case SourceBearer:
			if s.Name != "" {
				return nil, errors.New("key_from bearer takes no name")
			}
			ks = keySource{kind: kindBearer, name: hdrAuthorization}
		case SourceHeader:
			ks = keySource{kind: kindHeader, name: http.CanonicalHeaderKey(s.Name)}
		case SourceQuery:
			ks = keySource{kind: kindQuery, name: s.Name}
		case SourceCookie:
			ks = keySource{kind: kindCookie, name: s.Name}
		default:
			return nil, fmt.Errorf("key_from: unknown source %q (want bearer, header, query or cookie)", s.From)
		}
		if ks.kind != kindBearer && s.Name == "" {
			return nil, fmt.Errorf("key_from %s needs a name", s.From)
		}
		out = append(out, ks)
	}
	return out, nil
}

// takeKey returns the first source holding a key, and the key ("" and a
// zero source when none does).
func (g *Gateway) takeKey(r *http.Request) (keySource, string) {
	for _, s := range g.sources {
		if k := s.value(r); k != "" {
			return s, k
		}
	}
	return keySource{}, ""
}

// value returns the key this source holds in r, or "".
func (s keySource) value(r *http.Request) string {
	switch s.kind {
	case kindBearer:
		v := r.Header[hdrAuthorization]
		if len(v) == 0 {
			return ""
		}
		return admin.BearerToken(v[0])
	case kindHeader:
		v := r.Header[s.name]
		if len(v) == 0 {
			return ""
		}
		return strings.TrimSpace(v[0])
	case kindQuery:
		return queryValue(r.URL.RawQuery, s.name)
	case kindCookie:
		c, err := r.Cookie(s.name)
		if err != nil {
			return ""
		}
		return c.Value
	}
	return ""
}

// remove deletes this source's credential from r (nothing is allocated
// when r holds none there).
func (s keySource) remove(r *http.Request) {
	switch s.kind {
	case kindBearer, kindHeader:
		delete(r.Header, s.name)
	case kindQuery:
		if !hasQueryParam(r.URL.RawQuery, s.name) {
			return
		}
		r.URL.RawQuery = removeQueryParam(r.URL.RawQuery, s.name)
		r.RequestURI = r.URL.RequestURI()
	case kindCookie:
		if _, err := r.Cookie(s.name); err != nil {
			return
		}
		removeCookie(r.Header, s.name)
	}
}

// hasQueryParam reports whether the raw query holds parameter name.
func hasQueryParam(raw, name string) bool {
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		k, _, _ := strings.Cut(part, "=")
		if queryKey(k) == name {
			return true
		}
	}
	return false
}

// identityHeaders are the headers the gateway sets for the upstream.
var identityHeaders = [...]string{hdrUserID, hdrUsername, hdrWorkspace, hdrRole, hdrKeyID}

// dropConnectionTokens removes the identity header names from the
// Connection header values conn of h (a request without such a token, the
// usual case, costs a scan and nothing else).
func dropConnectionTokens(h http.Header, conn []string) {
	named := false
	for _, v := range conn {
		if namesIdentityHeader(v) {
			named = true
			break
		}
	}
	if !named {
		return
	}
	kept := make([]string, 0, len(conn))
	for _, v := range conn {
		var b strings.Builder
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			tok = strings.TrimSpace(tok)
			if tok == "" || isIdentityHeader(tok) {
				continue
			}
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			b.WriteString(tok)
		}
		if b.Len() > 0 {
			kept = append(kept, b.String())
		}
	}
	if len(kept) == 0 {
		delete(h, "Connection")
		return
	}
	h["Connection"] = kept
}

// namesIdentityHeader reports whether a Connection header value lists an
// identity header.
func namesIdentityHeader(v string) bool {
	for v != "" {
		var tok string
		tok, v, _ = strings.Cut(v, ",")
		if isIdentityHeader(strings.TrimSpace(tok)) {
			return true
		}
	}
	return false
}

func isIdentityHeader(name string) bool {
	for _, h := range identityHeaders {
		if strings.EqualFold(name, h) {
			return true
		}
	}
	return false
}

// queryValue returns the first value of parameter name in the raw query,
// without parsing (and allocating) the whole query.
func queryValue(raw, name string) string {
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(part, "=")
		if queryKey(k) != name {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			u, err := url.QueryUnescape(v)
			if err != nil {
				return ""
			}
			v = u
		}
		return v
	}
	return ""
}

func queryKey(k string) string {
	if strings.ContainsAny(k, "%+") {
		if u, err := url.QueryUnescape(k); err == nil {
			return u
		}
	}
	return k
}

// removeQueryParam returns raw without any parameter named name.
func removeQueryParam(raw, name string) string {
	var b strings.Builder
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		k, _, _ := strings.Cut(part, "=")
		if part == "" || queryKey(k) == name {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(part)
	}
	return b.String()
}

// removeCookie deletes cookie name from the Cookie headers of h.
func removeCookie(h http.Header, name string) {
	lines := h["Cookie"]
	if len(lines) == 0 {
		return
	}
	kept := make([]string, 0, len(lines))
	for _, line := range lines {
		var b strings.Builder
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			k, _, _ := strings.Cut(part, "=")
			if part == "" || strings.TrimSpace(k) == name {
				continue
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(part)
		}
		if b.Len() > 0 {
			kept = append(kept, b.String())
		}
	}
	if len(kept) == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = kept
}
