package app

import "runtime/debug"

// GCPercent is the garbage collector's target the nudge binary runs with
// when GOGC is not set. nudge's live heap is small (the store is bbolt's
// memory map, outside the heap) while every webhook and due step churns
// through JSON, so collecting at 200 % growth instead of Go's 100 % buys
// CPU for a few tens of MB: bench/sched went from 5,400–5,650 to
// 6,100–6,700 due steps/s in alternating runs, and bench/memory.sh stays
// far below its 250 MB bound (bench/README.md).
const GCPercent = 200

// TuneGC sets the process's collector target to GCPercent unless the
// GOGC environment variable (read through getenv) chooses one. It
// changes process-wide runtime state, so only a main package calls it,
// once, before starting work.
func TuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
}
