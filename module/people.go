package module

import (
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiusers/apiusers/authz/password"
)

// The password hasher is process-wide: its pool bounds the cores hashing
// takes however many configurations (reloads overlap) or stores there are.
var (
	hasherOnce sync.Once
	hasher     *password.Hasher
)

func sharedHasher() *password.Hasher {
	hasherOnce.Do(func() {
		h, err := password.New(password.Config{})
		if err != nil {
			panic(fmt.Sprintf("making the password hasher: %v", err)) // the defaults are valid
		}
		hasher = h
	})
	return hasher
}

// signIns counts sign-in attempts by outcome (ok, failed, throttled,
// error), process-wide like the message metrics.
var signIns = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: "apiusers",
	Name:      "sign_ins_total",
	Help:      "Sign-in attempts (POST /login) by outcome: ok, failed, throttled, error.",
}, []string{"outcome"})

func countSignIn(outcome string) { signIns.WithLabelValues(outcome).Inc() }

// registerPeopleMetrics registers the sign-in counter in reg; one that is
// already there is fine.
func registerPeopleMetrics(reg *prometheus.Registry) error {
	if reg == nil {
		return nil
	}
	if err := reg.Register(signIns); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return fmt.Errorf("registering sign-in metrics: %w", err)
		}
	}
	return nil
}
