//go:build linux

package main

import (
	"os"
	"syscall"
)

// fdatasync is what bbolt calls on Linux.
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
