package filestore

import (
	"path/filepath"
	"testing"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/storetest"
)

func openBench(b *testing.B) authz.MessageStore {
	s, err := Open(filepath.Join(b.TempDir(), "apiusers.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

func BenchmarkAppendMessages(b *testing.B) { storetest.BenchAppendMessages(b, openBench(b)) }

func BenchmarkListUserMessagesPage(b *testing.B) { storetest.BenchListUserMessagesPage(b, openBench) }

func openStore(b *testing.B) authz.Store {
	s, err := Open(filepath.Join(b.TempDir(), "apiusers.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

func BenchmarkLoadPrincipal(b *testing.B) { storetest.BenchLoadPrincipal(b, openStore, nil) }

func BenchmarkTouch(b *testing.B) { storetest.BenchTouch(b, openStore, nil) }
