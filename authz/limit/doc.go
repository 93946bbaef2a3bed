// Package limit is the arithmetic of rate limits and credit quotas: how
// requests are counted against a rate, how credits are leased out to the
// instances of a fleet and spent, and how instances exchange both off the
// request path. It knows neither Caddy nor any store: a fleet's shared
// counts come through a Tallier and credit balances through a Ledger, two
// small interfaces the stores implement (the Redis store both; the file
// store, one process, only the Ledger).
//
// # Rate limits: a sliding window in slots
//
// A Rate ("n per duration, burst b") is counted per subject (a key, a
// user, a workspace, an address) over a sliding window of Rate.Window()
// holding Rate.Capacity() requests (see Rate). The window is cut into
// Slots (10) slots; a window's count is its newest Slots slots in full and
// the slot before them weighted by the part of it still inside the window.
// A request is admitted when the count plus the request fits the
// capacity. This costs one locked update of a small fixed array per
// request, no allocation, and a decision that is the same on every
// instance once they share counts.
//
// What it guarantees on one instance: in any Slots consecutive slots (one
// window, aligned to slots) at most the capacity is admitted. A window of
// the same length not aligned to slots can hold up to one slot's worth
// more: the estimate takes the oldest slot's requests as spread evenly, so
// a burst that filled a slot at its very end is counted as fading out
// while it is still inside the window. With requests spread out that is a
// tenth of the capacity at most, and in the worst case (the whole capacity
// in one slot's last instant) twice the capacity in one unaligned window.
// Over a long time T a subject is admitted at most capacity×T/window plus
// one slot's worth.
//
// # Rate limits on a fleet: shared counts, local decisions
//
// With a Tallier (the Redis store), every instance decides locally and the
// Engine's loop exchanges counts in the background: at every multiple of
// SyncEvery (100ms by default, by the wall clock, so all instances at
// about the same moment) each instance adds what it counted since its last
// report to the fleet's counters and its demand (requests that came,
// admitted or not), and half an interval later, when every instance has
// reported, it reads the fleet's totals back. Its window then holds the
// fleet's counts as of the report plus its own since. What it cannot see
// is what the others admitted since the report; it accounts for that by
// counting each of its own requests as its share of the fleet's demand
// (the fleet's demand over its own, as measured between the last two
// reads): an instance with a third of the fleet's requests counts each of
// its requests three times until the next read. So the instances split
// what frees up between two syncs in proportion to the requests they get,
// instead of each taking all of it.
//
// The worst-case over-admission, and why:
//
//   - A subject that no instance counted within the last sync interval,
//     bursting on several instances at the same moment: each admits up to
//     the whole capacity before the first read, n × capacity in that
//     window for n instances (TestFleetBurstWorstCase). Nothing short of a
//     round trip per request prevents that; from the first read on, the
//     fleet's window is full for everyone.
//   - Under load, the share of demand an instance measured lags the
//     actual one by one interval: when requests shift toward an instance,
//     it admits more than its share until the next read, by at most what it
//     is sent in one interval beyond its measured share. At three times a
//     limit of 100 per second spread over three instances, in any split,
//     the fleet admits the limit within 2% (TestFleetCounts); through
//     three real Caddy processes and Redis, 1% to 3% over
//     (TestLimitsProcesses in cmd/caddy).
//   - With the Tallier unreachable, each instance keeps its last share for
//     ShareTTL (2s), then limits on its own: up to n × capacity per window
//     across n instances until the store is back. What the instances
//     counted meanwhile is reported when it is (if still in its window),
//     without a restart.
//
// Windows shorter than a few sync intervals are, in effect, counted per
// instance. Idle windows are forgotten (SweepEvery).
//
// # Credits: leases, never overspent
//
// A key or a user may hold credits (Credits: a balance set by an admin,
// and an optional Refill that restores it every duration, UTC day or UTC
// month). The Ledger keeps each account's balance; an instance spends only
// credits the ledger granted it. It tops its holding up (Settlement.Want)
// to about LeaseFor (1s) of the account's recent spending on that
// instance, to at most a quarter of the balance it last saw (so leases
// shrink as credits run low and the last ones are spread over the
// instances that ask) and at most MaxLease; it spends them locally under a
// mutex with no allocation, asks for more when half is gone, reports what
// it spent every ReportEvery (1s, and at once when it has spent all it
// held), and gives back what it holds after IdleReturn (10s) unspent and
// when it stops. Each settlement is applied atomically by the ledger
// (Apply: one script run on Redis, one transaction in the file store) and
// carries totals, not deltas, so a settlement repeated after a lost reply
// changes nothing. Because every spend is of granted credits
// and no grant exceeds the balance, an account is never overspent, across
// instances and failures. A request waits for the ledger only when its
// instance holds too little: the first request of an account on an
// instance, or spending faster than the prefetch.
//
//   - A crashed instance loses what it held and had not reported spent:
//     at most its holding, about a second of that account's spending
//     through it and never more than a quarter of the balance it last saw
//     (in the three-instance Caddy test, killed after 300 of 1,000 credits:
//     about 150 to 250). The ledger writes that holding off as spent after
//     HoldTTL (5 minutes) without news from it.
//   - With the ledger unreachable, an instance spends what it holds, then
//     answers unavailable (503) for that account; it asks again every
//     DownRetry (500ms) and goes on as soon as the ledger answers.
//   - A new setting of an account's credits makes its balance the new
//     value less what instances hold; they give it back as soon as they
//     see the setting (the fleet's cache invalidation, under a second).
//     What an instance spends from its old lease before that is charged to
//     the new value.
//   - A refill starts a new period at its boundary (by the instances'
//     clocks): holdings of the old period are void, the balance is the
//     refill amount, and nothing carries over.
package limit
