package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apiusers/apiusers/authz"
)

// BenchAppendMessages measures AppendMessages with batches of 256 messages
// of 16 users, with both retention bounds on (1000 per user, 24h), as the
// gateway's recorder writes them.
func BenchAppendMessages(b *testing.B, ms authz.MessageStore) {
	const batch, users = 256, 16
	ctx := context.Background()
	keep := authz.Retention{MaxPerUser: 1000, MaxAge: 24 * time.Hour}
	msgs := make([]authz.Message, batch)
	at := time.Now()
	for b.Loop() {
		for i := range msgs {
			at = at.Add(time.Microsecond)
			msgs[i] = message(ws, fmt.Sprintf("usr_%02d", i%users), at)
		}
		if err := ms.AppendMessages(ctx, msgs, keep); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchListUserMessagesPage measures reading a page of 50 messages of one
// user who has 1000, next to 100 and then 100,000 messages of 100 other
// users (open returns a new, empty store): the newest page, a page after a
// cursor half-way down, and the first page of a time window. The times
// should not depend on how many messages the others have.
func BenchListUserMessagesPage(b *testing.B, open func(b *testing.B) authz.MessageStore) {
	const mine, page = 1000, 50
	for _, others := range []int{100, 100000} {
		ms := open(b)
		ctx := context.Background()
		total := mine + others
		every := total / mine
		start := time.Now().Add(-time.Hour)
		var user []authz.Message // the user's, oldest first
		batch := make([]authz.Message, 0, 256)
		for i := range total {
			m := message(ws, fmt.Sprintf("usr_other%02d", i%100), start.Add(time.Duration(i)*10*time.Millisecond))
			if i%every == 0 && len(user) < mine {
				m.UserID = "usr_me"
				user = append(user, m)
			}
			if batch = append(batch, m); len(batch) == cap(batch) || i == total-1 {
				if err := ms.AppendMessages(ctx, batch, authz.Retention{}); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		for _, tc := range []struct {
			name string
			q    authz.MessageQuery
		}{
			{"newest", authz.MessageQuery{}},
			{"after", authz.MessageQuery{After: user[mine/2].ID}},
			{"window", authz.MessageQuery{Since: user[mine/4].Time, Until: user[mine/2].Time}},
		} {
			q := tc.q
			q.UserID, q.Limit = "usr_me", page
			b.Run(fmt.Sprintf("others=%d/%s", others, tc.name), func(b *testing.B) {
				for b.Loop() {
					out, err := ms.ListMessages(ctx, ws, q)
					if err != nil {
						b.Fatal(err)
					}
					if len(out) != page {
						b.Fatalf("page of %d messages, want %d", len(out), page)
					}
				}
			})
		}
	}
}
