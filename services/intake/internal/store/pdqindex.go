package store

import (
	"fmt"
	"strings"

	"takedown/pkg/pdq"
)

// "Reported before?" finds PDQ hashes within a Hamming distance by
// multi-index hashing (Norouzi, Punjani and Fleet, "Fast Search in Hamming
// Space with Multi-Index Hashing", CVPR 2012) over btree indexes in
// PostgreSQL: the 256 bits are cut into pdqChunkCount pieces, each with an
// expression index (migration 0008). Two hashes within distance d agree
// closely in some piece (pigeonhole, pdqRadii), so the lookup probes, in
// every piece's index, each value within that piece's radius of the file's
// piece, and verifies the few rows found with the exact bit count.
//
// Why in PostgreSQL and not an index in memory: PostgreSQL stays the one
// truth, every intake replica sees a file the moment its report commits, and
// nothing is rebuilt at start or kept current from events. The figures are
// in the README (BenchmarkReportedBefore): the lookup costs about the same at
// 10k and at 1M stored hashes.
//
// Why 11 pieces: MIH is fastest with pieces of about log2(N) bits, ~23 at
// 10M hashes. At the default distance 31 piece 0 is probed within 1 bit and
// the others within 2: 2843 probes per file, and about one stored row per
// probe at 10M (2^23 values per piece), so probes and candidates cost alike.
//
// Where the time goes (measured at 1M hashes, PostgreSQL 15): each probe is
// a descent of a btree of height 3, ~3 buffer accesses, ~8.5k per file,
// about 10 ms of server CPU; a probe's neighbours differ in low bits and
// fall on the same leaf, so the leaves a lookup reads stay few and cached.
// Tried and not kept, as no cheaper: the probes as one index scan per piece
// (= ANY of the array, alone or in a BitmapOr; the same CPU within noise,
// the descents being the cost), hash indexes (one page per probe, but
// scattered: 3x the pages read, 2.5x the CPU, 1.5x the disk), and covering
// indexes INCLUDE (id, pdq_bits) for index-only candidate checks (3.8x the
// disk, more pages read, no faster).
const pdqChunkCount = 11

// pdqMaxProbes bounds the probes of one file. Beyond it (a distance above
// 44 bits: 41k probes and more) the lookup compares every stored
// PDQ as it did before the index; such a distance is far past PDQ's own
// threshold of 31 and matches unrelated images anyway.
const pdqMaxProbes = 40_000

// pdqChunk is bits [start, start+width) of a PDQ hash, counted from 1 as
// SQL's substring counts, the first bit being the top bit of the hash's
// first hex digit (the order of the pdq_bits column).
type pdqChunk struct{ start, width int }

// pdqChunks is the layout of migration 0008's indexes files_pdq_0 …
// files_pdq_10: three pieces of 24 bits, then eight of 23. The property
// test fails if the two disagree (matches would be missed).
var pdqChunks = func() []pdqChunk {
	const bits = 8 * len(pdq.Hash{})
	var out []pdqChunk
	start := 1
	for i := range pdqChunkCount {
		w := bits / pdqChunkCount
		if i < bits%pdqChunkCount {
			w++
		}
		out = append(out, pdqChunk{start, w})
		start += w
	}
	return out
}()

// sql is the expression the piece's index is built on.
func (c pdqChunk) sql(column string) string {
	return fmt.Sprintf("substring(%s FROM %d FOR %d)::int", column, c.start, c.width)
}

// value is the piece of h as the index expression computes it.
func (c pdqChunk) value(h pdq.Hash) int32 {
	var v int32
	for i := c.start - 1; i < c.start-1+c.width; i++ {
		v = v<<1 | int32(h[i/8]>>(7-i%8)&1)
	}
	return v
}

// pdqRadii is, for each piece, the bits within which it is probed at
// maxDistance = r·pdqChunkCount + a (0 ≤ a < pdqChunkCount): r for the last
// a+1 pieces, r-1 (-1: not probed) for the others. Two hashes within
// maxDistance agree so closely in at least one piece, or else they would
// differ in at least (pdqChunkCount-a-1)·r + (a+1)·(r+1) = maxDistance+1
// bits. The pieces probed less are the first, the widest: the most probes
// saved (at the default 31 bits: piece 0 within 1 bit, the others 2).
func pdqRadii(maxDistance int) []int {
	r, a := maxDistance/pdqChunkCount, maxDistance%pdqChunkCount
	radii := make([]int, pdqChunkCount)
	for i := range radii {
		radii[i] = r
		if i < pdqChunkCount-a-1 {
			radii[i] = r - 1
		}
	}
	return radii
}

// pdqProbeCount is the probes of one file at maxDistance.
func pdqProbeCount(maxDistance int) int {
	n := 0
	for i, r := range pdqRadii(maxDistance) {
		n += ballSize(pdqChunks[i].width, r)
	}
	return n
}

// ballSize is the number of w-bit values within r bits of one value (none
// for r < 0).
func ballSize(w, r int) int {
	n, binom := 0, 1
	for k := 0; k <= r && k <= w; k++ {
		n += binom
		binom = binom * (w - k) / (k + 1)
	}
	return n
}

// pdqProbes appends to probes[i], for each piece i, every value within
// radii[i] bits of h's piece.
func pdqProbes(probes [][]int32, h pdq.Hash, radii []int) {
	for i, c := range pdqChunks {
		probes[i] = appendBall(probes[i], c.value(h), c.width, radii[i])
	}
}

// appendBall appends v with every combination of up to r of its low w bits
// flipped (nothing for r < 0).
func appendBall(out []int32, v int32, w, r int) []int32 {
	if r < 0 {
		return out
	}
	out = append(out, v)
	if r == 0 {
		return out
	}
	for i := range w {
		// Flip bit i, then only bits below it, so each set is made once.
		out = appendBall(out, v^1<<i, i, r-1)
	}
	return out
}

// pdqPairs is the SQL that pairs each file f with the stored files o of a
// PDQ hash within $2 bits, found through the piece indexes: $first is the
// parameter number of piece 0's probes (of every file of the report: a row
// one file's probe finds is checked against each file). Each probe is one
// index lookup, whatever the size of the table: OFFSET 0 keeps the planner
// from turning the probes into a hash join over every stored file, which
// it prefers when it misjudges how few rows the probes find.
func pdqPairs(first int) string {
	arms := make([]string, len(pdqChunks))
	for i, c := range pdqChunks {
		arms[i] = fmt.Sprintf(`SELECT %s FROM unnest($%d::int[]) AS probe(v)
			CROSS JOIN LATERAL (SELECT * FROM files o WHERE %s = probe.v OFFSET 0) o
			JOIN f ON bit_count(f.pdq_bits # o.pdq_bits) <= $2`, pairColumns, first+i, c.sql("o.pdq_bits"))
	}
	return strings.Join(arms, "\n\t\t\tUNION ")
}
