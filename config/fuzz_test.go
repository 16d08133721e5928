package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse: it must never panic, must
// answer the same way twice, and must either return a config or a
// non-empty ErrorList whose every item names the file.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	seeds = append(seeds, "../config.example.yaml")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("a: &a [*a]"))
	f.Add([]byte("x: &x {y: *x}"))
	f.Add([]byte("admin: {token: \"${A:-${B:-${C}}}\"}"))
	getenv := env(map[string]string{"A": "", "SET": "v"})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yaml", getenv)
		if err != nil {
			if c != nil {
				t.Fatal("config returned with an error")
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error is not a non-empty ErrorList: %v", err)
			}
			for _, e := range list {
				if e.File != "fuzz.yaml" || e.Line < 0 || e.Col < 0 || e.Msg == "" {
					t.Fatalf("malformed error item %+v", e)
				}
			}
		} else if c == nil || c.Path != "fuzz.yaml" {
			t.Fatalf("Parse returned %v without an error", c)
		}
		c2, err2 := Parse(data, "fuzz.yaml", getenv)
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) || !reflect.DeepEqual(c, c2) {
			t.Fatalf("Parse is not deterministic: %v / %v", err, err2)
		}
	})
}
