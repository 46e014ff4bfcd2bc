package main

import (
	"runtime/debug"
)

// heapFloor is the heap size below which vaultd's collector target never
// falls when GOGC is left unset.
//
// Why: vaultd's live heap is small (a few MiB beyond the grant index) while
// every request allocates tens of KiB, so at GOGC=50 the collector ran
// several dozen times a second under load: about a third of the CPU of an
// audited 4 KiB read went to marking, sweeping and assists. Raising GOGC
// trades that for memory in proportion to the live heap (GOGC=400 lets the
// heap reach five times the grant index of a large deployment). A floor
// instead costs a bounded amount: the collector's target becomes 1.5 times
// (live + floor), so at most floor/2 more garbage, whatever the live heap.
// Measured with BenchmarkLoad on the embedded defaults, alternating runs:
// vaultd's CPU per request fell by about a quarter (4 KiB audited read
// 316-381 to 230-237 us, /me 105-124 to 79-90 us) and peak RSS of eight
// concurrent 256 MiB transfers rose from 115 to 132 MiB.
const heapFloor = 64 << 20

// gcPercent is the collector's growth target when GOGC is unset: a heap that
// stays small while large transfers hold buffers (peak RSS with 8 concurrent
// 256 MiB transfers fell from 155 to 126 MiB against Go's default 100).
const gcPercent = 50

// tuneGC sets vaultd's collector when the operator has not (gogc and
// gomemlimit are the GOGC and GOMEMLIMIT environment variables): gcPercent
// and a ballast of heapFloor bytes, which the caller must keep reachable for
// as long as the server runs. The ballast is never written, so the kernel
// backs none of it with memory: it raises the collector's target without
// raising the resident set. With GOGC set, the operator's setting stands
// alone. With GOMEMLIMIT set there is no ballast either: the runtime counts
// it against the limit, and would collect as if the heap were 64 MiB fuller
// than it is.
func tuneGC(gogc, gomemlimit string) []byte {
	if gogc != "" {
		return nil
	}
	debug.SetGCPercent(gcPercent)
	if gomemlimit != "" {
		return nil
	}
	return make([]byte, heapFloor)
}
