package limit

import (
	"strings"
	"testing"
	"time"
)

func TestRateWindow(t *testing.T) {
	for _, c := range []struct {
		r      Rate
		cap    int64
		window time.Duration
	}{
		{Rate{Requests: 10, Per: time.Second}, 10, time.Second},
		{Rate{Requests: 10, Per: time.Second, Burst: 50}, 50, 5 * time.Second},
		{Rate{Requests: 100, Per: time.Second, Burst: 10}, 10, 100 * time.Millisecond},
		{Rate{Requests: 3, Per: time.Minute, Burst: 3}, 3, time.Minute},
		{Rate{Requests: 1000, Per: 24 * time.Hour}, 1000, 24 * time.Hour},
	} {
		if got := c.r.Capacity(); got != c.cap {
			t.Errorf("%v: capacity %d, want %d", c.r, got, c.cap)
		}
		if got := c.r.Window(); got != c.window {
			t.Errorf("%v: window %s, want %s", c.r, got, c.window)
		}
		if err := c.r.Validate(); err != nil {
			t.Errorf("%v: %v", c.r, err)
		}
	}
}

func TestRateValidate(t *testing.T) {
	for _, c := range []struct {
		r    Rate
		want string
	}{
		{Rate{Requests: 0, Per: time.Second}, "requests must be"},
		{Rate{Requests: MaxRequests + 1, Per: time.Second}, "requests must be"},
		{Rate{Requests: 1, Per: 0}, "per must be"},
		{Rate{Requests: 1, Per: time.Second, Burst: -1}, "burst must be"},
		{Rate{Requests: 1000, Per: 100 * time.Millisecond, Burst: 1}, "at least 1ms"},
		{Rate{Requests: 1, Per: 365 * 24 * time.Hour, Burst: 2}, "more than"},
		{Rate{Requests: 1, Per: 1 << 62, Burst: MaxRequests}, "more than"},
	} {
		err := c.r.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one saying %q", c.r, err, c.want)
		}
	}
}

func TestRateFaster(t *testing.T) {
	a := Rate{Requests: 100, Per: time.Minute}
	b := Rate{Requests: 2, Per: time.Second} // 120 per minute
	if !b.Faster(a) || a.Faster(b) {
		t.Errorf("2/s should be faster than 100/min")
	}
	c := Rate{Requests: 100, Per: time.Minute, Burst: 200}
	if !c.Faster(a) || a.Faster(c) {
		t.Errorf("the same rate with a larger burst should be faster")
	}
	if a.Faster(a) {
		t.Errorf("a rate is not faster than itself")
	}
}
