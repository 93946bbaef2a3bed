package admin

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// encoding/json matches object members to struct fields case-insensitively
// and lets a later duplicate member overwrite an earlier one, so a body
// could say one thing to a reader (or a proxy, or a log) and another to
// the handler. checkMembers holds a body to one reading: every member name
// spelled exactly as the field it sets, each at most once per object, and
// nothing nested deeper than maxDepth.

// maxDepth bounds the nesting of a request body.
const maxDepth = 32

// checkMembers reads data, one JSON value, against Go type t, and returns
// a 400 for the first member given twice in one object, named in another
// letter case than its field's, or unknown to t. Values are never echoed:
// only member names (cut at 64 bytes). Syntax errors are left to the
// decoder that runs after it.
func checkMembers(data []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	err := walkValue(dec, t, 0, "")
	if errors.Is(err, errSyntax) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil // the decoder reports it with its offset
	}
	return err
}

// errSyntax marks a token error: not checkMembers' to report.
var errSyntax = errors.New("syntax")

func token(dec *json.Decoder) (json.Token, error) {
	tok, err := dec.Token()
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, errSyntax
	}
	return tok, err
}

var (
	optionalType        = reflect.TypeFor[interface{ OptionalType() reflect.Type }]()
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// walkValue reads one value; t is the Go type it decodes into (nil: any).
// path names where the value is, for error fields ("grants[0].rights").
func walkValue(dec *json.Decoder, t reflect.Type, depth int, path string) error {
	tok, err := token(dec)
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil // a scalar
	}
	if depth >= maxDepth {
		return badRequest(path, "request body is nested more than "+strconv.Itoa(maxDepth)+" levels deep")
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	// A patch field that may be null (authz.Optional) is checked as the
	// value it holds.
	if t != nil && t.Implements(optionalType) {
		t = reflect.Zero(t).Interface().(interface{ OptionalType() reflect.Type }).OptionalType()
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
	}
	// A type that decodes itself (time.Time, ...) is opaque: its members
	// are only checked for duplicates.
	if t != nil && (reflect.PointerTo(t).Implements(unmarshalerType) || reflect.PointerTo(t).Implements(textUnmarshalerType)) {
		t = nil
	}
	switch d {
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := walkValue(dec, elem, depth+1, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	case '{':
		var fields map[string]reflect.Type
		var elem reflect.Type
		if t != nil {
			switch t.Kind() {
			case reflect.Struct:
				fields = fieldsOf(t)
			case reflect.Map:
				elem = t.Elem()
			}
		}
		seen := map[string]bool{}
		for dec.More() {
			tok, err := token(dec)
			if err != nil {
				return err
			}
			name, _ := tok.(string)
			at := name
			if path != "" {
				at = path + "." + name
			}
			if seen[name] {
				return badRequest(cut(at), "field "+strconv.Quote(cut(name))+" is given more than once")
			}
			seen[name] = true
			ft := elem
			if fields != nil {
				var ok bool
				if ft, ok = fields[name]; !ok {
					for known := range fields {
						if strings.EqualFold(known, name) {
							return badRequest(cut(at), "field "+strconv.Quote(cut(name))+" must be spelled "+strconv.Quote(known))
						}
					}
					return badRequest(cut(at), "unknown field "+strconv.Quote(cut(name)))
				}
			}
			if err := walkValue(dec, ft, depth+1, at); err != nil {
				return err
			}
		}
	}
	_, err = token(dec) // the closing delimiter
	return err
}

func cut(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// fieldCache holds fieldsOf's answers by type.
var fieldCache sync.Map // reflect.Type -> map[string]reflect.Type

// fieldsOf returns the JSON member names of struct type t with the types
// they decode into, as encoding/json sees them (tags, promoted fields of
// embedded structs, "-" left out).
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := map[string]reflect.Type{}
	addFields(m, t)
	fieldCache.Store(t, m)
	return m
}

func addFields(m map[string]reflect.Type, t reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				addFields(m, ft)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, taken := m[name]; !taken {
			m[name] = f.Type
		}
	}
}
