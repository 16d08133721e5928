//go:build !linux

package storage

// releaseSupported: see (*DB).ReleaseMapped. Elsewhere the call does
// nothing.
const releaseSupported = false

func releaseMapping(addr, size uintptr) error { return nil }

func mappedSize(addr uintptr) (uintptr, bool) { return 0, false }

func residentFileBytes() (int64, bool) { return 0, false }
