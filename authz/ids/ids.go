// Package ids makes and reads the ids of apiusers records: time-ordered
// random ids ("usr_…", "key_…", "team_…", made by New) and newest-first
// ids ("aud_…", "msg_…", made by NewestFirst), and tells the time back
// from either. Both are a prefix, an underscore and characters of one
// base32 alphabet (digits and lower-case letters but i, l, o, u), so ids
// are safe in URLs, paths and Redis keys.
package ids

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync/atomic"
	"time"
)

// alphabet is the base32 alphabet of every id; its order is byte order,
// so encoded numbers sort like the numbers.
const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"

var encoding = base32.NewEncoding(alphabet).WithPadding(base32.NoPadding)

// maxNanos bounds the Unix nanoseconds the times of ids are read in: about
// the years 1678 to 2262, where time.Time.UnixNano is defined.
const maxNanos = 1 << 62

// New makes a time-ordered, random id with prefix (such as "usr_"): 48
// bits of milliseconds then 80 random bits, 26 characters after the
// prefix, so ids sort by creation time.
func New(prefix string, now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	if _, err := rand.Read(b[6:]); err != nil {
		panic(fmt.Sprintf("reading random bytes: %v", err))
	}
	return prefix + encoding.EncodeToString(b[:])
}

// Nanos returns the time New put into id, in Unix nanoseconds (at
// millisecond precision), or 0 when id is not an id New makes.
func Nanos(id string) int64 {
	i := strings.IndexByte(id, '_')
	if i < 0 || len(id)-i-1 != 26 {
		return 0
	}
	var b [16]byte
	if n, err := encoding.Decode(b[:], []byte(id[i+1:])); err != nil || n != 16 {
		return 0
	}
	ms := int64(binary.BigEndian.Uint64(b[:8]) >> 16)
	if ms > maxNanos/1_000_000 {
		return 0
	}
	return ms * 1e6
}

// Pack returns the part of id before its underscore and the 16 bytes the
// 26 characters after it encode, when id is one New makes (and encodes
// back to itself): a compact form of the id for stored records.
func Pack(id string) (prefix string, raw [16]byte, ok bool) {
	i := strings.IndexByte(id, '_')
	if i < 0 || len(id)-i-1 != 26 {
		return "", raw, false
	}
	if n, err := encoding.Decode(raw[:], []byte(id[i+1:])); err != nil || n != 16 {
		return "", raw, false
	}
	if encoding.EncodeToString(raw[:]) != id[i+1:] {
		return "", raw, false
	}
	return id[:i], raw, true
}

// Unpack is the inverse of Pack.
func Unpack(prefix string, raw [16]byte) string {
	return prefix + "_" + encoding.EncodeToString(raw[:])
}

// NewestFirst makes an id whose byte order is newest first, 28 characters
// after the prefix (such as "msg_"): the inverted milliseconds (10
// characters), then an inverted process-wide sequence (8, so that ids of
// one millisecond from one process keep their order), then 48 random bits
// (10). A plain ascending scan of such ids lists the newest first, so a
// page costs O(page). The id is made in one allocation: the API message
// recorder names every message with one.
func NewestFirst(prefix string, now time.Time) string {
	seq := uint64(1)<<40 - 1 - sequence.Add(1)&(1<<40-1)
	// The random part tells apart ids made by several processes in the
	// same millisecond with the same sequence number. It is no secret, so
	// the runtime's generator (per thread, seeded by the OS) serves: it
	// costs nanoseconds where crypto/rand costs a system call.
	var rnd [8]byte
	binary.LittleEndian.PutUint64(rnd[:], mrand.Uint64())
	var b [10 + 8 + 10]byte
	putSortable(b[0:10], uint64(1)<<48-1-uint64(now.UnixMilli()))
	putSortable(b[10:18], seq)
	encoding.Encode(b[18:], rnd[:6])
	var sb strings.Builder
	sb.Grow(len(prefix) + len(b))
	sb.WriteString(prefix)
	sb.Write(b[:])
	return sb.String()
}

var sequence atomic.Uint64

// NewestFirstTimeLen is how many characters after the prefix of a
// NewestFirst id encode its millisecond: ids that share them were made in
// the same millisecond, and a time window is a range of them.
const NewestFirstTimeLen = 10

// putSortable encodes the low 5*len(b) bits of v in b as characters of the
// alphabet, which sort like the number.
func putSortable(b []byte, v uint64) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = alphabet[v&31]
		v >>= 5
	}
}

// NewestFirstNanos returns the time NewestFirst put into id, in Unix
// nanoseconds (at millisecond precision), or 0 when id is not such an id.
func NewestFirstNanos(id string) int64 {
	i := strings.IndexByte(id, '_')
	if i < 0 || len(id)-i-1 < NewestFirstTimeLen {
		return 0
	}
	var v uint64
	for _, c := range []byte(id[i+1 : i+1+NewestFirstTimeLen]) {
		d := strings.IndexByte(alphabet, c)
		if d < 0 {
			return 0
		}
		v = v<<5 | uint64(d)
	}
	if v >= 1<<48 {
		return 0
	}
	ms := int64(1<<48 - 1 - v)
	if ms > maxNanos/1_000_000 {
		return 0
	}
	return ms * 1e6
}
