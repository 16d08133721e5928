package rules

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nudge-email/nudge/behavior"
)

func TestParseBadFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want []string
	}{
		{"unknown_field.bad.yaml", []string{
			`testdata/unknown_field.bad.yaml:4:3: rule "cart-abandonment": trigger: unknown field "wher" (did you mean "where"?)`,
			`testdata/unknown_field.bad.yaml:9:1: rule "cart-abandonment": unknown field "exits" (did you mean "exit"?)`,
		}},
		{"unknown_kind.bad.yaml", []string{
			`testdata/unknown_kind.bad.yaml:3:10: rule "typo-kind": trigger.event: unknown event kind "checkout_start" (did you mean "checkout_started"?)`,
			`testdata/unknown_kind.bad.yaml:5:12: rule "typo-kind": exit[1].event: unknown event kind "order_plac" (did you mean "order_placed"?)`,
			`testdata/unknown_kind.bad.yaml:6:12: rule "typo-kind": exit[2].event: unknown event kind "nonsense"`,
		}},
		{"misspelt_field.bad.yaml", []string{
			// Single-quoted: the column is the misspelt field's first letter.
			`testdata/misspelt_field.bad.yaml:4:42: rule "misspelt": trigger.where: profile has no field orders_cnt`,
			// Literal block, second line, with extra indentation kept.
			`testdata/misspelt_field.bad.yaml:9:9: rule "misspelt": steps[1].where: unknown name evnt`,
			// Double-quoted.
			`testdata/misspelt_field.bad.yaml:13:25: rule "misspelt": steps[1].send.data.first: profile has no field frist_name`,
		}},
		{"bad_duration.bad.yaml", []string{
			`testdata/bad_duration.bad.yaml:4:11: rule "bad-duration": steps[1].wait: invalid duration "1x" (examples: 90m, 36h, 7d, 2w)`,
			`testdata/bad_duration.bad.yaml:6:11: rule "bad-duration": steps[2].wait: invalid duration "-2h" (examples: 90m, 36h, 7d, 2w)`,
			`testdata/bad_duration.bad.yaml:9:18: rule "bad-duration": limits.reenter_after: invalid duration "7 days" (examples: 90m, 36h, 7d, 2w)`,
		}},
		{"bad_values.bad.yaml", []string{
			`testdata/bad_values.bad.yaml:1:5: rule "Bad_ID": id: "Bad_ID" must be lower-case letters, digits and dashes ([a-z0-9-])`,
			`testdata/bad_values.bad.yaml:2:44: rule "Bad_ID": trigger.where: must be true or false, but is int`,
			`testdata/bad_values.bad.yaml:5:27: rule "Bad_ID": steps[1].wait_until_best_hour: expected true or false, got "yes please"`,
			`testdata/bad_values.bad.yaml:7:17: rule "Bad_ID": steps[1].send.provider: unknown provider "postmark" (want log, sendgrid or mailgun)`,
			`testdata/bad_values.bad.yaml:9:11: rule "Bad_ID": priority: expected a whole number, got "high"`,
			`testdata/bad_values.bad.yaml:10:10: rule "Bad_ID": holdout: must be at least 0 and below 1, got 1.5`,
			`testdata/bad_values.bad.yaml:11:9: rule "Bad_ID": on_cap: must be "wait" or "skip", got "drop"`,
		}},
		{"bad_send.bad.yaml", []string{
			`testdata/bad_send.bad.yaml:6:7: rule "bad-send": steps[1].send: set either template or subject with html/text, not both`,
			`testdata/bad_send.bad.yaml:11:7: rule "bad-send": steps[2].send: needs a template, or a subject with html and/or text`,
			`testdata/bad_send.bad.yaml:14:16: rule "bad-send": steps[3].send.subject: template: subject:1: unclosed action`,
			`testdata/bad_send.bad.yaml:15:13: rule "bad-send": steps[3].send.html: template file templates/missing.html does not exist`,
			`testdata/bad_send.bad.yaml:18:13: rule "bad-send": steps[4].send.html: template: templates/broken.html:1: unexpected "<" in operand`,
			`testdata/bad_send.bad.yaml:20:9: rule "bad-send": steps[4].send.data.items: "items" is standard template data and cannot be overridden`,
			`testdata/bad_send.bad.yaml:21:18: rule "bad-send": steps[4].send.data.ok: ago: invalid duration "3 fortnights" (examples: 90m, 36h, 7d, 2w)`,
			`testdata/bad_send.bad.yaml:22:20: rule "bad-send": steps[4].send.data.n: events: unknown event kind "cart_update" (did you mean "cart_updated"?)`,
		}},
		{"missing.bad.yaml", []string{
			`testdata/missing.bad.yaml:1:1: missing required field "id"`,
			`testdata/missing.bad.yaml:1:1: missing required field "trigger"`,
			`testdata/missing.bad.yaml:1:1: missing required field "steps"`,
		}},
		{"syntax.bad.yaml", []string{
			`testdata/syntax.bad.yaml:4:1: invalid YAML: mapping values are not allowed in this context`,
		}},
		{"duplicate.bad.yaml", []string{
			`testdata/duplicate.bad.yaml:7:1: rule "twice": duplicate field "trigger"`,
			`testdata/duplicate.bad.yaml:8:8: rule "twice": steps: at least one step is required`,
		}},
		{"dup_id.bad.yaml", []string{
			`testdata/dup_id.bad.yaml:5:5: rule "twice": duplicate rule id (first defined at testdata/dup_id.bad.yaml:1:5)`,
		}},
		{"shape.bad.yaml", []string{
			`testdata/shape.bad.yaml:2:10: rule "shape": trigger: expected a mapping, got "checkout_started"`,
			`testdata/shape.bad.yaml:4:3: rule "shape": exit: expected a list, got a mapping`,
			`testdata/shape.bad.yaml:9:13: rule "shape": steps[1].send.data: expected a mapping of expressions, got "\"x\""`,
			`testdata/shape.bad.yaml:10:5: rule "shape": steps[2]: expected a mapping, got "just a string"`,
			`testdata/shape.bad.yaml:11:9: rule "shape": limits: expected a mapping, got "7d"`,
		}},
	}
	// Every bad file in testdata must be in the table, so a new one cannot
	// be added without its expected messages.
	files, err := filepath.Glob("testdata/*.bad.yaml")
	require.NoError(t, err)
	require.Len(t, files, len(tests))

	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			path := "testdata/" + tc.file
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			rs, err := Parse(data, path)
			require.Error(t, err)
			require.Nil(t, rs)
			var list Errors
			require.True(t, errors.As(err, &list))
			got := make([]string, len(list))
			for i, e := range list {
				got[i] = e.Error()
			}
			require.Equal(t, tc.want, got)
			// Load reports the same, all at once.
			_, err = Load([]string{path})
			require.EqualError(t, err, strings.Join(tc.want, "\n"))
		})
	}
}

func TestParseGood(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/good.yaml")
	require.NoError(t, err)
	rs, err := Parse(data, "testdata/good.yaml")
	require.NoError(t, err)
	require.Len(t, rs, 1)
	r := rs[0]
	require.Equal(t, "cart-abandonment", r.ID)
	require.Equal(t, 1, r.Line)
	require.Equal(t, 5, r.Col)
	require.Equal(t, behavior.CheckoutStarted, r.Trigger.Event)
	require.Equal(t, "event.value >= 2000", r.Trigger.Where.Source)
	require.Equal(t, []behavior.Kind{behavior.OrderPlaced, behavior.Unsubscribed}, []behavior.Kind{r.Exits[0].Event, r.Exits[1].Event})
	require.Len(t, r.Steps, 2)
	require.Equal(t, time.Hour, r.Steps[0].Wait)
	require.Equal(t, "d-0123456789abcdef", r.Steps[0].Send.Template)
	require.Equal(t, "discount_code", r.Steps[0].Send.Data[0].Key)
	require.Equal(t, 23*time.Hour, r.Steps[1].Wait)
	require.Equal(t, "sendgrid", r.Steps[1].Send.Provider)
	abs, err := filepath.Abs("testdata/templates/hello.html")
	require.NoError(t, err)
	require.Equal(t, abs, r.Steps[1].Send.HTMLFile)
	require.True(t, filepath.IsAbs(r.Steps[1].Send.TextFile))
	require.Equal(t, 7*24*time.Hour, r.Limits.ReenterAfter)
	require.Equal(t, 10, r.Priority)
	require.InDelta(t, 0.1, r.Holdout, 1e-9)
	require.Equal(t, OnCapWait, r.OnCap)
}

func TestLoadAcrossFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	a := write("a.yaml", "id: one\ntrigger: { event: order_placed }\nsteps: [{ wait: 2w, send: { template: t } }]\npriority: 1\n")
	b := write("b.yaml", "id: two\ntrigger: { event: order_placed }\nsteps: [{ wait: 90m, send: { template: t } }]\npriority: 5\n")
	empty := write("empty.yaml", "# nothing here yet\n")

	set, err := Load([]string{a, b, empty})
	require.NoError(t, err)
	require.Equal(t, 2, set.Len())
	require.Equal(t, "two", set.Rules()[0].ID, "higher priority first")
	require.Len(t, set.Triggered(behavior.OrderPlaced), 2)
	require.Empty(t, set.Triggered(behavior.OrderPaid))
	require.Equal(t, 14*24*time.Hour, set.Rule("one").Steps[0].Wait)
	require.Nil(t, set.Rule("three"))

	dup := write("c.yaml", "id: one\ntrigger: { event: order_paid }\nsteps: [{ send: { template: t } }]\n")
	bad := write("d.yaml", "id: bad\ntrigger: { event: nope }\nsteps: [{ send: { template: t } }]\n")
	_, err = Load([]string{a, b, dup, bad, filepath.Join(dir, "missing.yaml")})
	require.Error(t, err)
	var list Errors
	require.True(t, errors.As(err, &list))
	require.Len(t, list, 3)
	require.Equal(t, dup+`:1:5: rule "one": duplicate rule id (first defined at `+a+`:1:5)`, list[0].Error())
	require.Equal(t, bad+`:2:19: rule "bad": trigger.event: unknown event kind "nope"`, list[1].Error())
	require.Contains(t, list[2].Error(), "missing.yaml: read: ")
}

func TestExprPositions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		where string // the YAML text after "  where: " on line 4
		line  int
		col   int
	}{
		{"plain", "event.value > 1 && profile.nme == 1", 4, 37},
		{"single quoted with escaped quote", `'event.kind == ''x'' && profile.nme == 1'`, 4, 42},
		{"double quoted with escape", `"event.kind == \"x\" && profile.nme == 1"`, 4, 42},
		{"folded", ">\n    event.value > 1 &&\n    profile.nme == 1", 6, 13},
		{"literal", "|\n    event.value > 1\n      && profile.nme == 1", 6, 18},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := "id: pos\ntrigger:\n  event: order_placed\n  where: " + tc.where + "\nsteps: [{ send: { template: t } }]\n"
			_, err := Parse([]byte(src), "pos.yaml")
			var list Errors
			require.True(t, errors.As(err, &list), "%v", err)
			require.Len(t, list, 1, "%v", err)
			require.Equal(t, "trigger.where: profile has no field nme", list[0].Msg)
			require.Equal(t, [2]int{tc.line, tc.col}, [2]int{list[0].Line, list[0].Col}, "%v", err)
		})
	}
}

func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	examples, _ := filepath.Glob("../rules.d/*.yaml")
	for _, s := range append(seeds, examples...) {
		data, err := os.ReadFile(s)
		if err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("id: x\ntrigger: {event: order_placed, where: '"))
	f.Add([]byte("- - - [[[{{{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Parse(data, "testdata/fuzz.yaml")
		if err != nil {
			var list Errors
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error is not a non-empty Errors: %v", err)
			}
			if rs != nil {
				t.Fatal("rules returned with errors")
			}
			for _, e := range list {
				if e.Line < 0 || e.Col < 0 {
					t.Fatalf("bad position: %v", e)
				}
			}
			return
		}
		for _, r := range rs {
			if r.ID == "" || len(r.Steps) == 0 || !r.Trigger.Event.Valid() {
				t.Fatalf("accepted an incomplete rule: %+v", r)
			}
		}
	})
}
