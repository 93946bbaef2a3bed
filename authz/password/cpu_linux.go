package password

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// cpuTime runs fn on one OS thread and returns the CPU time that thread
// spent in it, user and system: what the budget is charged, whatever else
// the machine was doing meanwhile. The clock is CLOCK_THREAD_CPUTIME_ID,
// which counts to the nanosecond; getrusage(RUSAGE_THREAD) lags by up to a
// scheduler tick, and measured about a tenth short of a 20 ms hash.
func cpuTime(fn func()) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var before, after unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &before) != nil {
		start := time.Now()
		fn()
		return time.Since(start)
	}
	fn()
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &after) != nil {
		return 0
	}
	return time.Duration(after.Nano() - before.Nano())
}
