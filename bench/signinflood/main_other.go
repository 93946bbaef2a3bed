//go:build !linux

// Command signinflood is the load harness's sign-in flood (bench/run.sh);
// it drives its connections with Linux's epoll, so it runs on Linux only.
package main

import "log"

func main() { log.Fatal("signinflood: runs on Linux only (epoll)") }
