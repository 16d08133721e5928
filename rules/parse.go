package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"

	"github.com/nudge-email/nudge/behavior"
)

// MaxIDLen bounds rule ids; they appear in keys, URLs and send tags.
const MaxIDLen = 64

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// reservedData are the template data keys every send gets (CONTRACT §5);
// send.data may not shadow them.
var reservedData = []string{"customer", "items", "recommendations", "recovery_url", "unsubscribe_url", "store", "rule", "step"}

// Load parses every file and checks that rule ids are unique across them.
// It returns every problem of every file at once, as Errors.
func Load(files []string) (*Set, error) {
	var all []*Rule
	var errs Errors
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, &Error{File: f, Msg: fmt.Sprintf("read: %v", err)})
			continue
		}
		rs, err := Parse(data, f)
		var list Errors
		switch {
		case errors.As(err, &list):
			errs = append(errs, list...)
		case err != nil:
			errs = append(errs, &Error{File: f, Msg: err.Error()})
		}
		all = append(all, rs...)
	}
	errs = append(errs, duplicates(all)...)
	if len(errs) > 0 {
		return nil, errs.sorted()
	}
	return newSet(all, slices.Clone(files)), nil
}

// NewSet builds a set from rules already parsed (tests, tools); ids must
// be unique.
func NewSet(rs ...*Rule) (*Set, error) {
	if errs := duplicates(rs); len(errs) > 0 {
		return nil, errs
	}
	var files []string
	for _, r := range rs {
		if r.File != "" && !slices.Contains(files, r.File) {
			files = append(files, r.File)
		}
	}
	return newSet(rs, files), nil
}

func duplicates(rs []*Rule) Errors {
	var errs Errors
	first := map[string]*Rule{}
	for _, r := range rs {
		if f, ok := first[r.ID]; ok {
			errs = append(errs, &Error{
				File: r.File, Line: r.Line, Col: r.Col, Rule: r.ID,
				Msg: fmt.Sprintf("duplicate rule id (first defined at %s:%d:%d)", f.File, f.Line, f.Col),
			})
			continue
		}
		first[r.ID] = r
	}
	return errs
}

// Parse reads the rules in data, which came from file (used in messages
// and to resolve local template paths). A file holds one rule, or several
// separated by `---`. Every problem is returned at once, as Errors.
func Parse(data []byte, file string) ([]*Rule, error) {
	p := &parser{file: file, dir: filepath.Dir(file), lines: strings.Split(string(data), "\n")}
	for i, l := range p.lines {
		p.lines[i] = strings.TrimSuffix(l, "\r")
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []*Rule
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			p.ruleID = ""
			p.yamlError(err)
			break
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := deref(doc.Content[0])
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			continue // an empty document, e.g. a file of comments
		}
		if r := p.rule(root); r != nil {
			out = append(out, r)
		}
	}
	if errs := duplicates(out); len(errs) > 0 {
		p.errs = append(p.errs, errs...)
	}
	if len(p.errs) > 0 {
		return nil, p.errs.sorted()
	}
	return out, nil
}

type parser struct {
	file   string
	dir    string
	lines  []string
	ruleID string // of the rule being parsed, for messages
	errs   Errors
}

func (p *parser) errorAt(line, col int, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Col: col, Rule: p.ruleID, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	p.errorAt(n.Line, n.Column, format, args...)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// yamlError reports a YAML syntax error; yaml.v3 gives a line but no column.
func (p *parser) yamlError(err error) {
	msg := err.Error()
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	col := 0
	if line > 0 {
		col = 1
	}
	p.errorAt(line, col, "invalid YAML: %s", msg)
}

// deref follows aliases to the node they name.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

// fields checks a mapping strictly: known keys only, no duplicates. It
// returns the value nodes by key; nil when n is not a mapping.
func (p *parser) fields(n *yaml.Node, path string, known ...string) map[string]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%sexpected a mapping, got %s", prefix(path), kindName(n))
		return nil
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		if !slices.Contains(known, k.Value) {
			msg := fmt.Sprintf("%sunknown field %q", prefix(path), k.Value)
			if near := nearest(k.Value, known); near != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", near)
			}
			p.errorf(k, "%s", msg)
			continue
		}
		if _, dup := out[k.Value]; dup {
			p.errorf(k, "%sduplicate field %q", prefix(path), k.Value)
			continue
		}
		out[k.Value] = v
	}
	return out
}

// prefix renders a field path for a message: "steps[1].send: ".
func prefix(path string) string {
	if path == "" {
		return ""
	}
	return path + ": "
}

func nearest(s string, options []string) string {
	best, bestD := "", 3
	for _, o := range options {
		if d := editDistance(s, o); d < bestD {
			best, bestD = o, d
		}
	}
	return best
}

// str reads a scalar as a string.
func (p *parser) str(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, "%s: expected a string, got %s", path, kindName(n))
		return "", false
	}
	return n.Value, true
}

func (p *parser) rule(n *yaml.Node) *Rule {
	p.ruleID = ""
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "id" && n.Content[i+1].Kind == yaml.ScalarNode {
				p.ruleID = n.Content[i+1].Value
			}
		}
	}
	before := len(p.errs)
	f := p.fields(n, "", "id", "description", "trigger", "exit", "steps", "limits", "priority", "holdout", "on_cap")
	if f == nil {
		return nil
	}
	r := &Rule{File: p.file, Line: n.Line, Col: n.Column, OnCap: OnCapWait}

	if v, ok := f["id"]; !ok {
		p.errorf(n, "missing required field \"id\"")
	} else if id, ok := p.str(v, "id"); ok {
		r.ID, r.Line, r.Col = id, v.Line, v.Column
		switch {
		case len(id) > MaxIDLen:
			p.errorf(v, "id: longer than %d characters", MaxIDLen)
		case !idPattern.MatchString(id):
			p.errorf(v, "id: %q must be lower-case letters, digits and dashes ([a-z0-9-])", id)
		}
	}
	if v, ok := f["description"]; ok {
		r.Description, _ = p.str(v, "description")
	}

	if v, ok := f["trigger"]; !ok {
		p.errorf(n, "missing required field \"trigger\"")
	} else {
		r.Trigger = p.trigger(v)
	}

	if v, ok := f["exit"]; ok {
		r.Exits = p.exits(v)
	}

	if v, ok := f["steps"]; !ok {
		p.errorf(n, "missing required field \"steps\"")
	} else {
		r.Steps = p.steps(v)
	}

	if v, ok := f["limits"]; ok {
		if lf := p.fields(v, "limits", "reenter_after"); lf != nil {
			if d, ok := lf["reenter_after"]; ok {
				if s, ok := p.str(d, "limits.reenter_after"); ok {
					dur, err := parseDuration(s)
					if err != nil {
						p.errorf(d, "limits.reenter_after: %v", err)
					}
					r.Limits.ReenterAfter = dur
				}
			}
		}
	}

	if v, ok := f["priority"]; ok {
		var prio int
		if v.Kind != yaml.ScalarNode || v.Tag != "!!int" || v.Decode(&prio) != nil {
			p.errorf(v, "priority: expected a whole number, got %s", kindName(v))
		}
		r.Priority = prio
	}

	if v, ok := f["holdout"]; ok {
		var h float64
		switch {
		case v.Kind != yaml.ScalarNode || (v.Tag != "!!float" && v.Tag != "!!int") || v.Decode(&h) != nil:
			p.errorf(v, "holdout: expected a number, got %s", kindName(v))
		case h < 0 || h >= 1:
			p.errorf(v, "holdout: must be at least 0 and below 1, got %s", v.Value)
		}
		r.Holdout = h
	}

	if v, ok := f["on_cap"]; ok {
		if s, ok := p.str(v, "on_cap"); ok {
			if s != OnCapWait && s != OnCapSkip {
				p.errorf(v, "on_cap: must be %q or %q, got %q", OnCapWait, OnCapSkip, s)
			}
			r.OnCap = s
		}
	}

	if len(p.errs) > before {
		return nil
	}
	return r
}

// kind reads an event kind.
func (p *parser) kind(n *yaml.Node, path string) (behavior.Kind, bool) {
	s, ok := p.str(n, path)
	if !ok {
		return "", false
	}
	k := behavior.Kind(s)
	if !k.Valid() {
		p.errorf(n, "%s: %s", path, unknownKind(s))
		return "", false
	}
	return k, true
}

func (p *parser) trigger(n *yaml.Node) Trigger {
	var t Trigger
	f := p.fields(n, "trigger", "event", "where")
	if f == nil {
		return t
	}
	if v, ok := f["event"]; !ok {
		p.errorf(n, "trigger: missing required field \"event\"")
	} else {
		t.Event, _ = p.kind(v, "trigger.event")
	}
	if v, ok := f["where"]; ok {
		t.Where = p.compileExpr(v, "trigger.where", true)
	}
	return t
}

func (p *parser) exits(n *yaml.Node) []Exit {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "exit: expected a list, got %s", kindName(n))
		return nil
	}
	var out []Exit
	for i, en := range n.Content {
		en = deref(en)
		path := fmt.Sprintf("exit[%d]", i+1)
		f := p.fields(en, path, "event", "where")
		if f == nil {
			continue
		}
		var e Exit
		if v, ok := f["event"]; !ok {
			p.errorf(en, "%s: missing required field \"event\"", path)
		} else {
			e.Event, _ = p.kind(v, path+".event")
		}
		if v, ok := f["where"]; ok {
			e.Where = p.compileExpr(v, path+".where", true)
		}
		out = append(out, e)
	}
	return out
}

func (p *parser) steps(n *yaml.Node) []Step {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "steps: expected a list, got %s", kindName(n))
		return nil
	}
	if len(n.Content) == 0 {
		p.errorf(n, "steps: at least one step is required")
		return nil
	}
	var out []Step
	for i, sn := range n.Content {
		sn = deref(sn)
		path := fmt.Sprintf("steps[%d]", i+1)
		f := p.fields(sn, path, "wait", "wait_until_best_hour", "where", "send")
		if f == nil {
			continue
		}
		var s Step
		if v, ok := f["wait"]; ok {
			if str, ok := p.str(v, path+".wait"); ok {
				d, err := parseDuration(str)
				if err != nil {
					p.errorf(v, "%s.wait: %v", path, err)
				}
				s.Wait = d
			}
		}
		if v, ok := f["wait_until_best_hour"]; ok {
			if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" || v.Decode(&s.BestHour) != nil {
				p.errorf(v, "%s.wait_until_best_hour: expected true or false, got %s", path, kindName(v))
			}
		}
		if v, ok := f["where"]; ok {
			s.Where = p.compileExpr(v, path+".where", true)
		}
		if v, ok := f["send"]; !ok {
			p.errorf(sn, "%s: missing required field \"send\"", path)
		} else {
			s.Send = p.send(v, path+".send")
		}
		out = append(out, s)
	}
	return out
}

func (p *parser) send(n *yaml.Node, path string) Send {
	var s Send
	f := p.fields(n, path, "provider", "template", "subject", "html", "text", "data")
	if f == nil {
		return s
	}
	if v, ok := f["provider"]; ok {
		if str, ok := p.str(v, path+".provider"); ok {
			if !slices.Contains(providers, str) {
				p.errorf(v, "%s.provider: unknown provider %q (want log, sendgrid or mailgun)", path, str)
			}
			s.Provider = str
		}
	}
	if v, ok := f["template"]; ok {
		s.Template, _ = p.str(v, path+".template")
	}
	if v, ok := f["subject"]; ok {
		if str, ok := p.str(v, path+".subject"); ok {
			s.Subject = str
			if err := checkTemplate("subject", str); err != nil {
				p.errorf(v, "%s.subject: %v", path, err)
			}
		}
	}
	s.HTMLFile = p.templateFile(f["html"], path+".html")
	s.TextFile = p.templateFile(f["text"], path+".text")

	local := s.Subject != "" || s.HTMLFile != "" || s.TextFile != ""
	switch {
	case s.Template != "" && local:
		p.errorf(n, "%s: set either template or subject with html/text, not both", path)
	case s.Template == "" && !local && !p.failedAt(path):
		p.errorf(n, "%s: needs a template, or a subject with html and/or text", path)
	case local && s.Subject == "" && !p.failedAt(path+".subject"):
		p.errorf(n, "%s: local templates need a subject", path)
	case local && s.HTMLFile == "" && s.TextFile == "" && !p.failedAt(path+".html") && !p.failedAt(path+".text"):
		p.errorf(n, "%s: a subject needs html and/or text", path)
	}

	if v, ok := f["data"]; ok {
		if v.Kind != yaml.MappingNode {
			p.errorf(v, "%s.data: expected a mapping of expressions, got %s", path, kindName(v))
		} else {
			seen := map[string]bool{}
			for i := 0; i+1 < len(v.Content); i += 2 {
				k, ev := v.Content[i], deref(v.Content[i+1])
				field := path + ".data." + k.Value
				switch {
				case seen[k.Value]:
					p.errorf(k, "%s.data: duplicate field %q", path, k.Value)
					continue
				case slices.Contains(reservedData, k.Value):
					p.errorf(k, "%s: %q is standard template data and cannot be overridden", field, k.Value)
					continue
				}
				seen[k.Value] = true
				if e := p.compileExpr(ev, field, false); e != nil {
					s.Data = append(s.Data, DataField{Key: k.Value, Expr: e})
				}
			}
		}
	}
	return s
}

// failedAt reports whether a problem was already reported for path, so a
// missing-piece message does not pile onto a more precise one.
func (p *parser) failedAt(path string) bool {
	for _, e := range p.errs {
		if strings.HasPrefix(e.Msg, path+":") || strings.HasPrefix(e.Msg, path+".") {
			return true
		}
	}
	return false
}

// templateFile resolves a local template path relative to the rule file,
// checks that it exists and parses, and returns its absolute path.
func (p *parser) templateFile(n *yaml.Node, path string) string {
	if n == nil {
		return ""
	}
	rel, ok := p.str(n, path)
	if !ok {
		return ""
	}
	full := rel
	if !filepath.IsAbs(full) {
		full = filepath.Join(p.dir, rel)
	}
	data, err := os.ReadFile(full)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			p.errorf(n, "%s: template file %s does not exist", path, rel)
		} else {
			p.errorf(n, "%s: template file %s: %v", path, rel, err)
		}
		return ""
	}
	if err := checkTemplate(rel, string(data)); err != nil {
		p.errorf(n, "%s: %v", path, err)
		return ""
	}
	abs, err := filepath.Abs(full)
	if err != nil {
		return full
	}
	return abs
}

// checkTemplate parses a Go template as the sender will, so syntax errors
// and unknown functions fail at load rather than at send time. (HTML
// templates parse with the same grammar; their escaping is applied when
// they run.)
func checkTemplate(name, text string) error {
	_, err := template.New(name).Parse(text)
	return err
}
