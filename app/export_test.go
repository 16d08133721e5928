package app

import (
	"path/filepath"
	"testing"

	"github.com/nudge-email/nudge/config"
)

// exampleConfig is config.example.yaml with a fresh data dir and the
// shipped rules, for tests of this package and of app_test.
func exampleConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	rulesDir, err := filepath.Abs("../rules.d")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Rules = []string{filepath.Join(rulesDir, "*.yaml")}
	return cfg
}

// ExampleConfig exports exampleConfig to the external tests.
var ExampleConfig = exampleConfig
