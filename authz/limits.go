package authz

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apiusers/apiusers/authz/audit"
	"github.com/apiusers/apiusers/authz/ids"
	"github.com/apiusers/apiusers/authz/limit"
)

// Callers' own rate limits and credits.
//
// A key, a user or a team may carry a RateLimit: on a route's rate_limit
// lines that count by key or by user it replaces the route's numbers for
// that caller — the key's, else the user's, else the highest of its
// teams'. A key or a user may carry Credits: each request on a route
// spends the route's cost from the key's credits, else the user's. The
// gateway finds both in the caller's principal, with no lookup of its own.
//
// Who may set them follows who may manage whom: a user's (and its keys')
// by a caller that may manage the user (its keys: that may manage its
// keys), a team's by a caller with teams.manage that may manage every
// member (the limit is theirs). Nobody sets its own, nor those of a team
// it belongs to, nor joins, leaves or deletes a team with a rate limit
// itself: a caller cannot lift the limits it runs under. Every change is
// audited (user.update, key.update, team.update, with the old and new
// values).

// RateLimit is a caller's own rate limit: Requests per Per, at most Burst
// at once (see limit.Rate).
type RateLimit struct {
	// Requests per Per, 1 to 1073741824.
	Requests int64 `json:"requests"`
	// Per is a duration: "500ms", "1s", "1m", "1h", "1d" (Go durations, and
	// whole days with "d").
	Per string `json:"per"`
	// Burst is the most requests at once. Default: Requests.
	Burst int64 `json:"burst,omitempty"`
}

// Rate returns r as a limit.Rate; false when r does not parse (records
// are checked when written, so only a record written by hand would not).
func (r *RateLimit) Rate() (limit.Rate, bool) {
	d, err := parseLimitDuration(r.Per)
	if err != nil {
		return limit.Rate{}, false
	}
	lr := limit.Rate{Requests: r.Requests, Per: d, Burst: r.Burst}
	return lr, lr.Validate() == nil
}

// normalize checks r and writes Per in its canonical form.
func (r *RateLimit) normalize(field string) error {
	d, err := parseLimitDuration(r.Per)
	if err != nil {
		return fieldErr(field+".per", `must be a duration such as "1s", "1m", "1h" or "1d"`)
	}
	lr := limit.Rate{Requests: r.Requests, Per: d, Burst: r.Burst}
	if err := lr.Validate(); err != nil {
		return fieldErr(field, "%v", err)
	}
	r.Per = formatLimitDuration(d)
	return nil
}

// Credits are a key's or a user's quota of requests: what remains, and an
// optional refill. When read, Remaining is what is left right now (credits
// leased to gateways and not yet reported spent count as remaining, for a
// second or so) and RefillsAt when the next refill is due.
type Credits struct {
	Remaining int64      `json:"remaining"`
	Refill    *Refill    `json:"refill,omitempty"`
	RefillsAt *time.Time `json:"refills_at,omitempty"`

	// The setting: which one (serial), when, and the ledger account it
	// spends from (the key's or user's id when made with it, that id and
	// a random suffix when set on one that had none, as after a removal;
	// a regenerated key's keeps the old key's, so both spend from one
	// account during the grace).
	serial  int64
	setAt   time.Time
	account string
}

// Refill restores credits to Amount at the start of every period (UTC):
// Every is "day", "month" or a duration of at least one second (boundaries
// at whole multiples of it since 1970, so "1h" refills on the hour).
type Refill struct {
	Amount int64  `json:"amount"`
	Every  string `json:"every"`
}

func (r *Refill) limit() (limit.Refill, error) {
	lr := limit.Refill{Amount: r.Amount}
	switch r.Every {
	case "day":
		lr.Calendar = limit.Day
	case "month":
		lr.Calendar = limit.Month
	default:
		d, err := parseLimitDuration(r.Every)
		if err != nil {
			return lr, errors.New(`every must be "day", "month" or a duration such as "1h"`)
		}
		lr.Every = d
	}
	return lr, lr.Validate()
}

// SetCredits is what a caller sends to set credits: the balance, and the
// refill (none when left out).
type SetCredits struct {
	// Remaining is the balance to set. Required, 0 to 2^53.
	Remaining *int64  `json:"remaining"`
	Refill    *Refill `json:"refill,omitempty"`
}

// storedCredits is how credits are stored, in the user's or key's record.
type storedCredits struct {
	Remaining int64   `json:"remaining"` // as set
	Refill    *Refill `json:"refill,omitempty"`
	Serial    int64   `json:"serial"`
	SetAt     int64   `json:"set_at"` // Unix nanoseconds
	Account   string  `json:"account,omitempty"`
}

func storeCredits(c *Credits) *storedCredits {
	if c == nil {
		return nil
	}
	return &storedCredits{Remaining: c.Remaining, Refill: c.Refill, Serial: c.serial, SetAt: c.setAt.UnixNano(), Account: c.account}
}

func (sc *storedCredits) credits() *Credits {
	if sc == nil {
		return nil
	}
	return &Credits{Remaining: sc.Remaining, Refill: sc.Refill, serial: sc.Serial, setAt: time.Unix(0, sc.SetAt).UTC(), account: sc.Account}
}

// limitCredits is sc as the limit engine spends it; owner is the id of
// the key or user holding it; nil when it does not parse.
func (sc *storedCredits) limitCredits(ws, owner string) *limit.Credits {
	if sc == nil {
		return nil
	}
	c := &limit.Credits{Workspace: ws, ID: sc.Account, Serial: sc.Serial, Set: sc.Remaining, SetAt: sc.SetAt}
	if c.ID == "" {
		c.ID = owner
	}
	if sc.Refill != nil {
		r, err := sc.Refill.limit()
		if err != nil {
			return nil
		}
		c.Refill = r
	}
	return c
}

// newCredits makes the credits in sets, replacing old (nil for none) of
// the key or user owner. field names the input for errors.
func newCredits(field string, in *SetCredits, old *Credits, owner string, now time.Time) (*Credits, error) {
	if in.Remaining == nil {
		return nil, fieldErr(field+".remaining", "is required")
	}
	if *in.Remaining < 0 || *in.Remaining > limit.MaxCredits {
		return nil, fieldErr(field+".remaining", "must be 0 to %d", int64(limit.MaxCredits))
	}
	// Serials are microseconds (exact in the float64 numbers of the Redis
	// store's script), and above the last setting's.
	c := &Credits{Remaining: *in.Remaining, setAt: now.UTC(), account: owner, serial: now.UnixMicro()}
	if in.Refill != nil {
		r := *in.Refill
		lr, err := r.limit()
		if err != nil {
			return nil, fieldErr(field+".refill", "%v", err)
		}
		if lr.Calendar == limit.NoCalendar {
			r.Every = formatLimitDuration(lr.Every)
		}
		c.Refill = &r
	}
	if old != nil {
		// A new setting of the same account, numbered above the last.
		c.account = old.account
		if c.serial <= old.serial {
			c.serial = old.serial + 1
		}
	}
	return c, nil
}

// parseLimitDuration parses a Go duration, or a whole number of days
// ("7d"). It must be positive.
func parseLimitDuration(s string) (time.Duration, error) {
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok && n != "" && !strings.ContainsAny(n, ".hmsuµn") {
		days, err := strconv.ParseInt(n, 10, 32)
		if err != nil {
			return 0, err
		}
		if days > int64(math.MaxInt64/(24*time.Hour)) {
			return 0, errors.New("too many days")
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, err
		}
	}
	if d <= 0 {
		return 0, errors.New("not positive")
	}
	return d, nil
}

// formatLimitDuration writes d in the largest whole unit: "2d", "90m",
// "1500ms".
func formatLimitDuration(d time.Duration) string {
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.name
		}
	}
	return d.String()
}

// Optional is a field of a patch that may be left out (nothing changes),
// null (the value is removed) or a value.
type Optional[T any] struct {
	Set   bool // the field was in the body
	Value *T   // nil for null
}

// UnmarshalJSON implements json.Unmarshaler: a value is decoded strictly
// (an unknown member is an error), like the rest of a body.
func (o *Optional[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		o.Value = nil
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	v := new(T)
	if err := dec.Decode(v); err != nil {
		return err
	}
	o.Value = v
	return nil
}

// OptionalType is the type an Optional's value decodes into (for strict
// decoders that check a body's members against the fields they fill).
func (Optional[T]) OptionalType() reflect.Type { return reflect.TypeFor[T]() }

// mayLimit checks that actor may set the rate limit and credits of target
// (its keys' when keys): it may manage the user (its keys), and the user is
// not itself.
func mayLimit(actor *Principal, target *subject, keys bool) error {
	if actor.UserID == target.ID {
		return forbidden("nobody sets its own rate limit or credits")
	}
	if keys {
		if !mayManageKeys(actor, target) {
			return forbidden("setting the limits of user %s's keys needs %s", target.ID, PermKeysManage)
		}
		return nil
	}
	if !mayManage(actor, target) {
		return forbidden("setting the limits of user %s needs %s", target.ID, PermUsersManage)
	}
	return nil
}

// applyLimits sets a user's or key's own rate limit and credits from a
// patch (rl, cr); owner is the key's or user's id. It reports whether the
// credits of an account were removed, and which.
func applyLimits(rl Optional[RateLimit], cr Optional[SetCredits], rate **RateLimit, credits **Credits, owner string, now time.Time) (dropped string, err error) {
	if rl.Set {
		if rl.Value == nil {
			*rate = nil
		} else {
			r := *rl.Value
			if err := r.normalize("rate_limit"); err != nil {
				return "", err
			}
			*rate = &r
		}
	}
	if cr.Set {
		if cr.Value == nil {
			if *credits != nil {
				dropped = (*credits).account
			}
			*credits = nil
		} else {
			c, err := newCredits("credits", cr.Value, *credits, owner, now)
			if err != nil {
				return "", err
			}
			if *credits == nil {
				// A new account, not the owner's id: removing earlier
				// credits closed that one in the ledger (DropCredits),
				// and a setting whose serial is not above the closed
				// one's (an admin instance whose clock is behind, or the
				// same microsecond) would find it closed, as would one
				// that a late DropCredits of the removal reached.
				c.account = ids.New(owner+".", now)
			}
			*credits = c
		}
	}
	return dropped, nil
}

// creditsSetAgain adds to changes the credits a patch set (cr) to what
// they were set to before, which a diff of the records does not see (the
// setting's serial is not in the JSON): it is a new setting all the same,
// whose balance is its value again, so it is written and audited.
func creditsSetAgain(cr Optional[SetCredits], before, after *Credits, changes map[string]FieldChange) {
	if _, seen := changes["credits"]; !seen && cr.Set && after != nil {
		changes["credits"] = audit.Changed(before, after)
	}
}

// ledger is the store's credit ledger, nil when it keeps none.
func (s *Service) ledger() limit.Ledger {
	l, _ := s.store.(limit.Ledger)
	return l
}

// fillCreditsAfter is fillCredits for the answer to a committed write.
// The write stands, so when the ledger cannot be read the credits show as
// the record holds them (the balance their setting gave) rather than the
// call failing: a failure would lose what the answer gives only once (a
// new key's secret) and invite a retry that writes again.
func (s *Service) fillCreditsAfter(ctx context.Context, ws string, cs ...*Credits) {
	_ = s.fillCredits(ctx, ws, cs...)
}

// fillCredits sets the live Remaining and RefillsAt of every credits of
// cs, as the ledger says at now.
func (s *Service) fillCredits(ctx context.Context, ws string, cs ...*Credits) error {
	var accts []limit.Credits
	var which []*Credits
	now := s.now()
	for _, c := range cs {
		if c == nil {
			continue
		}
		lc := storeCredits(c).limitCredits(ws, c.account)
		if lc == nil {
			continue
		}
		if !lc.Refill.IsZero() {
			t := time.Unix(0, lc.Refill.End(lc.Refill.Period(now.UnixNano()))).UTC()
			c.RefillsAt = &t
		}
		accts = append(accts, *lc)
		which = append(which, c)
	}
	l := s.ledger()
	if len(accts) == 0 || l == nil {
		return nil
	}
	left, err := l.Balances(ctx, accts, now.UnixNano())
	if err != nil {
		return err
	}
	for i, c := range which {
		c.Remaining = left[i]
	}
	return nil
}

// dropCredits closes the ledger accounts of credits that are gone (see
// limit.Ledger's DropCredits): an instance whose cache still holds them
// spends nothing more. It is best effort: an account left open has no more
// than it had left, and those credits' records are gone.
func (s *Service) dropCredits(ctx context.Context, ws string, accounts ...string) {
	accounts = slices.DeleteFunc(accounts, func(a string) bool { return a == "" })
	if l := s.ledger(); l != nil && len(accounts) > 0 {
		_ = l.DropCredits(context.WithoutCancel(ctx), ws, accounts...)
	}
}

// UpdateKey sets key kid's own rate limit and credits. The caller must be
// allowed to manage the user's keys, and not be the user.
func (s *Service) UpdateKey(ctx context.Context, actor *Principal, ws, userID, kid string, patch KeyPatch) (*Key, error) {
	if !actor.InWorkspace(ws) {
		return nil, forbidden("not a member of workspace %s", ws)
	}
	now := s.now().UTC()
	var k *Key
	var dropped string
	err := s.store.Update(ctx, ws, func(tx Tx) error {
		sj, err := loadSubject(tx, ws, userID)
		if err != nil {
			return err
		}
		if err := mayLimit(actor, sj, true); err != nil {
			return err
		}
		if k, err = getKey(tx, ws, userID, kid); err != nil {
			return err
		}
		if !k.Live(now) {
			return errf(ErrNotFound, "key %s not found for user %s", kid, userID)
		}
		before := *k
		if dropped, err = applyLimits(patch.RateLimit, patch.Credits, &k.RateLimit, &k.Credits, k.ID, now); err != nil {
			return err
		}
		if dropped != "" && sharedAccount(tx, ws, userID, kid, dropped) {
			dropped = ""
		}
		changes, err := audit.Diff(&before, k)
		if err != nil {
			return err
		}
		creditsSetAgain(patch.Credits, before.Credits, k.Credits, changes)
		if len(changes) == 0 {
			return nil
		}
		if err := putKey(tx, k); err != nil {
			return err
		}
		if patch.Credits.Set && k.Credits != nil {
			if err := shareCredits(tx, k, now); err != nil {
				return err
			}
		}
		return s.audit(tx, ws, actor, ActionKeyUpdate, kid, changes)
	})
	if err != nil {
		return nil, err
	}
	s.changed(Change{Workspace: ws, Users: []string{userID}})
	s.dropCredits(ctx, ws, dropped)
	s.fillCreditsAfter(ctx, ws, k.Credits)
	return k, nil
}

// shareCredits gives the new credits of k to the user's other live keys
// that spend from the same account (a regenerated key and the one it
// replaces, during the grace): the setting is the account's. A key left
// with the account's older setting would be granted nothing by the
// ledger, which knows the newer one.
func shareCredits(tx Tx, k *Key, now time.Time) error {
	keys, err := listKeys(tx, k.Workspace, k.UserID)
	if err != nil {
		return err
	}
	for i := range keys {
		o := &keys[i]
		if o.ID == k.ID || o.Credits == nil || o.Credits.account != k.Credits.account || !o.Live(now) {
			continue
		}
		c := *k.Credits
		o.Credits = &c
		if err := putKey(tx, o); err != nil {
			return err
		}
	}
	return nil
}

// sharedAccount reports whether another key of the user than kid spends
// from credit account acct (a regenerated key and the one it replaces).
func sharedAccount(tx Tx, ws, userID, kid, acct string) bool {
	keys, err := listKeys(tx, ws, userID)
	if err != nil {
		return true // keep the account: dropping is only tidying up
	}
	for _, k := range keys {
		if k.ID != kid && k.Credits != nil && k.Credits.account == acct {
			return true
		}
	}
	return false
}

// checkTeamLimit checks that actor may give team t (its members) the
// rate limit, or take it from them: it is not one of them, and it may
// manage each of them, as setting their own needs.
func checkTeamLimit(tx Tx, actor *Principal, t *Team) error {
	if slices.Contains(t.Members, actor.UserID) {
		return forbidden("nobody sets the rate limit of a team it belongs to")
	}
	memo := teamMemo{}
	for _, uid := range t.Members {
		may, found, err := mayManageID(tx, actor, t.Workspace, uid, memo)
		if err != nil {
			return err
		}
		if found && !may {
			return forbidden("setting the rate limit of team %s needs the right to manage every member: the caller may not manage user %s", t.ID, uid)
		}
	}
	return nil
}
