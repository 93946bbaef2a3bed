package limit

import (
	"testing"
	"time"
)

func TestRefillPeriods(t *testing.T) {
	utc := func(y int, m time.Month, d, h, min int) int64 {
		return time.Date(y, m, d, h, min, 0, 0, time.UTC).UnixNano()
	}
	month := Refill{Amount: 10, Calendar: Month}
	for _, c := range []struct {
		at         int64
		start, end int64
	}{
		{utc(2030, 1, 31, 23, 59), utc(2030, 1, 1, 0, 0), utc(2030, 2, 1, 0, 0)},
		{utc(2030, 2, 1, 0, 0), utc(2030, 2, 1, 0, 0), utc(2030, 3, 1, 0, 0)},
		{utc(2028, 2, 29, 12, 0), utc(2028, 2, 1, 0, 0), utc(2028, 3, 1, 0, 0)},
		{utc(2030, 12, 15, 0, 0), utc(2030, 12, 1, 0, 0), utc(2031, 1, 1, 0, 0)},
		{utc(1969, 12, 31, 23, 0), utc(1969, 12, 1, 0, 0), utc(1970, 1, 1, 0, 0)},
	} {
		p := month.Period(c.at)
		if s, e := month.Start(p), month.End(p); s != c.start || e != c.end {
			t.Errorf("month of %s: %s..%s, want %s..%s", time.Unix(0, c.at).UTC(),
				time.Unix(0, s).UTC(), time.Unix(0, e).UTC(), time.Unix(0, c.start).UTC(), time.Unix(0, c.end).UTC())
		}
	}
	if got := month.Seconds(month.Period(utc(2030, 2, 10, 0, 0))); got != 28*86400 {
		t.Errorf("February 2030 is %d seconds, want %d", got, 28*86400)
	}

	day := Refill{Amount: 10, Calendar: Day}
	p := day.Period(utc(2030, 5, 5, 13, 7))
	if day.Start(p) != utc(2030, 5, 5, 0, 0) || day.End(p) != utc(2030, 5, 6, 0, 0) {
		t.Errorf("day of 2030-05-05: %s..%s", time.Unix(0, day.Start(p)).UTC(), time.Unix(0, day.End(p)).UTC())
	}
	// A local time zone does not move UTC boundaries.
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err == nil {
		at := time.Date(2030, 5, 6, 0, 30, 0, 0, berlin).UnixNano() // 22:30 UTC on the 5th
		if day.Period(at) != p {
			t.Errorf("00:30 in Berlin is still the 5th in UTC")
		}
	}

	hourly := Refill{Amount: 10, Every: time.Hour}
	at := utc(2030, 5, 5, 13, 7)
	if hourly.Start(hourly.Period(at)) != utc(2030, 5, 5, 13, 0) || hourly.End(hourly.Period(at)) != utc(2030, 5, 5, 14, 0) {
		t.Errorf("an hourly refill is on the hour")
	}
	none := Refill{}
	if none.Period(at) != 0 || none.End(0) != maxTime {
		t.Errorf("no refill: one period that never ends")
	}
}

func TestRefillValidate(t *testing.T) {
	for _, r := range []Refill{
		{Amount: 0, Every: time.Hour},
		{Amount: 5, Every: time.Millisecond},
		{Amount: 5},
		{Amount: 5, Every: time.Hour, Calendar: Day},
		{Amount: MaxCredits + 1, Calendar: Day},
	} {
		if r.Validate() == nil {
			t.Errorf("%+v: valid, want an error", r)
		}
	}
	for _, r := range []Refill{{Amount: 1, Every: time.Second}, {Amount: 5, Calendar: Month}} {
		if err := r.Validate(); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
	}
}
