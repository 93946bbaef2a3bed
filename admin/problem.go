package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/password"
)

// problem is an RFC 9457 problem details object. Type is always
// "about:blank", so Title is the status phrase; Detail says what went wrong
// in one line and never contains a key.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Field names the offending input (a body field, a query parameter or
	// a header) when there is one.
	Field string `json:"field,omitempty"`
}

// requestError is an error the admin layer itself finds in a request (body,
// query, headers, routing), with the status to answer.
type requestError struct {
	status int
	detail string
	field  string
}

func (e *requestError) Error() string { return e.detail }

// badRequest is a 400 about field.
func badRequest(field, detail string) error {
	return &requestError{status: http.StatusBadRequest, field: field, detail: detail}
}

// Header values of error answers.
const (
	// ChallengeInvalidToken answers a request without a valid key (401),
	// at the gateway too.
	ChallengeInvalidToken = `Bearer realm="apiusers", error="invalid_token"`
	// ChallengeInsufficientScope answers a caller the rules refuse (403).
	ChallengeInsufficientScope = `Bearer realm="apiusers", error="insufficient_scope"`
)

// Generic details of answers whose cause is not for the client.
const (
	detailInternal    = "internal error"
	detailUnavailable = "authorization store unavailable, retry later"
	detailBusy        = "password hashing is busy, retry later"
)

// busyLogEvery is how often at most the admin API logs that it refused
// requests because password hashing was busy.
const busyLogEvery = time.Minute

// busyLog logs the 503s of a busy password hashing pool (its queue full,
// or its CPU budget spent: a flood of sign-ins, most likely) as one line
// a minute at most, with their count: a line each would cost a flood's
// every request a log write, and fill the log at the flood's rate.
type busyLog struct {
	refused atomic.Int64 // since the last line
	mu      sync.Mutex
	last    time.Time // the last line's time
}

// refuse counts one refused request and logs when the last line is a
// minute old (or there was none).
func (b *busyLog) refuse(log *zap.Logger, r *http.Request) {
	b.refused.Add(1)
	if !b.mu.TryLock() {
		return // another request is logging
	}
	defer b.mu.Unlock()
	now := time.Now()
	if !b.last.IsZero() && now.Sub(b.last) < busyLogEvery {
		return
	}
	b.last = now
	n := b.refused.Swap(0)
	log.Warn("requests refused: password hashing is busy (its queue is full or its CPU budget spent); "+
		"at most one such line a minute",
		zap.Int64("refused", n), zap.String("method", r.Method), zap.String("path", r.URL.Path))
}

// fail answers err as a problem. Domain errors map by their sentinel
// (authz.ErrInvalid → 400 … authz.ErrUnavailable → 503) with their
// client-safe detail; anything unexpected is a 500 with a generic detail and
// its cause logged.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	p := problem{Type: "about:blank"}
	var re *requestError
	var de *authz.Error
	var mbe *http.MaxBytesError
	var te *authz.ThrottledError
	switch {
	case errors.As(err, &re):
		p.Status, p.Detail, p.Field = re.status, re.detail, re.field
	case errors.As(err, &mbe):
		p.Status, p.Detail = http.StatusRequestEntityTooLarge, "request body is larger than "+byteSize(mbe.Limit)
	case errors.As(err, &te):
		p.Status, p.Detail = http.StatusTooManyRequests, te.Error()
		w.Header().Set("Retry-After", RetryAfter(te.RetryAfter))
	case errors.Is(err, password.ErrBusy):
		// Before ErrUnavailable, which wraps it: the store is fine.
		p.Status, p.Detail = http.StatusServiceUnavailable, detailBusy
		h.busy.refuse(h.log, r)
	case errors.Is(err, authz.ErrUnavailable):
		// Checked before the other sentinels: a store failure must never
		// pass for a 4xx.
		p.Status, p.Detail = http.StatusServiceUnavailable, detailUnavailable
		h.log.Warn("admin request failed: store unavailable",
			zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
	default:
		p.Status = domainStatus(err)
		if p.Status == http.StatusInternalServerError {
			p.Detail = detailInternal
			lvl := zap.ErrorLevel
			if errors.Is(err, context.Canceled) {
				lvl = zap.DebugLevel // the client went away
			}
			if ce := h.log.Check(lvl, "admin request failed"); ce != nil {
				ce.Write(zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
			}
		} else if errors.As(err, &de) {
			p.Detail, p.Field = de.Detail, de.Field
			if p.Status == http.StatusUnauthorized {
				// The answer keeps invalid keys alike; the log says why.
				if ce := h.log.Check(zap.DebugLevel, "admin request unauthenticated"); ce != nil {
					ce.Write(zap.String("reason", de.Reason()))
				}
			}
		}
	}
	if p.Detail == "" {
		p.Detail = http.StatusText(p.Status)
	}
	p.Title = http.StatusText(p.Status)

	hdr := w.Header()
	switch p.Status {
	case http.StatusUnauthorized:
		hdr.Set("WWW-Authenticate", ChallengeInvalidToken)
	case http.StatusForbidden:
		hdr.Set("WWW-Authenticate", ChallengeInsufficientScope)
	case http.StatusServiceUnavailable:
		hdr.Set("Retry-After", h.retryAfter)
	}
	body, merr := json.Marshal(p)
	if merr != nil { // cannot happen: problem has only strings and an int
		body = []byte(`{"type":"about:blank","status":500}`)
	}
	hdr.Set("Content-Type", "application/problem+json")
	hdr.Del("ETag")
	hdr.Del("Location")
	w.WriteHeader(p.Status)
	w.Write(body)
}

// domainStatus maps a domain error to its status by sentinel; anything else
// is 500.
func domainStatus(err error) int {
	switch {
	case errors.Is(err, authz.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, authz.ErrUnauthenticated):
		return http.StatusUnauthorized
	case errors.Is(err, authz.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, authz.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, authz.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, authz.ErrPrecondition):
		return http.StatusPreconditionFailed
	case errors.Is(err, authz.ErrGone):
		return http.StatusGone
	}
	return http.StatusInternalServerError
}

// byteSize renders a body limit: "1 MiB", "8 KiB".
func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
