package storetest

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/limit"
)

// RunLedger checks a store's credit ledger (limit.Ledger): that each
// settlement is applied as limit.Apply says, atomically, and that an
// account is never overspent however many instances settle at once.
func RunLedger(t *testing.T, open func(t *testing.T) authz.Store) {
	ledger := func(t *testing.T) limit.Ledger {
		t.Helper()
		l, ok := open(t).(limit.Ledger)
		if !ok {
			t.Fatal("the store keeps no credit ledger")
		}
		return l
	}
	ctx := context.Background()
	t0 := time.Date(2030, 3, 4, 5, 6, 7, 0, time.UTC).UnixNano()

	t.Run("settlements as Apply says", func(t *testing.T) {
		l := ledger(t)
		c := limit.Credits{Workspace: "acme", ID: "key_a", Serial: 1, Set: 100, SetAt: t0}
		// The reference: the same settlements through limit.Apply.
		var ref *limit.LedgerState
		step := func(s limit.Settlement) limit.Settlement {
			t.Helper()
			r := s
			ref = limit.Apply(ref, &r)
			if err := l.Settle(ctx, []*limit.Settlement{&s}); err != nil {
				t.Fatal(err)
			}
			if !s.Done {
				t.Fatalf("%+v not done", s)
			}
			if s.Granted != r.Granted || s.Balance != r.Balance || s.Outstanding != r.Outstanding ||
				s.Fresh != r.Fresh || s.LedgerSerial != r.LedgerSerial || s.LedgerPeriod != r.LedgerPeriod {
				t.Fatalf("settled %+v, Apply says %+v", s, r)
			}
			return s
		}
		if s := step(limit.Settlement{Credits: c, Instance: "i1", Want: 30, Now: t0}); s.Granted != 30 || s.Balance != 70 {
			t.Fatalf("first lease: %+v", s)
		}
		step(limit.Settlement{Credits: c, Instance: "i1", Want: 30, Now: t0})                // a repeat asks again: 60 granted
		step(limit.Settlement{Credits: c, Instance: "i2", Want: 500, Now: t0})               // the rest
		step(limit.Settlement{Credits: c, Instance: "i1", Spent: 25, Returned: 35, Now: t0}) // 35 back
		step(limit.Settlement{Credits: c, Instance: "i1", Spent: 25, Returned: 35, Now: t0}) // repeated: nothing more
		c2 := c
		c2.Serial, c2.Set = 2, 10
		step(limit.Settlement{Credits: c2, Instance: "i3", Want: 5, Now: t0})
		r, err := l.Balances(ctx, []limit.Credits{c2, {Workspace: "acme", ID: "key_none", Serial: 1, Set: 7, SetAt: t0}}, t0)
		if err != nil {
			t.Fatal(err)
		}
		if r[0] != limit.Remaining(ref, c2, t0) || r[1] != 7 {
			t.Errorf("balances %v, want %d and 7", r, limit.Remaining(ref, c2, t0))
		}
		// Refills: a day later the account holds the refill amount.
		c3 := c2
		c3.Refill = limit.Refill{Amount: 40, Calendar: limit.Day}
		c3.Serial = 3
		day := int64(24 * time.Hour)
		step(limit.Settlement{Credits: c3, Instance: "i1", Period: c3.Refill.Period(t0), Want: 1, Now: t0})
		s := step(limit.Settlement{Credits: c3, Instance: "i1", Period: c3.Refill.Period(t0 + day), Want: 15, Now: t0 + day})
		if s.Granted != 15 || s.Balance != 25 || !s.Fresh {
			t.Errorf("after the refill: %+v", s)
		}
		// Closed: the records of an instance that has not seen the key or
		// the user go, or the credits removed, name the setting (or an
		// older one); they get nothing more, no refill, and read 0. An
		// account the ledger never saw stays as set.
		if err := l.DropCredits(ctx, "acme", "key_a", "key_never"); err != nil {
			t.Fatal(err)
		}
		ref.Dropped = 1
		never := limit.Credits{Workspace: "acme", ID: "key_never", Serial: 1, Set: 7, SetAt: t0}
		r, err = l.Balances(ctx, []limit.Credits{c3, c2, never}, t0+day)
		if err != nil || r[0] != 0 || r[1] != 0 || r[2] != 7 {
			t.Errorf("after drop: %v %v, want 0, 0 and 7", r, err)
		}
		if r, err = l.Balances(ctx, []limit.Credits{c3}, t0+2*day); err != nil || r[0] != 0 {
			t.Errorf("after drop, a period later: %v %v, want 0 (no refill)", r, err)
		}
		if s := step(limit.Settlement{Credits: c3, Instance: "i1", Period: c3.Refill.Period(t0 + day), Spent: 15, Want: 10, Now: t0 + day}); s.Granted != 15 || s.Balance != 0 {
			t.Errorf("a holder of the closed account: %+v, want nothing more granted and a balance of 0", s)
		}
		if s := step(limit.Settlement{Credits: c3, Instance: "i9", Period: c3.Refill.Period(t0 + 2*day), Want: 10, Now: t0 + 2*day}); s.Granted != 0 || s.Balance != 0 {
			t.Errorf("a new holder of the closed account, a period later: %+v, want nothing granted and a balance of 0", s)
		}
		if err := l.DropCredits(ctx, "acme", "key_a"); err != nil { // closing it again changes nothing
			t.Fatal(err)
		}
		// A newer setting opens it again.
		c4 := c3
		c4.Serial, c4.Set, c4.SetAt, c4.Refill = 4, 9, t0+2*day, limit.Refill{}
		if s := step(limit.Settlement{Credits: c4, Instance: "i1", Want: 4, Now: t0 + 2*day}); s.Granted != 4 || s.Balance != 5 {
			t.Errorf("a newer setting of the closed account: %+v, want 4 granted, 5 left", s)
		}
		if r, err = l.Balances(ctx, []limit.Credits{c4}, t0+2*day); err != nil || r[0] != 9 {
			t.Errorf("the account opened again: %v %v, want 9", r, err)
		}
	})

	t.Run("an account left with no holders", func(t *testing.T) {
		// An instance whose records are a setting behind settles after
		// every holder went silent for the hold TTL: they are written
		// off, and the account is kept with no holder at all. The next
		// settlement of the current setting is granted as Apply says.
		l := ledger(t)
		c := limit.Credits{Workspace: "acme", ID: "key_w", Serial: 2, Set: 20, SetAt: t0}
		old := c
		old.Serial = 1
		for _, s := range []limit.Settlement{
			{Credits: c, Instance: "i1", Want: 5, Now: t0},
			{Credits: old, Instance: "i2", Want: 5, Now: t0 + int64(limit.HoldTTL+time.Second)},
			{Credits: c, Instance: "i3", Want: 5, Now: t0 + int64(limit.HoldTTL+time.Second)},
		} {
			if err := l.Settle(ctx, []*limit.Settlement{&s}); err != nil || !s.Done {
				t.Fatalf("%+v: %v", s, err)
			}
			if s.Instance == "i3" && (s.Granted != 5 || s.Balance != 10 || s.Outstanding != 5) {
				t.Errorf("after the write-off: %+v, want 5 granted, 10 left, 5 outstanding", s)
			}
		}
	})

	t.Run("random settlements as Apply says", func(t *testing.T) {
		l := ledger(t)
		rng := rand.New(rand.NewPCG(3, 4))
		var ref *limit.LedgerState
		c := limit.Credits{Workspace: "acme", ID: "key_r", Serial: 1, Set: 50, SetAt: t0, Refill: limit.Refill{Amount: 30, Every: time.Minute}}
		type inst struct{ granted, spent, returned, period int64 }
		insts := map[string]*inst{}
		now := t0
		for i := range 300 {
			now += rng.Int64N(int64(20 * time.Second))
			switch rng.IntN(30) {
			case 0: // a new setting
				c.Serial++
				c.Set = rng.Int64N(100)
				c.SetAt = now
			case 1: // a holder goes silent for long
				now += int64(limit.HoldTTL)
			}
			name := string(rune('a' + rng.IntN(4)))
			in := insts[name]
			if in == nil {
				in = &inst{period: c.Refill.Period(now)}
				insts[name] = in
			}
			if p := c.Refill.Period(now); p != in.period {
				*in = inst{period: p}
			}
			// Spend some of what is held, return some.
			held := in.granted - in.spent - in.returned
			if held > 0 {
				in.spent += rng.Int64N(held + 1)
				held = in.granted - in.spent - in.returned
				if rng.IntN(4) == 0 {
					in.returned += held
				}
			}
			s := limit.Settlement{Credits: c, Instance: name, Period: in.period, Spent: in.spent,
				Returned: in.returned, Want: rng.Int64N(20), Now: now}
			r := s
			ref = limit.Apply(ref, &r)
			if err := l.Settle(ctx, []*limit.Settlement{&s}); err != nil {
				t.Fatal(err)
			}
			if s.Granted != r.Granted || s.Balance != r.Balance || s.Outstanding != r.Outstanding ||
				s.Fresh != r.Fresh || s.LedgerSerial != r.LedgerSerial || s.LedgerPeriod != r.LedgerPeriod {
				t.Fatalf("step %d: settled %+v, Apply says %+v", i, s, r)
			}
			if s.Fresh && in.granted > 0 || s.LedgerPeriod > in.period {
				*in = inst{period: max(in.period, s.LedgerPeriod)}
			}
			in.granted = s.Granted
			got, err := l.Balances(ctx, []limit.Credits{c}, now)
			if err != nil {
				t.Fatal(err)
			}
			if want := limit.Remaining(ref, c, now); got[0] != want {
				t.Fatalf("step %d: remaining %d, Apply's state says %d", i, got[0], want)
			}
		}
	})

	t.Run("never overspent under concurrent instances", func(t *testing.T) {
		l := ledger(t)
		c := limit.Credits{Workspace: "acme", ID: "usr_c", Serial: 1, Set: 1000, SetAt: t0}
		const instances = 8
		granted := make([]int64, instances)
		var wg sync.WaitGroup
		for i := range instances {
			wg.Add(1)
			go func() {
				defer wg.Done()
				inst := string(rune('a' + i))
				var spent int64
				for range 200 {
					s := &limit.Settlement{Credits: c, Instance: inst, Spent: spent, Want: 7, Now: t0}
					if err := l.Settle(ctx, []*limit.Settlement{s}); err != nil {
						t.Error(err)
						return
					}
					spent = s.Granted // spends all it was granted
					granted[i] = s.Granted
					if s.Balance <= 0 {
						return
					}
				}
			}()
		}
		wg.Wait()
		var total int64
		for _, g := range granted {
			total += g
		}
		if total != 1000 {
			t.Errorf("granted %d in all (%v), want exactly 1000", total, granted)
		}
	})

	t.Run("a batch across workspaces", func(t *testing.T) {
		l := ledger(t)
		var batch []*limit.Settlement
		for _, ws := range []string{"one", "two", "three"} {
			batch = append(batch, &limit.Settlement{Credits: limit.Credits{Workspace: ws, ID: "usr_x", Serial: 1, Set: 5, SetAt: t0}, Instance: "i", Want: 2, Now: t0})
		}
		if err := l.Settle(ctx, batch); err != nil {
			t.Fatal(err)
		}
		for _, s := range batch {
			if !s.Done || s.Granted != 2 || s.Balance != 3 {
				t.Errorf("%s: %+v", s.Workspace, s)
			}
		}
	})
}
