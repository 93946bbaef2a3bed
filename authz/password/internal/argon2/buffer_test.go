package argon2

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"runtime"
	"testing"

	upstream "golang.org/x/crypto/argon2"
)

// dirty fills the buffer's memory with a pattern no hash leaves, so that a
// hash that read a block before writing it would come out different.
func dirty(b *Buffer) {
	for i := range b.blocks {
		for j := range b.blocks[i] {
			b.blocks[i][j] = 0xa5a5a5a5a5a5a5a5 ^ uint64(i*blockLength+j)
		}
	}
}

type idCase struct {
	pw, salt     string
	time, memory uint32
	threads      uint8
	keyLen       uint32
}

// The cases run in this order through one Buffer: it grows, shrinks (a
// prefix of a larger buffer) and grows again, and is made dirty before
// every hash.
var idCases = []idCase{
	{"password", "somesalt", 1, 64, 1, 32},
	{"correct horse battery staple", "0123456789abcdef", 2, 19 * 1024, 1, 32},
	{"", "saltsalt", 2, 8, 1, 16},                    // below the minimum memory: rounded up
	{"pässwörd", "0123456789abcdef", 3, 1000, 1, 64}, // not a multiple of 4 KiB
	{"the same password", "0123456789abcdef", 2, 4096, 4, 32},
	{"the same password", "another salt 123", 2, 4096, 4, 32},
	{"x", "0123456789abcdef", 1, 3 * 1024, 3, 100}, // three lanes, a long key
	{"correct horse battery staple", "0123456789abcdef", 2, 19 * 1024, 1, 32},
	{"long memory", "0123456789abcdef", 1, 32 * 1024, 8, 32},
	{"password", "somesalt", 1, 64, 1, 32},
}

// TestIDKeyMatchesUpstream: the same key as golang.org/x/crypto/argon2's
// IDKey, in a fresh buffer, with nil, and in one reused dirty buffer.
func TestIDKeyMatchesUpstream(t *testing.T) {
	var reused Buffer
	for _, c := range idCases {
		t.Run(fmt.Sprintf("m=%d,t=%d,p=%d,len=%d", c.memory, c.time, c.threads, c.keyLen), func(t *testing.T) {
			want := upstream.IDKey([]byte(c.pw), []byte(c.salt), c.time, c.memory, c.threads, c.keyLen)
			if got := IDKey(nil, []byte(c.pw), []byte(c.salt), c.time, c.memory, c.threads, c.keyLen); !bytes.Equal(got, want) {
				t.Errorf("nil buffer: %x, upstream %x", got, want)
			}
			dirty(&reused)
			if got := IDKey(&reused, []byte(c.pw), []byte(c.salt), c.time, c.memory, c.threads, c.keyLen); !bytes.Equal(got, want) {
				t.Errorf("reused buffer (%d KiB before): %x, upstream %x", reused.Size(), got, want)
			}
		})
	}
}

// TestBufferSize: a buffer grows to the largest memory asked of it, keeps
// it, and Release drops it.
func TestBufferSize(t *testing.T) {
	var b Buffer
	IDKey(&b, []byte("pw"), []byte("saltsalt"), 1, 1024, 1, 32)
	IDKey(&b, []byte("pw"), []byte("saltsalt"), 1, 64, 1, 32)
	if b.Size() != 1024 {
		t.Fatalf("size after 1024 and 64 KiB: %d KiB, want 1024", b.Size())
	}
	b.Release()
	if b.Size() != 0 {
		t.Fatalf("size after Release: %d KiB", b.Size())
	}
	want := upstream.IDKey([]byte("pw"), []byte("saltsalt"), 1, 64, 1, 32)
	if got := IDKey(&b, []byte("pw"), []byte("saltsalt"), 1, 64, 1, 32); !bytes.Equal(got, want) {
		t.Fatalf("after Release: %x, want %x", got, want)
	}
}

// TestVectorsReused runs upstream's vectors (all three modes) through one
// dirty buffer.
func TestVectorsReused(t *testing.T) {
	var b Buffer
	password, salt := []byte("password"), []byte("somesalt")
	for i, v := range testVectors {
		want, _ := hex.DecodeString(v.hash)
		dirty(&b)
		if got := deriveKey(&b, v.mode, password, salt, nil, nil, v.time, v.memory, v.threads, uint32(len(want))); !bytes.Equal(got, want) {
			t.Errorf("vector %d: %x, want %x", i, got, want)
		}
	}
}

// TestIDKeyAllocs: with a buffer kept between hashes, a hash allocates a
// few small values (the BLAKE2b states and the key), not its memory.
func TestIDKeyAllocs(t *testing.T) {
	var b Buffer
	pw, salt := []byte("password"), []byte("0123456789abcdef")
	IDKey(&b, pw, salt, 1, 1024, 1, 32)
	const n = 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		IDKey(&b, pw, salt, 1, 1024, 1, 32)
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > 4096 {
		t.Fatalf("a 1 MiB hash in a kept buffer allocates %d bytes", per)
	}
}

func BenchmarkIDKey(b *testing.B) {
	pw, salt := []byte("password"), []byte("0123456789abcdef")
	b.Run("kept buffer, m=19MiB,t=2,p=1", func(b *testing.B) {
		var buf Buffer
		IDKey(&buf, pw, salt, 2, 19*1024, 1, 32) // the memory, once
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			IDKey(&buf, pw, salt, 2, 19*1024, 1, 32)
		}
	})
	b.Run("upstream, m=19MiB,t=2,p=1", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			upstream.IDKey(pw, salt, 2, 19*1024, 1, 32)
		}
	})
}
