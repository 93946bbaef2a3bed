//go:build !linux

package password

import "time"

// cpuTime runs fn and returns how long it took (without a per-thread CPU
// clock, the wall time: an overestimate on a busy machine).
func cpuTime(fn func()) time.Duration {
	start := time.Now()
	fn()
	return time.Since(start)
}
