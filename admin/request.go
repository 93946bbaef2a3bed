package admin

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/apiusers/apiusers/authz"
)

// MaxBodyBytes is the largest request body accepted (1 MiB); a larger one
// is answered 413.
const MaxBodyBytes = 1 << 20

// MaxPublicBodyBytes is the largest body of a public POST (sign-in,
// accepting an invitation, resets), which anyone may send: 8 KiB holds
// every field those take many times over.
const MaxPublicBodyBytes = 8 << 10

// decodeBody decodes the JSON request body into v: at most MaxBodyBytes,
// one JSON value with no trailing data, no field v does not have, every
// member spelled exactly as its field and given once (checkMembers). An
// empty body leaves v as it is when emptyOK, else it is a 400. A
// Content-Type, when given, must be application/json or a +json type
// (parameters such as charset are ignored); otherwise 415.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, emptyOK bool) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && r.ContentLength != 0 {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return &requestError{status: http.StatusUnsupportedMediaType, field: "Content-Type",
				detail: "request body must be application/json"}
		}
	}
	if r.ContentLength > MaxBodyBytes {
		return &http.MaxBytesError{Limit: MaxBodyBytes}
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("", "reading the request body failed")
	}
	if len(bytes.TrimSpace(data)) > 0 {
		if err := checkMembers(data, reflect.TypeOf(v)); err != nil {
			return err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			if emptyOK {
				return nil
			}
			return badRequest("", "request body is empty; a JSON object is expected")
		}
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("", "malformed JSON: data after the JSON object")
	}
	return nil
}

// jsonError turns a decoding error into a 400 whose detail never repeats a
// value of the body (it might hold a key).
func jsonError(err error) error {
	var mbe *http.MaxBytesError
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var terr *time.ParseError
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.As(err, &syn):
		return badRequest("", "malformed JSON at byte "+strconv.FormatInt(syn.Offset, 10))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("", "malformed JSON: the body ends too early")
	case errors.As(err, &typ):
		if typ.Field == "" {
			return badRequest("", "request body must be a JSON object")
		}
		return badRequest(typ.Field, typ.Field+": must be "+jsonKind(typ.Type))
	case errors.As(err, &terr):
		return badRequest("", "a time is not in RFC 3339 format")
	}
	if name, ok := strings.CutPrefix(err.Error(), `json: unknown field "`); ok {
		name = strings.TrimSuffix(name, `"`)
		if len(name) > 64 {
			name = name[:64] + "…"
		}
		return badRequest(name, "unknown field "+strconv.Quote(name))
	}
	return badRequest("", "malformed JSON body")
}

// jsonKind names the JSON type expected for Go type t.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "of another type"
}

// queryParam returns query parameter name, or a 400 when it is given more
// than once.
func queryParam(q url.Values, name string) (string, error) {
	vs := q[name]
	switch len(vs) {
	case 0:
		return "", nil
	case 1:
		return vs[0], nil
	}
	return "", badRequest(name, name+": given more than once")
}

// pageOf reads `limit` (default 50, 1 to 500; anything else is a 400) and
// `cursor` (opaque, checked by the service).
func pageOf(q url.Values) (authz.Page, error) {
	p := authz.Page{Limit: authz.DefaultPageSize}
	s, err := queryParam(q, "limit")
	if err != nil {
		return p, err
	}
	if s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > authz.MaxPageSize {
			return p, badRequest("limit", "limit: must be a whole number from 1 to "+strconv.Itoa(authz.MaxPageSize))
		}
		p.Limit = n
	}
	if p.Cursor, err = queryParam(q, "cursor"); err != nil {
		return p, err
	}
	return p, nil
}

// list is the body of every list answer. NextCursor is omitted on the last
// page.
type list[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// newList makes a list answer; Items is never null.
func newList[T any](items []T, next string) list[T] {
	if items == nil {
		items = []T{}
	}
	return list[T]{Items: items, NextCursor: next}
}

// etag is the strong entity tag of a resource version.
func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// contentETag is a strong entity tag made from a representation, for
// resources without a version.
func contentETag(body []byte) string {
	sum := sha256.Sum256(body)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}

// ifMatch is a parsed If-Match header.
type ifMatch struct {
	any      bool    // absent, or "*": no condition on the version
	versions []int64 // the versions listed (weak or foreign tags left out)
}

// matches reports whether version satisfies the condition.
func (m ifMatch) matches(version int64) bool {
	if m.any {
		return true
	}
	for _, v := range m.versions {
		if v == version {
			return true
		}
	}
	return false
}

// parseIfMatch reads If-Match. A header that is not "*" or a list of entity
// tags is a 400; tags that cannot name a version of ours (weak tags, which
// never match strongly, or non-numeric ones) are kept out of versions, so
// they end in a 412.
func parseIfMatch(r *http.Request) (ifMatch, error) {
	vals := r.Header.Values("If-Match")
	if len(vals) == 0 {
		return ifMatch{any: true}, nil
	}
	s := strings.Join(vals, ",")
	if strings.TrimSpace(s) == "*" {
		return ifMatch{any: true}, nil
	}
	var m ifMatch
	tags := 0
	for s != "" {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			break
		}
		weak := strings.HasPrefix(s, "W/")
		if weak {
			s = s[2:]
		}
		if !strings.HasPrefix(s, `"`) {
			return m, malformedIfMatch()
		}
		end := strings.IndexByte(s[1:], '"')
		if end < 0 {
			return m, malformedIfMatch()
		}
		tag := s[1 : 1+end]
		s = s[2+end:]
		if rest := strings.TrimLeft(s, " \t"); rest != "" && rest[0] != ',' {
			return m, malformedIfMatch()
		}
		tags++
		if v, err := strconv.ParseInt(tag, 10, 64); err == nil && !weak {
			m.versions = append(m.versions, v)
		}
	}
	if tags == 0 {
		return m, malformedIfMatch()
	}
	return m, nil
}

func malformedIfMatch() error {
	return badRequest("If-Match", `If-Match: must be "*" or a list of entity tags such as "3"`)
}

// errStale is the 412 of an If-Match that names no current version.
var errStale = &requestError{status: http.StatusPreconditionFailed, field: "If-Match",
	detail: "the resource has changed: If-Match names no current version"}

// writeJSON answers status with v as JSON. etag, when not "", is sent as
// ETag; "auto" derives a strong tag from the body.
func writeJSON(w http.ResponseWriter, status int, v any, tag string) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	hdr := w.Header()
	if tag == autoETag {
		tag = contentETag(body)
	}
	if tag != "" {
		hdr.Set("ETag", tag)
	}
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
	return nil
}

// autoETag asks writeJSON for an ETag derived from the body.
const autoETag = "auto"

// setLocation sets Location to target, a path relative to the mount, as a
// relative reference from the request's path. The client resolves it
// against the URL it requested, so it is right wherever the API is mounted
// (the handler only sees the path below the mount).
func setLocation(w http.ResponseWriter, r *http.Request, target string) {
	w.Header().Set("Location", relativeRef(r.URL.Path, target))
}

// relativeRef returns a relative reference that resolves to path to against
// base path from (both absolute, "/"-separated).
func relativeRef(from, to string) string {
	dir := strings.Split(strings.Trim(from[:strings.LastIndexByte(from, '/')+1], "/"), "/")
	if dir[0] == "" {
		dir = nil
	}
	segs := strings.Split(strings.TrimPrefix(to, "/"), "/")
	c := 0
	for c < len(dir) && c < len(segs)-1 && dir[c] == segs[c] {
		c++
	}
	ref := strings.Repeat("../", len(dir)-c) + strings.Join(segs[c:], "/")
	if first, _, _ := strings.Cut(ref, "/"); ref == "" || strings.Contains(first, ":") {
		ref = "./" + ref // a first segment with ':' would read as a scheme
	}
	return ref
}

// pathOf joins escaped segments into a path relative to the mount.
func pathOf(segs ...string) string {
	var b strings.Builder
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}
