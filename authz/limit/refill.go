package limit

import (
	"errors"
	"fmt"
	"time"
)

// Refill restores credits to Amount at the start of every period: every
// Every (boundaries at whole multiples of it since 1970-01-01 00:00 UTC,
// so one hour refills on the hour), or every UTC day, or every UTC month.
// Credits left over from a period do not carry into the next.
type Refill struct {
	// Amount is what the credits are restored to. Required, at least 1.
	Amount int64
	// Every is the period when it is a fixed duration (at least a
	// second). Zero when Calendar is set.
	Every time.Duration
	// Calendar is Day or Month for calendar periods, in UTC.
	Calendar Calendar
}

// Calendar names a calendar period.
type Calendar uint8

// Calendar periods.
const (
	NoCalendar Calendar = iota
	Day                 // a UTC day, from midnight to midnight
	Month               // a UTC month, from the first at midnight
)

// MaxCredits bounds credit amounts.
const MaxCredits = 1 << 53

// IsZero reports whether r is no refill.
func (r Refill) IsZero() bool { return r == Refill{} }

// Validate reports what is wrong with r.
func (r Refill) Validate() error {
	if r.Amount < 1 || r.Amount > MaxCredits {
		return fmt.Errorf("amount must be 1 to %d", int64(MaxCredits))
	}
	switch {
	case r.Calendar == NoCalendar && r.Every < time.Second:
		return errors.New(`every must be "day", "month" or a duration of at least 1s`)
	case r.Calendar != NoCalendar && r.Every != 0:
		return errors.New("a refill is every duration or every calendar period, not both")
	case r.Calendar > Month:
		return errors.New("unknown calendar period")
	}
	return nil
}

// Period returns the number of the period t (Unix nanoseconds) falls in:
// periods since 1970 UTC. Without a refill every time is period 0.
func (r Refill) Period(t int64) int64 {
	switch {
	case r.Calendar == Month:
		y, m, _ := time.Unix(0, t).UTC().Date()
		return int64(y-1970)*12 + int64(m-1)
	case r.Calendar == Day:
		return floorDiv(t, int64(24*time.Hour))
	case r.Every > 0:
		return floorDiv(t, int64(r.Every))
	}
	return 0
}

// Start returns when period p begins (Unix nanoseconds); without a refill,
// the earliest time.
func (r Refill) Start(p int64) int64 {
	switch {
	case r.Calendar == Month:
		return time.Date(1970+int(floorDiv(p, 12)), time.Month(p-12*floorDiv(p, 12)+1), 1, 0, 0, 0, 0, time.UTC).UnixNano()
	case r.Calendar == Day:
		return p * int64(24*time.Hour)
	case r.Every > 0:
		return p * int64(r.Every)
	}
	return minTime
}

// End returns when period p ends: when the next begins; without a refill,
// never (the latest time).
func (r Refill) End(p int64) int64 {
	if r.IsZero() {
		return maxTime
	}
	return r.Start(p + 1)
}

// Seconds returns the period's length in whole seconds for the
// RateLimit-Policy field: Every, a day, or the length of the month period
// p. 0 without a refill.
func (r Refill) Seconds(p int64) int64 {
	if r.IsZero() {
		return 0
	}
	return (r.End(p) - r.Start(p)) / int64(time.Second)
}

const (
	minTime = -1 << 63
	maxTime = 1<<63 - 1
)

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
