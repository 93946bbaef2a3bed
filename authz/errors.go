package authz

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error the domain returns wraps exactly one of them,
// so callers (the admin API, the gateway) map them to a status with errors.Is.
var (
	// ErrInvalid: the input is malformed or breaks a rule of the model (400).
	ErrInvalid = errors.New("invalid input")
	// ErrUnauthenticated: no valid key, or the key's user cannot authenticate (401).
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrForbidden: authenticated but not allowed (403).
	ErrForbidden = errors.New("forbidden")
	// ErrNotFound: the resource does not exist, or the caller may not know it does (404).
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request conflicts with the current state (409).
	ErrConflict = errors.New("conflict")
	// ErrPrecondition: If-Match named a stale version (412).
	ErrPrecondition = errors.New("precondition failed")
	// ErrLimited: a rate limit or the caller's credits do not admit the
	// request now (429).
	ErrLimited = errors.New("too many requests")
	// ErrUnavailable: the store could not be reached; deny, do not guess (503).
	ErrUnavailable = errors.New("store unavailable")
)

// Error is a domain error with a one-line, client-safe detail. It never
// carries a key or a secret.
type Error struct {
	Kind   error  // one of the sentinels above
	Detail string // what went wrong, for the client
	Field  string // the offending input field, when there is one

	reason string // what went wrong, for logs only ("": Detail)
}

// Reason says precisely what went wrong, for logs: it may say more than
// Detail (which errors of Authenticate keep alike on purpose), never a key
// or a secret.
func (e *Error) Reason() string {
	if e.reason != "" {
		return e.reason
	}
	return e.Error()
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return e.Kind.Error()
	}
	return e.Detail
}

func (e *Error) Unwrap() error { return e.Kind }

func errf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

func fieldErr(field, format string, args ...any) error {
	return &Error{Kind: ErrInvalid, Field: field, Detail: field + ": " + fmt.Sprintf(format, args...)}
}

// Unavailable wraps a store failure so it maps to 503. Stores use it for
// connection errors and timeouts; the cause stays available to logs.
func Unavailable(cause error) error {
	if cause == nil {
		return nil
	}
	return &unavailableError{cause: cause}
}

type unavailableError struct{ cause error }

func (e *unavailableError) Error() string { return "store unavailable: " + e.cause.Error() }
func (e *unavailableError) Unwrap() []error {
	return []error{ErrUnavailable, e.cause}
}
