package module

import (
	"fmt"
	"sync"

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
