package redisstore

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/redisstore/redistest"
	"github.com/apiusers/apiusers/authz/storetest"
)

func BenchmarkAppendMessages(b *testing.B) {
	srv := redistest.Start(b)
	storetest.BenchAppendMessages(b, newStore(b, Options{URL: srv.URL()}))
}

func BenchmarkListUserMessagesPage(b *testing.B) {
	srv := redistest.Start(b)
	var n atomic.Int64
	storetest.BenchListUserMessagesPage(b, func(b *testing.B) authz.MessageStore {
		return newStore(b, Options{URL: srv.URL(), Prefix: fmt.Sprintf("bench%d", n.Add(1))})
	})
}

// BenchmarkRoundTrip: what one round trip costs the client and
// redis-server (a PING), the floor of BenchmarkLoadPrincipal's figures.
func BenchmarkRoundTrip(b *testing.B) {
	srv := redistest.Start(b)
	s := newStore(b, Options{URL: srv.URL()})
	storetest.BenchRoundTrip(b, func(ctx context.Context) error { return s.Client().Ping(ctx).Err() }, srv.CPU)
}

func BenchmarkLoadPrincipal(b *testing.B) {
	srv := redistest.Start(b)
	var n atomic.Int64
	storetest.BenchLoadPrincipal(b, func(b *testing.B) authz.Store {
		return newStore(b, Options{URL: srv.URL(), Prefix: fmt.Sprintf("load%d", n.Add(1))})
	}, srv.CPU)
}

func BenchmarkTouch(b *testing.B) {
	srv := redistest.Start(b)
	var n atomic.Int64
	storetest.BenchTouch(b, func(b *testing.B) authz.Store {
		return newStore(b, Options{URL: srv.URL(), Prefix: fmt.Sprintf("touch%d", n.Add(1))})
	}, srv.CPU)
}
