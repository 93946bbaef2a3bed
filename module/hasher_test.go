package module

import (
	"time"

	"github.com/apiusers/apiusers/authz/password"
)

// The tests of this package run Caddy after Caddy in one process, and so
// share one password hasher. Its default budget (2.5% of the CPUs once a
// burst of about fifty hashes is spent) is sized for a flood of wrong
// sign-ins beside the gateway, not for a test suite that sets and checks
// passwords hundreds of times a minute: at the default, waits for the
// budget took TestE2EPeopleSecurity from 3 s to 29 s, each close to the
// 5 s after which a sign-in is answered 503. The budget has its own tests
// (authz/password); here hashing may take the whole machine.
func init() {
	hasherOnce.Do(func() {
		h, err := password.New(password.Config{Budget: 1, Burst: time.Minute})
		if err != nil {
			panic(err)
		}
		hasher = h
	})
}
