package rules

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	examples, err := filepath.Glob("../rules.d/*.yaml")
	require.NoError(t, err)
	var files []string
	for _, f := range examples {
		if !bytes.HasSuffix([]byte(f), []byte("_test.yaml")) {
			files = append(files, f)
		}
	}
	require.Len(t, files, 8, "the eight example campaigns")

	var out bytes.Buffer
	set, err := Check(&out, files)
	require.NoError(t, err)
	require.Equal(t, "ok: 8 rules\n", out.String())
	for _, id := range []string{"cart-abandonment", "browse-abandonment", "post-purchase", "replenishment", "win-back", "sunset", "back-in-stock", "price-drop"} {
		require.NotNil(t, set.Rule(id), id)
	}

	out.Reset()
	_, err = Check(&out, []string{"testdata/good.yaml", "testdata/unknown_kind.bad.yaml"})
	require.Error(t, err)
	require.Equal(t, `testdata/unknown_kind.bad.yaml:3:10: rule "typo-kind": trigger.event: unknown event kind "checkout_start" (did you mean "checkout_started"?)
testdata/unknown_kind.bad.yaml:5:12: rule "typo-kind": exit[1].event: unknown event kind "order_plac" (did you mean "order_placed"?)
testdata/unknown_kind.bad.yaml:6:12: rule "typo-kind": exit[2].event: unknown event kind "nonsense"
`, out.String())
}
