//go:build linux

package storage

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// releaseSupported: see (*DB).ReleaseMapped.
const releaseSupported = true

// residentFileBytes is how much of the process's memory is resident file
// pages (with shared memory: /proc/self/statm's third field, RssFile +
// RssShmem in /proc/self/status), from counters the kernel keeps.
func residentFileBytes() (int64, bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	f := bytes.Fields(b)
	if len(f) < 3 {
		return 0, false
	}
	pages, err := strconv.ParseInt(string(f[2]), 10, 64)
	if err != nil {
		return 0, false
	}
	return pages * int64(os.Getpagesize()), true
}

// releaseMapping advises the kernel that [addr, addr+size) is not needed:
// for a shared file mapping, its page-table entries go and the pages stay
// in the page cache. The mapping is not Go memory, so the raw system call
// takes the address as is.
func releaseMapping(addr, size uintptr) error {
	if size == 0 {
		return nil
	}
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, addr, size, syscall.MADV_DONTNEED); errno != 0 {
		return errno
	}
	return nil
}

// mappedSize returns the length of the mapping that starts at addr, from
// /proc/self/maps: bbolt maps more than the file holds (1 GiB up front,
// then in steps) and does not say how much. Should the kernel have split
// the mapping into adjacent areas of the same file, they are summed.
func mappedSize(addr uintptr) (uintptr, bool) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var end uint64
	var path []byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 7f2c4a000000-7f2c8a000000 r--s 00000000 08:01 1234   /data/nudge.db
		fields := bytes.Fields(sc.Bytes())
		if len(fields) < 6 {
			if end != 0 {
				break
			}
			continue
		}
		lo, hi, ok := bytes.Cut(fields[0], []byte("-"))
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		stop, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		switch {
		case end == 0 && start == uint64(addr):
			end, path = stop, bytes.Clone(fields[5])
		case end != 0 && start == end && bytes.Equal(fields[5], path):
			end = stop
		case end != 0:
			return uintptr(end) - addr, true
		}
	}
	if end == 0 {
		return 0, false
	}
	return uintptr(end) - addr, true
}
