package ruletest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/connectors"
)

func TestFailingRuleTestPrintsDiff(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	code := Main(context.Background(), &out, []string{"testdata/failing_test.yaml"}, "")
	require.Equal(t, 1, code)
	// The "why" lines quote the policy gate's reasons, whose wording is
	// the sending package's: checked loosely below.
	var diffOnly, why []string
	for _, l := range strings.SplitAfter(out.String(), "\n") {
		if strings.HasPrefix(l, "    why: ") {
			why = append(why, l)
			continue
		}
		diffOnly = append(diffOnly, l)
	}
	require.Equal(t, `FAIL testdata/failing_test.yaml: "wrong times": sends differ (- expected, + actual)
    + at 1h       rule reminder step 1 to ann@example.com
    - at 2h       rule reminder step 1 to ann@example.com
FAIL testdata/failing_test.yaml: "expects a send that never happens": sends differ (- expected, + actual)
    - at 1h       rule reminder step 1 to cy@example.com
FAILED: 2 of 3 tests failed
`, strings.Join(diffOnly, ""))
	require.Len(t, why, 2)
	require.Equal(t, "    why: ann@example.com reminder: journey started at 0s, completed\n", why[0])
	require.Contains(t, why[1], "cy@example.com reminder: journey started at 0s, suppressed (")
	require.Contains(t, why[1], "consent")
}

func TestRunFilter(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	code := Main(context.Background(), &out, []string{"testdata/failing_test.yaml"}, "^pass")
	require.Equal(t, 0, code, out.String())
	require.Equal(t, "SUCCESS: 1 tests passed\n", out.String())

	res, err := Run(context.Background(), []string{"testdata/failing_test.yaml"}, Options{Run: regexp.MustCompile("wrong")})
	require.NoError(t, err)
	require.Len(t, res.Files[0].Cases, 1)
	c := res.Files[0].Cases[0]
	require.Equal(t, []string{
		"at 2h       rule reminder step 1 to ann@example.com",
		"at 1d       rule reminder step 2 to ann@example.com",
	}, c.Expected)
	require.Equal(t, []string{
		"at 1h       rule reminder step 1 to ann@example.com",
		"at 1d       rule reminder step 2 to ann@example.com",
	}, c.Actual)

	require.Equal(t, 1, Main(context.Background(), &out, []string{"x"}, "("))
}

func TestBadTestFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	rule := write("r.yaml", "id: r\ntrigger: { event: checkout_started }\nsteps: [{ wait: 1h, send: { template: t } }]\n")
	_ = rule
	tests := []struct {
		name, body, want string
	}{
		{"unknown key", "rule_files: [r.yaml]\ntests:\n  - name: x\n    evnts: []\n", "field evnts not found"},
		{"no rule files", "tests: []\n", "rule_files: at least one rule file is required"},
		{"broken rule", "rule_files: [missing.yaml]\ntests: []\n", "missing.yaml: read:"},
		{"bad kind", "rule_files: [r.yaml]\ntests:\n  - name: x\n    events: [{ at: 0s, kind: checkout }]\n", `events[1]: kind: unknown event kind "checkout"`},
		{"bad offset", "rule_files: [r.yaml]\ntests:\n  - name: x\n    events: [{ at: soon, kind: checkout_started }]\n", `events[1].at: invalid duration "soon"`},
		{"bad consent", "rule_files: [r.yaml]\ntests:\n  - name: x\n    events: [{ at: 0s, kind: checkout_started, email: a@b.c, consent: yes }]\n", `consent: want granted, denied or pending, got "yes"`},
	}
	for _, tc := range tests {
		f := write(tc.name+"_test.yaml", tc.body)
		var out bytes.Buffer
		require.Equal(t, 1, Main(context.Background(), &out, []string{f}, ""), tc.name)
		require.Contains(t, out.String(), tc.want, tc.name)
		require.Contains(t, out.String(), "FAILED", tc.name)
	}
}

func TestPoliciesExtension(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rule, err := filepath.Abs("testdata/reminder.yaml")
	require.NoError(t, err)
	// Quiet hours from 21:00 to 08:00 UTC and a start at 20:30: step 1,
	// due 21:30, waits until 08:00; step 2, due 23 h later at 07:00, waits
	// for 08:00 again.
	body := `rule_files: [` + rule + `]
start: 2026-01-05T20:30:00Z
policies:
  require_consent: true
  quiet_hours: { start: "21:00", end: "08:00" }
tests:
  - name: quiet hours move the first reminder to the morning
    events:
      - { at: 0s, kind: checkout_started, email: ann@example.com, consent: granted }
    expect_sends:
      - { at: 11h30m, rule: reminder, step: 1, email: ann@example.com }
      - { at: 1d11h30m, rule: reminder, step: 2, email: ann@example.com }
`
	f := filepath.Join(dir, "quiet_test.yaml")
	require.NoError(t, os.WriteFile(f, []byte(body), 0o600))
	var out bytes.Buffer
	require.Equal(t, 0, Main(context.Background(), &out, []string{f}, ""), out.String())
}

func TestFormatOffset(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		0:                              "0s",
		45 * time.Second:               "45s",
		90 * time.Minute:               "1h30m",
		24 * time.Hour:                 "1d",
		50*time.Hour + 30*time.Minute:  "2d2h30m",
		-time.Hour:                     "-1h",
		8*24*time.Hour + time.Hour + 1: "8d1h",
	} {
		require.Equal(t, want, FormatOffset(d), d.String())
	}
}

func TestRecorderSharesOneLog(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(DefaultStart)
	rec := NewRecorder(clk)
	senders := rec.Senders()
	require.Len(t, senders, 3)
	ctx := context.Background()
	_, err := senders["sendgrid"].Send(ctx, connectors.Message{SendID: "a"})
	require.NoError(t, err)
	clk.Advance(time.Minute)
	res, err := senders["mailgun"].Send(ctx, connectors.Message{SendID: "b"})
	require.NoError(t, err)
	require.Equal(t, connectors.Result{Provider: "mailgun", ProviderMessageID: "rec-b"}, res)
	got := rec.Messages()
	require.Len(t, got, 2)
	require.Equal(t, "sendgrid", got[0].Provider)
	require.Equal(t, DefaultStart.Add(time.Minute), got[1].At)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = rec.Send(cancelled, connectors.Message{SendID: "c"})
	require.ErrorIs(t, err, context.Canceled)
	require.Len(t, rec.Messages(), 2)
}

func FuzzParseTestFile(f *testing.F) {
	seeds, _ := filepath.Glob("../../rules.d/*_test.yaml")
	more, _ := filepath.Glob("testdata/*_test.yaml")
	for _, s := range append(seeds, more...) {
		if data, err := os.ReadFile(s); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tf, err := Parse(data, "fuzz_test.yaml")
		if err == nil && len(tf.RuleFiles) == 0 {
			t.Fatal("accepted a file without rule_files")
		}
		for _, tc := range tf.Tests {
			for i, ev := range tc.Events {
				// Converting events must fail cleanly, never panic.
				_, _ = ev.record("fuzz", 0, i, DefaultStart)
				_, _ = offset(ev.At)
			}
		}
	})
}
