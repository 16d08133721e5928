//go:build !linux

package main

import "os"

// fdatasync falls back to fsync where Linux's call does not exist.
func fdatasync(f *os.File) error { return f.Sync() }
