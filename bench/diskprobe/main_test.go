package main

import (
	"os"
	"strings"
	"testing"
)

func TestProbeReportsEachSizeAndCleansUp(t *testing.T) {
	dir := t.TempDir()
	out, err := probe(dir, 3, []int{1, 2}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1 page(s) ", "2 page(s) ", "median / p99 of 3"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("probe left %d files behind", len(left))
	}
}

func TestProbeFailsOnMissingDir(t *testing.T) {
	if _, err := probe(t.TempDir()+"/missing", 1, []int{1}, 1000); err == nil {
		t.Fatal("probe of a missing directory succeeded")
	}
}
