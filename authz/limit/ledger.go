package limit

import (
	"context"
	"time"
)

// Credits is an account of credits as the records hold it: set to Set by
// the setting numbered Serial, at SetAt, with an optional refill. A key or
// a user carries one; ID is the key's or the user's id.
type Credits struct {
	Workspace string
	ID        string
	// Serial numbers the settings of this account: each new setting has a
	// higher one, which tells the ledger to take Set as the new balance.
	Serial int64
	// Set is the balance the setting gave.
	Set int64
	// SetAt is when (Unix nanoseconds).
	SetAt  int64
	Refill Refill
}

// SetPeriod is the refill period the credits were set in.
func (c *Credits) SetPeriod() int64 { return c.Refill.Period(c.SetAt) }

// Ledger keeps the balances of credit accounts for every instance of a
// fleet, and leases credits out to them: an instance spends only credits
// it was granted, so an account is never overspent however many
// instances spend from it and whatever fails. Both stores implement it;
// the Redis store with one script run per account (so each settlement is
// atomic), the file store in one transaction.
type Ledger interface {
	// Settle applies every settlement of batch (see Settlement), each
	// atomically, in as few round trips as it can, and fills in their
	// results. An error may leave some of batch applied (Done).
	Settle(ctx context.Context, batch []*Settlement) error
	// Balances returns the remaining credits of each account at now (Unix
	// nanoseconds): what is neither spent nor known to be spent.
	Balances(ctx context.Context, accounts []Credits, now int64) ([]int64, error)
	// DropCredits closes the accounts of ids in workspace ws (their key
	// or user is gone, or has no credits any more): until DropTTL has
	// passed, a settlement of the setting an account had, or an older one
	// (from an instance whose records do not show the change yet), is
	// granted nothing more and told the balance is 0, and Balances reads
	// 0 for it; a newer setting opens the account again. Forgetting it at
	// once would let such an instance open it anew with the credits as
	// set, spent already. An account the ledger never saw stays unseen.
	DropCredits(ctx context.Context, ws string, ids ...string) error
}

// Settlement is what one instance tells the ledger about one account,
// and what it learns back. Spent and Returned are totals since the
// instance's holding began, so a settlement applied twice (a reply lost,
// the call repeated) changes nothing the second time.
type Settlement struct {
	Credits
	// Instance names the holder: an instance (random, per process), and
	// one holding of it.
	Instance string
	// Period is the refill period the instance is in.
	Period int64
	// Spent and Returned are the instance's totals in its holding: credits
	// it spent, and unspent credits it gives back.
	Spent, Returned int64
	// Want is how many more credits the instance asks for (0 for none).
	Want int64
	// Now is the instance's clock (Unix nanoseconds): holders not heard
	// of for HoldTTL are written off.
	Now int64

	// Set by the ledger:

	// Granted is the total granted to the instance's holding (it may have
	// grown by less than Want, or not at all).
	Granted int64
	// Balance is what the account has left to grant; it may be below
	// zero after a setting below what instances hold.
	Balance int64
	// Outstanding is what every holder was granted and has neither
	// reported spent nor returned.
	Outstanding int64
	// LedgerSerial and LedgerPeriod are the account's setting and refill
	// period as the ledger knows them.
	LedgerSerial, LedgerPeriod int64
	// Fresh reports that the instance had no holding (the first
	// settlement, a new period, or one written off): whatever it held
	// before is void.
	Fresh bool
	// Done reports that the ledger applied the settlement.
	Done bool
}

// HoldTTL is how long a holder that stopped settling (an instance that
// crashed, or lost the store) keeps its holding. After it, what the holder
// was granted and never reported is written off as spent: those credits
// are lost to the account, never spent twice.
const HoldTTL = 5 * time.Minute

// DropTTL is how long a ledger keeps a closed account (DropCredits): far
// longer than an instance's records can be stale (a principal's cache
// TTL and its stale TTL), so none of them opens it again.
const DropTTL = 24 * time.Hour

// LedgerState is one account as a ledger keeps it. The file store keeps
// it as is; the Redis store's script keeps the same fields in a hash and
// does what Apply does.
type LedgerState struct {
	Serial  int64               `json:"serial"`
	Period  int64               `json:"period"`
	Balance int64               `json:"balance"`
	Holders map[string]*Holding `json:"holders,omitempty"`
	// Dropped is not 0 when the account was closed (DropCredits): the
	// time it was (Unix nanoseconds) in the file store, 1 in Redis, which
	// expires the account instead.
	Dropped int64 `json:"dropped,omitempty"`
}

// closedTo reports whether st is a closed account for a settlement or a
// reading of setting serial: one that is not newer than the account's.
func (st *LedgerState) closedTo(serial int64) bool {
	return st != nil && st.Dropped != 0 && serial <= st.Serial
}

// Holding is what one instance holds of an account, in one setting and
// refill period of it (its epoch: an instance starts a new holding when
// either changes, and the old one is then void).
type Holding struct {
	Serial   int64 `json:"n"`
	Period   int64 `json:"p"`
	Granted  int64 `json:"g"`
	Spent    int64 `json:"s"`
	Returned int64 `json:"r"`
	Seen     int64 `json:"t"` // the instance's clock at its last settlement (Unix nanoseconds)
}

func (h *Holding) outstanding() int64 { return h.Granted - h.Spent - h.Returned }

// Outstanding is what every holder was granted and has neither reported
// spent nor returned.
func (st *LedgerState) Outstanding() int64 {
	var o int64
	for _, h := range st.Holders {
		o += h.outstanding()
	}
	return o
}

// Apply applies s to st (nil for an account the ledger has not seen) and
// returns the new state, filling in s's results. It is the ledger's one
// rule; the Redis store's script is its transcription.
//
//  1. A setting newer than the ledger's makes the balance the setting's
//     value less what holders of the current period hold (they spend it,
//     or return it), in the period the setting was made in.
//  2. An instance of the current setting in a later refill period than
//     the ledger's refills it: the balance is the refill amount, and
//     every holding of the old period is void.
//  3. Holders other than s's instance not heard of for HoldTTL are
//     written off: what they hold counts as spent.
//  4. The instance's holding of its epoch (Serial, Period) takes its
//     totals (never lowered), returned credits go back to the balance,
//     and, when the epoch is the ledger's, it is granted up to Want from
//     the balance. A holding of another epoch of the instance is void and
//     replaced; an instance of an old epoch with no holding is told the
//     ledger's epoch and granted nothing.
func Apply(st *LedgerState, s *Settlement) *LedgerState {
	closed := st.closedTo(s.Serial) // grant nothing, refill nothing
	unseen := st == nil
	if unseen {
		st = &LedgerState{}
	}
	if st.Holders == nil {
		// Also an account kept with no holder (all written off), which
		// the file store's JSON reads back without the map.
		st.Holders = map[string]*Holding{}
	}
	if unseen || st.Serial < s.Serial {
		var held int64
		for id, h := range st.Holders {
			if h.Serial == st.Serial && h.Period == st.Period {
				held += h.outstanding()
			} else {
				delete(st.Holders, id)
			}
		}
		st.Serial, st.Period = s.Serial, s.Credits.SetPeriod()
		st.Balance = s.Set - held
		st.Dropped = 0 // a newer setting opens a closed account again
	}
	current := s.Serial == st.Serial
	if current && !closed && !s.Refill.IsZero() && s.Period > st.Period {
		st.Period = s.Period
		st.Balance = s.Refill.Amount
		clear(st.Holders)
	}
	for id, h := range st.Holders {
		if id != s.Instance && s.Now-h.Seen > int64(HoldTTL) {
			delete(st.Holders, id)
		}
	}
	s.LedgerSerial, s.LedgerPeriod = st.Serial, st.Period
	epoch := current && s.Period == st.Period
	h := st.Holders[s.Instance]
	if h != nil && (h.Serial != s.Serial || h.Period != s.Period) {
		if !epoch {
			// A report of an older epoch than the holding: nothing to add.
			s.Granted, s.Fresh = 0, true
			s.Balance, s.Outstanding, s.Done = st.balanceFor(closed), st.Outstanding(), true
			return st
		}
		h = nil // the instance moved on: its old holding is void
	}
	s.Fresh = h == nil
	if h == nil {
		if !epoch {
			s.Granted, s.Balance, s.Outstanding, s.Done = 0, st.balanceFor(closed), st.Outstanding(), true
			return st
		}
		h = &Holding{Serial: s.Serial, Period: s.Period}
		st.Holders[s.Instance] = h
	}
	if s.Spent > h.Spent {
		h.Spent = min(s.Spent, h.Granted-h.Returned)
	}
	if s.Returned > h.Returned {
		r := min(s.Returned, h.Granted-h.Spent)
		if r > h.Returned {
			st.Balance += r - h.Returned
			h.Returned = r
		}
	}
	if epoch && !closed && s.Want > 0 && st.Balance > 0 {
		g := min(s.Want, st.Balance)
		st.Balance -= g
		h.Granted += g
	}
	h.Seen = s.Now
	s.Granted, s.Balance, s.Outstanding, s.Done = h.Granted, st.balanceFor(closed), st.Outstanding(), true
	return st
}

// balanceFor is the balance a settlement is told: 0 when the account is
// closed to it.
func (st *LedgerState) balanceFor(closed bool) int64 {
	if closed {
		return 0
	}
	return st.Balance
}

// Remaining is what st (nil when the ledger has not seen the account)
// says remains of c at now: the balance and what holders hold, as of the
// setting c names and the refill period now falls in.
func Remaining(st *LedgerState, c Credits, now int64) int64 {
	if st.closedTo(c.Serial) {
		return 0
	}
	var r int64
	period := c.SetPeriod()
	switch {
	case st == nil || st.Serial < c.Serial:
		r = c.Set
	default:
		r = st.Balance + st.Outstanding()
		period = st.Period
	}
	if !c.Refill.IsZero() && c.Refill.Period(now) > period && (st == nil || st.Serial <= c.Serial) {
		r = c.Refill.Amount
	}
	return max(0, r)
}
