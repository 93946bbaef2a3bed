package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
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

// ServerCPU tells how much CPU time a store's server has used so far (the
// redis-server's); nil, or false, when there is no server to count.
type ServerCPU func() (time.Duration, bool)

// seedPrincipals creates n API users with a key each in workspace ws, as
// the admin API does (the records are the domain's), each a member of
// the given number of teams, and returns their ids.
func seedPrincipals(b *testing.B, st authz.Store, n, teams int) []string {
	b.Helper()
	ctx := context.Background()
	signer, err := authz.NewSigner(authz.SignerConfig{Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		b.Fatal(err)
	}
	cache, err := authz.NewCache(authz.CacheConfig{TTL: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	defer cache.Close()
	svc, err := authz.NewService(authz.Config{Store: st, Signer: signer, Cache: cache})
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Close()
	cu, err := svc.Bootstrap(ctx, ws, "root")
	if err != nil {
		b.Fatal(err)
	}
	root, _, err := svc.Authenticate(ctx, cu.Key)
	if err != nil {
		b.Fatal(err)
	}
	var teamIDs []string
	for i := range teams {
		tm, err := svc.CreateTeam(ctx, root, ws, authz.NewTeam{Name: fmt.Sprintf("team-%d", i), Permissions: []string{"x.read"}})
		if err != nil {
			b.Fatal(err)
		}
		teamIDs = append(teamIDs, tm.ID)
	}
	var ids []string
	for i := 0; i < n; i += 500 {
		in := make([]authz.NewUser, min(500, n-i))
		for j := range in {
			in[j] = authz.NewUser{Username: fmt.Sprintf("dev-%06d", i+j), Kind: authz.KindAPI, Role: authz.RoleAPIUser, IssueKey: true}
		}
		created, err := svc.CreateUsers(ctx, root, ws, in)
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range created {
			ids = append(ids, c.ID)
			for _, tid := range teamIDs {
				if err := svc.AddMember(ctx, root, ws, tid, c.ID); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	return ids
}

// cpuMark is the CPU time used so far by this process and by the
// store's server.
type cpuMark struct{ process, server time.Duration }

func cpuNow(cpu ServerCPU) cpuMark {
	var m cpuMark
	m.process, _ = processCPU()
	if cpu != nil {
		m.server, _ = cpu()
	}
	return m
}

// reportServerCPU reports the CPU time of this process (the client, and
// for an embedded store the store too) and of the store's server per unit
// of what the benchmark did, as client-cpu-µs/<unit> and
// server-cpu-µs/<unit>.
func reportServerCPU(b *testing.B, cpu ServerCPU, before cpuMark, units int, unit string) {
	if p, ok := processCPU(); ok && before.process != 0 {
		b.ReportMetric(float64(p-before.process)/float64(time.Microsecond)/float64(units), "client-cpu-µs/"+unit)
	}
	if cpu == nil {
		return
	}
	if after, ok := cpu(); ok {
		b.ReportMetric(float64(after-before.server)/float64(time.Microsecond)/float64(units), "server-cpu-µs/"+unit)
	}
}

// BenchRoundTrip measures the floor under a store's every operation: one
// round trip of the cheapest command there is (do), one at a time and 16
// at once, as BenchLoadPrincipal does, with the CPU time of the client and
// of the server per round trip beside it.
func BenchRoundTrip(b *testing.B, do func(context.Context) error, cpu ServerCPU) {
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		start := cpuNow(cpu)
		for i := 0; i < b.N; i++ {
			if err := do(ctx); err != nil {
				b.Fatal(err)
			}
		}
		reportServerCPU(b, cpu, start, b.N, "op")
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(8) // 16 goroutines on 2 CPUs
		start := cpuNow(cpu)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := do(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportServerCPU(b, cpu, start, b.N, "op")
	})
}

// BenchLoadPrincipal measures LoadPrincipal, what a gateway's cache miss
// costs the store, over 2,000 API users with a key each, of no team and
// of two teams (open returns a new, empty store): one load at a time, and
// 16 at once (parallel, as a busy gateway's misses come).
func BenchLoadPrincipal(b *testing.B, open func(b *testing.B) authz.Store, cpu ServerCPU) {
	for _, teams := range []int{0, 2} {
		st := open(b)
		ids := seedPrincipals(b, st, 2000, teams)
		ctx := context.Background()
		load := func(b *testing.B, i int) {
			rec, err := st.LoadPrincipal(ctx, ws, ids[i%len(ids)])
			if err != nil || len(rec.Keys) != 1 || len(rec.Teams) != teams {
				b.Errorf("LoadPrincipal: %v %+v", err, rec)
			}
		}
		b.Run(fmt.Sprintf("teams=%d", teams), func(b *testing.B) {
			b.ReportAllocs()
			start := cpuNow(cpu)
			for i := 0; i < b.N; i++ {
				load(b, i)
			}
			reportServerCPU(b, cpu, start, b.N, "op")
		})
		b.Run(fmt.Sprintf("teams=%d/parallel", teams), func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(8) // 16 goroutines on 2 CPUs
			var next atomic.Int64
			start := cpuNow(cpu)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					load(b, int(next.Add(1)))
				}
			})
			reportServerCPU(b, cpu, start, b.N, "op")
		})
	}
}

// BenchTouch measures recording last uses as the Service's writer does:
// each op is a batch of 512 touches of as many users' keys, among 10,000
// (open returns a new, empty store), with the store's own Toucher and
// with authz.TouchByUpdate; it reports the cost per touch.
func BenchTouch(b *testing.B, open func(b *testing.B) authz.Store, cpu ServerCPU) {
	const users, batch = 10000, 512
	for _, impl := range []string{"native", "byupdate"} {
		b.Run(impl, func(b *testing.B) {
			st := open(b)
			ids := seedPrincipals(b, st, users, 0)
			kids := make([]string, len(ids))
			ctx := context.Background()
			for i, id := range ids {
				rec, err := st.LoadPrincipal(ctx, ws, id)
				if err != nil || len(rec.Keys) != 1 {
					b.Fatalf("LoadPrincipal: %v", err)
				}
				var head struct {
					ID string `json:"id"`
				}
				if err := json.Unmarshal(rec.Keys[0], &head); err != nil {
					b.Fatal(err)
				}
				kids[i] = head.ID
			}
			tc := authz.TouchByUpdate(st)
			if impl == "native" {
				var ok bool
				if tc, ok = st.(authz.Toucher); !ok {
					b.Skip("the store is no authz.Toucher")
				}
			}
			ts := make([]authz.Touch, batch)
			at := time.Now().Unix()
			n := 0
			b.ReportAllocs()
			b.ResetTimer()
			start := cpuNow(cpu)
			for i := 0; i < b.N; i++ {
				at++
				for j := range ts {
					u := (n + j) % users
					ts[j] = authz.Touch{Workspace: ws, User: ids[u], ID: kids[u], At: at}
				}
				n += batch
				if err := tc.Touch(ctx, ts); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*batch), "µs/touch")
			reportServerCPU(b, cpu, start, b.N*batch, "touch")
		})
	}
}
