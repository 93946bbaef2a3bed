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

// budgets hands the hasher's budget (password_budget) from one running
// configuration to the next: the running Apps in the order they started,
// the budget of the last in force. One that stops leaves the list, so
// when a reload fails after the apiusers app of the new configuration
// started (Caddy stops it), the running configuration's budget is back.
var budgets struct {
	mu      sync.Mutex
	running []budgetOf
}

type budgetOf struct {
	app   *App
	share float64
}

// takeBudget sets the hasher's budget to a's share, a having started last.
func (a *App) takeBudget(share float64) error {
	budgets.mu.Lock()
	defer budgets.mu.Unlock()
	if err := sharedHasher().SetBudget(share); err != nil {
		return err
	}
	budgets.running = append(budgets.running, budgetOf{a, share})
	return nil
}

// giveBackBudget takes a, stopped, out of the running Apps, and puts the
// budget of the last one still running in force.
func (a *App) giveBackBudget() {
	budgets.mu.Lock()
	defer budgets.mu.Unlock()
	kept := budgets.running[:0]
	for _, b := range budgets.running {
		if b.app != a {
			kept = append(kept, b)
		}
	}
	clear(budgets.running[len(kept):]) // let stopped Apps go
	budgets.running = kept
	if n := len(kept); n > 0 {
		_ = sharedHasher().SetBudget(kept[n-1].share) // was in force: valid
	}
}

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
