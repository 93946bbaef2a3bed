// Package goroutines reads the process's goroutines, for the tests that
// check that what they stopped left none behind.
package goroutines

import (
	"runtime"
	"strings"
)

// Stacks returns the stack of every goroutine of the process, one string
// each (its "goroutine N [state]:" line and its frames).
func Stacks() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Split(string(buf[:n]), "\n\n")
		}
		buf = make([]byte, 2*len(buf))
	}
}
