package redisstore

import (
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
