package ruletest

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestExampleRules runs every rule test shipped in rules.d, so go test
// ./... fails when an example rule stops doing what its tests say.
func TestExampleRules(t *testing.T) {
	files, err := filepath.Glob("../../rules.d/*_test.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			res, err := Run(context.Background(), []string{f}, Options{})
			require.NoError(t, err)
			var out bytes.Buffer
			require.NoError(t, res.WriteText(&out))
			require.True(t, res.OK(), "%s", out.String())
			passed, _ := res.Counts()
			require.Positive(t, passed)
		})
	}
}
