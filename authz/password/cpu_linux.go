package password

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// cpuTime runs fn on one OS thread and returns the CPU time that thread
// spent in it (user and system): what the budget is charged, whatever else
// the machine was doing meanwhile.
func cpuTime(fn func()) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var before, after unix.Rusage
	if unix.Getrusage(unix.RUSAGE_THREAD, &before) != nil {
		start := time.Now()
		fn()
		return time.Since(start)
	}
	fn()
	if unix.Getrusage(unix.RUSAGE_THREAD, &after) != nil {
		return 0
	}
	return time.Duration(after.Utime.Nano()-before.Utime.Nano()) + time.Duration(after.Stime.Nano()-before.Stime.Nano())
}
