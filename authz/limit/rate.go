package limit

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"time"
)

// Bounds of a Rate.
const (
	// MaxRequests bounds Requests and Burst, so that one window's count
	// fits the 32-bit slots a Limiter keeps.
	MaxRequests = 1 << 30
	// MinWindow and MaxWindow bound the sliding window a Rate gives
	// (Window): below a millisecond a slot would be 100µs, above a year
	// a slot would be longer than a month.
	MinWindow = time.Millisecond
	MaxWindow = 366 * 24 * time.Hour
)

// Rate is "Requests per Per, at most Burst at once".
//
// It is counted over a sliding window (see Limiter): Window() long, holding
// Capacity() requests. Without a burst the window is Per and holds
// Requests; with one it is stretched (or shrunk) to hold Burst, so the rate
// over the long run stays Requests per Per: 10 per second with a burst of
// 50 holds 50 requests in any 5 seconds, 100 per second with a burst of 10
// holds 10 in any 100 milliseconds.
type Rate struct {
	// Requests is how many requests a caller may make per Per. Required,
	// 1 to MaxRequests.
	Requests int64
	// Per is the period Requests applies to. Required.
	Per time.Duration
	// Burst is the most requests admitted at once. Default (0): Requests.
	Burst int64
}

// IsZero reports whether r is the zero Rate (no limit).
func (r Rate) IsZero() bool { return r == Rate{} }

// Capacity is how many requests the window holds: Burst, else Requests.
func (r Rate) Capacity() int64 {
	if r.Burst > 0 {
		return r.Burst
	}
	return r.Requests
}

// Window is the length of the sliding window Capacity applies to:
// Per × Capacity / Requests.
func (r Rate) Window() time.Duration {
	c := r.Capacity()
	if c == r.Requests || r.Requests <= 0 {
		return r.Per
	}
	hi, lo := bits.Mul64(uint64(r.Per), uint64(c))
	if hi >= uint64(r.Requests) {
		return MaxWindow + 1 // overflows: Validate refuses it
	}
	q, _ := bits.Div64(hi, lo, uint64(r.Requests))
	if q > uint64(MaxWindow) {
		return MaxWindow + 1
	}
	return time.Duration(q)
}

// Validate reports what is wrong with r, nil when it can be counted.
func (r Rate) Validate() error {
	switch {
	case r.Requests < 1 || r.Requests > MaxRequests:
		return fmt.Errorf("requests must be 1 to %d, got %d", MaxRequests, r.Requests)
	case r.Per <= 0:
		return errors.New("per must be a positive duration")
	case r.Burst < 0 || r.Burst > MaxRequests:
		return fmt.Errorf("burst must be 1 to %d, got %d", MaxRequests, r.Burst)
	}
	switch w := r.Window(); {
	case w < MinWindow:
		return fmt.Errorf("%d per %s with a burst of %d counts over %s: the window must be at least %s (raise per or burst)",
			r.Requests, r.Per, r.Capacity(), w, MinWindow)
	case w > MaxWindow:
		return fmt.Errorf("%d per %s with a burst of %d counts over more than %s (lower per or burst)",
			r.Requests, r.Per, r.Capacity(), MaxWindow)
	}
	return nil
}

// Faster reports whether r admits more requests over time than o: a higher
// Requests/Per, or the same with a larger Capacity.
func (r Rate) Faster(o Rate) bool {
	// r.Requests/r.Per > o.Requests/o.Per, without division or overflow.
	ah, al := bits.Mul64(uint64(r.Requests), uint64(o.Per))
	bh, bl := bits.Mul64(uint64(o.Requests), uint64(r.Per))
	if ah != bh {
		return ah > bh
	}
	if al != bl {
		return al > bl
	}
	return r.Capacity() > o.Capacity()
}

// String is "<requests> per <per>[ burst <burst>]", the Caddyfile's words.
func (r Rate) String() string {
	s := strconv.FormatInt(r.Requests, 10) + " per " + r.Per.String()
	if r.Burst > 0 {
		s += " burst " + strconv.FormatInt(r.Burst, 10)
	}
	return s
}
