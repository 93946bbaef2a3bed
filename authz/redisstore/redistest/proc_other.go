//go:build !linux

package redistest

import "syscall"

// sysProcAttr has nothing to add outside Linux: only t.Cleanup stops the
// server there.
func sysProcAttr() *syscall.SysProcAttr { return nil }
