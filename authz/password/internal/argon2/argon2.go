// Copyright 2017 The Go Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

// Package argon2 is golang.org/x/crypto/argon2 (v0.57.0; its argon2
// directory is unchanged since commit
// 0b316e7ee409f8e5789a0535679d34155cecc75e, "argon2: update RFC 9106
// parameter recommendations"), changed for a pool that hashes passwords on
// a CPU-time budget:
//
//   - IDKey takes a *Buffer, the hash's memory, which the caller keeps
//     between hashes: a hash allocates nothing of the memory's size (upstream
//     allocates memory KiB per call, which keeps the garbage collector busy
//     under a flood of sign-ins, at the expense of the rest of the process).
//     The first pass writes every block before any block is read (Argon2
//     v1.3, section 3.2 of RFC 9106: the first pass sets a block, the later
//     ones XOR into it), so a Buffer's old contents never enter a hash and
//     need no clearing.
//   - Every lane runs in the calling goroutine, one after the other (upstream
//     starts a goroutine per lane and slice, also for one lane). Argon2's
//     lanes within a slice depend on no block that another lane writes in
//     that slice, so the output is the same; the work stays on the caller's
//     thread, so that the thread's CPU time is what the hash cost.
//   - Key (argon2i) is left out: only argon2id is exported. The argon2i and
//     argon2d modes stay inside, for the known-answer tests.
//
// The assembly (blamka_amd64.s) and the other files are upstream's as they
// are. LICENSE is upstream's.
package argon2

import (
	"encoding/binary"

	"golang.org/x/crypto/blake2b"
)

// The Argon2 version implemented by this package.
const Version = 0x13

const (
	argon2d = iota
	argon2i
	argon2id
)

// Buffer is the memory of one hash at a time: a caller that hashes one
// password after another keeps one and passes it to every IDKey. The zero
// Buffer is empty; it grows to the largest memory asked of it. A Buffer is
// not safe for concurrent use.
type Buffer struct {
	blocks []block
}

// Release drops the Buffer's memory; the next IDKey allocates it again.
func (b *Buffer) Release() { b.blocks = nil }

// Size is the memory the Buffer holds, in KiB.
func (b *Buffer) Size() uint32 { return uint32(len(b.blocks)) }

// get returns n blocks of the buffer's memory (their contents are left
// over from an earlier hash, or zero).
func (b *Buffer) get(n uint32) []block {
	if uint32(len(b.blocks)) < n {
		b.blocks = make([]block, n)
	}
	return b.blocks[:n]
}

// IDKey derives a key from the password, salt, and cost parameters using
// Argon2id, in buf's memory (nil: memory of its own, dropped after), and
// returns a byte slice of length keyLen; it is
// golang.org/x/crypto/argon2.IDKey's key for the same arguments. The time
// parameter is the number of passes over the memory, memory its size in
// KiB, threads the number of lanes; time and threads must be greater than
// zero. The lanes are computed one after the other in the calling
// goroutine.
func IDKey(buf *Buffer, password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
	if buf == nil {
		buf = new(Buffer)
	}
	return deriveKey(buf, argon2id, password, salt, nil, nil, time, memory, threads, keyLen)
}

func deriveKey(buf *Buffer, mode int, password, salt, secret, data []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
	if time < 1 {
		panic("argon2: number of rounds too small")
	}
	if threads < 1 {
		panic("argon2: parallelism degree too low")
	}
	h0 := initHash(password, salt, secret, data, time, memory, uint32(threads), keyLen, mode)

	memory = memory / (syncPoints * uint32(threads)) * (syncPoints * uint32(threads))
	if memory < 2*syncPoints*uint32(threads) {
		memory = 2 * syncPoints * uint32(threads)
	}
	B := buf.get(memory)
	initBlocks(B, &h0, memory, uint32(threads))
	processBlocks(B, time, memory, uint32(threads), mode)
	return extractKey(B, memory, uint32(threads), keyLen)
}

const (
	blockLength = 128
	syncPoints  = 4
)

type block [blockLength]uint64

func initHash(password, salt, key, data []byte, time, memory, threads, keyLen uint32, mode int) [blake2b.Size + 8]byte {
	var (
		h0     [blake2b.Size + 8]byte
		params [24]byte
		tmp    [4]byte
	)

	b2, _ := blake2b.New512(nil)
	binary.LittleEndian.PutUint32(params[0:4], threads)
	binary.LittleEndian.PutUint32(params[4:8], keyLen)
	binary.LittleEndian.PutUint32(params[8:12], memory)
	binary.LittleEndian.PutUint32(params[12:16], time)
	binary.LittleEndian.PutUint32(params[16:20], uint32(Version))
	binary.LittleEndian.PutUint32(params[20:24], uint32(mode))
	b2.Write(params[:])
	binary.LittleEndian.PutUint32(tmp[:], uint32(len(password)))
	b2.Write(tmp[:])
	b2.Write(password)
	binary.LittleEndian.PutUint32(tmp[:], uint32(len(salt)))
	b2.Write(tmp[:])
	b2.Write(salt)
	binary.LittleEndian.PutUint32(tmp[:], uint32(len(key)))
	b2.Write(tmp[:])
	b2.Write(key)
	binary.LittleEndian.PutUint32(tmp[:], uint32(len(data)))
	b2.Write(tmp[:])
	b2.Write(data)
	b2.Sum(h0[:0])
	return h0
}

// initBlocks sets the first two blocks of every lane of B.
func initBlocks(B []block, h0 *[blake2b.Size + 8]byte, memory, threads uint32) {
	var block0 [1024]byte
	for lane := uint32(0); lane < threads; lane++ {
		j := lane * (memory / threads)
		binary.LittleEndian.PutUint32(h0[blake2b.Size+4:], lane)

		binary.LittleEndian.PutUint32(h0[blake2b.Size:], 0)
		blake2bHash(block0[:], h0[:])
		for i := range B[j+0] {
			B[j+0][i] = binary.LittleEndian.Uint64(block0[i*8:])
		}

		binary.LittleEndian.PutUint32(h0[blake2b.Size:], 1)
		blake2bHash(block0[:], h0[:])
		for i := range B[j+1] {
			B[j+1][i] = binary.LittleEndian.Uint64(block0[i*8:])
		}
	}
}

func processBlocks(B []block, time, memory, threads uint32, mode int) {
	lanes := memory / threads
	segments := lanes / syncPoints

	processSegment := func(n, slice, lane uint32) {
		var addresses, in, zero block
		if mode == argon2i || (mode == argon2id && n == 0 && slice < syncPoints/2) {
			in[0] = uint64(n)
			in[1] = uint64(lane)
			in[2] = uint64(slice)
			in[3] = uint64(memory)
			in[4] = uint64(time)
			in[5] = uint64(mode)
		}

		index := uint32(0)
		if n == 0 && slice == 0 {
			index = 2 // we have already generated the first two blocks
			if mode == argon2i || mode == argon2id {
				in[6]++
				processBlock(&addresses, &in, &zero)
				processBlock(&addresses, &addresses, &zero)
			}
		}

		offset := lane*lanes + slice*segments + index
		var random uint64
		for index < segments {
			prev := offset - 1
			if index == 0 && slice == 0 {
				prev += lanes // last block in lane
			}
			if mode == argon2i || (mode == argon2id && n == 0 && slice < syncPoints/2) {
				if index%blockLength == 0 {
					in[6]++
					processBlock(&addresses, &in, &zero)
					processBlock(&addresses, &addresses, &zero)
				}
				random = addresses[index%blockLength]
			} else {
				random = B[prev][0]
			}
			newOffset := indexAlpha(random, lanes, segments, threads, n, slice, lane, index)
			// The first pass sets the block (it holds what an earlier hash
			// left in the buffer); the later passes XOR into it.
			if n == 0 {
				processBlock(&B[offset], &B[prev], &B[newOffset])
			} else {
				processBlockXOR(&B[offset], &B[prev], &B[newOffset])
			}
			index, offset = index+1, offset+1
		}
	}

	// A slice's segments read no block another lane writes in that slice,
	// so the lanes may run one after the other.
	for n := uint32(0); n < time; n++ {
		for slice := uint32(0); slice < syncPoints; slice++ {
			for lane := uint32(0); lane < threads; lane++ {
				processSegment(n, slice, lane)
			}
		}
	}
}

func extractKey(B []block, memory, threads, keyLen uint32) []byte {
	lanes := memory / threads
	for lane := uint32(0); lane < threads-1; lane++ {
		for i, v := range B[(lane*lanes)+lanes-1] {
			B[memory-1][i] ^= v
		}
	}

	var block [1024]byte
	for i, v := range B[memory-1] {
		binary.LittleEndian.PutUint64(block[i*8:], v)
	}
	key := make([]byte, keyLen)
	blake2bHash(key, block[:])
	return key
}

func indexAlpha(rand uint64, lanes, segments, threads, n, slice, lane, index uint32) uint32 {
	refLane := uint32(rand>>32) % threads
	if n == 0 && slice == 0 {
		refLane = lane
	}
	m, s := 3*segments, ((slice+1)%syncPoints)*segments
	if lane == refLane {
		m += index
	}
	if n == 0 {
		m, s = slice*segments, 0
		if slice == 0 || lane == refLane {
			m += index
		}
	}
	if index == 0 || lane == refLane {
		m--
	}
	return phi(rand, uint64(m), uint64(s), refLane, lanes)
}

func phi(rand, m, s uint64, lane, lanes uint32) uint32 {
	p := rand & 0xFFFFFFFF
	p = (p * p) >> 32
	p = (p * m) >> 32
	return lane*lanes + uint32((s+m-(p+1))%uint64(lanes))
}
