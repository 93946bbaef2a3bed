//go:build !linux

package redistest

import (
	"syscall"
	"time"
)

// sysProcAttr has nothing to add outside Linux: only t.Cleanup stops the
// server there.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// CPU cannot tell the server's CPU time outside Linux.
func (s *Server) CPU() (time.Duration, bool) { return 0, false }
