package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Defaults that apply when a key is absent from the file. Relative paths
// (data_dir) are relative to the working directory, like most tools;
// rule globs alone are relative to the config file (CONTRACT §2).
const (
	DefaultListen          = "127.0.0.1:8080"
	DefaultDataDir         = "./data"
	DefaultTimezone        = "UTC"
	DefaultProvider        = "log"
	DefaultSendGridAPIBase = "https://api.sendgrid.com"
	DefaultMailgunAPIBase  = "https://api.mailgun.net/v3"
	DefaultMaxBodyBytes    = 1 << 20
	DefaultRuleGlob        = "rules.d/*.yaml"
)

// defaults is the configuration an empty file yields. Secrets, stores and
// the sender address have no defaults: a deployment must choose them.
func defaults() Config {
	keepRaw := true
	return Config{
		Listen:   DefaultListen,
		DataDir:  DefaultDataDir,
		Timezone: DefaultTimezone,
		Tracking: Tracking{RatePerIP: 20, RatePerKey: 500},
		Email: Email{
			Provider: DefaultProvider,
			SendGrid: SendGrid{APIBase: DefaultSendGridAPIBase},
			Mailgun:  Mailgun{APIBase: DefaultMailgunAPIBase},
		},
		Policies: Policies{
			RequireConsent:    true,
			FrequencyCap:      FrequencyCap{Max: 2, Per: Duration(24 * time.Hour)},
			AttributionWindow: Duration(5 * 24 * time.Hour),
			AttributeOpens:    true,
		},
		Rules: []string{DefaultRuleGlob},
		Insights: Insights{
			InactiveAfter:  Duration(90 * 24 * time.Hour),
			InactivePAlive: 0.3,
			ReplenishLead:  Duration(3 * 24 * time.Hour),
			RefitEvery:     Duration(24 * time.Hour),
		},
		Storage:      StorageConfig{KeepRaw: &keepRaw, MaxBatchDelay: Duration(2 * time.Millisecond)},
		Retention:    Duration(400 * 24 * time.Hour),
		MaxBodyBytes: DefaultMaxBodyBytes,
	}
}

// Default returns the configuration of config.example.yaml (CONTRACT §2)
// read with no environment: the log sender and placeholder secrets, fit
// for a first start and for tests, never for production.
func Default() *Config {
	c := defaults()
	c.PublicURL = "http://127.0.0.1:8080"
	c.Admin.Token = "change-me"
	c.Stores = []Store{{
		ID:            "main",
		Platform:      "shopify",
		Name:          "Example Store",
		URL:           "https://example.com",
		Currency:      "USD",
		WebhookSecret: "dev-secret",
	}}
	c.Stripe.WebhookSecret = "whsec_dev"
	c.Tracking.WriteKey = "dev-write-key"
	c.Tracking.AllowedOrigins = []string{"https://example.com"}
	c.Email.From = Address{Email: "shop@example.com", Name: "Example Store"}
	c.Email.Mailgun.Domain = "mg.example.com"
	c.Policies.QuietHours = QuietHours{Start: "21:00", End: "08:00"}
	return &c
}

// Load reads and validates the configuration file at path, expanding
// ${VAR} references from the process environment.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data, path, os.LookupEnv)
}

// Parse decodes and validates a configuration file's bytes; path names the
// file in errors and anchors rule globs. getenv resolves ${VAR}
// references (nil means an empty environment).
//
// References are expanded in scalar values after YAML parsing, so a
// variable's value can never inject YAML structure and reported positions
// are those of the file as written. Every problem found is returned at
// once as an ErrorList of *Error.
func Parse(data []byte, path string, getenv func(string) (string, bool)) (*Config, error) {
	if getenv == nil {
		getenv = func(string) (string, bool) { return "", false }
	}
	d := &decoder{file: path, getenv: getenv, nodes: map[string]*yaml.Node{}, failed: map[string]bool{}}
	c := defaults()
	c.Path = path

	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
		// An empty file is a valid configuration of defaults.
	case err != nil:
		return nil, ErrorList{syntaxError(path, err)}
	default:
		var extra yaml.Node
		if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
			p := pos{}
			if err == nil {
				p = pos{extra.Line, extra.Column}
			}
			d.errs = append(d.errs, errf(path, p, "the file holds more than one YAML document; nudge reads exactly one"))
		}
		root := &doc
		if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
			root = root.Content[0]
		}
		if !isNull(root) {
			d.value(root, "", reflect.ValueOf(&c).Elem(), 0)
		}
	}
	// Validate even after decode errors, so one round shows everything;
	// the checker skips keys that already failed to decode.
	normalize(&c, d)
	d.errs = append(d.errs, validate(&c, d)...)
	if len(d.errs) > 0 {
		d.errs.sort()
		return nil, d.errs
	}
	return &c, nil
}

// yamlLine finds the line number in a yaml.v3 syntax error, which carries
// no column: the error then points at the line's first column, so it
// still reads file:line:col as check promises.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

func syntaxError(file string, err error) *Error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return &Error{File: file, Line: n, Col: 1, Msg: "invalid YAML: " + msg[len(m[0]):]}
	}
	return &Error{File: file, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

// decoder walks a yaml.Node tree into a Config by the fields' yaml tags,
// instead of yaml.v3's own decoding, so that every unknown key, bad value
// and unset variable is collected with its position rather than the first
// one aborting, and so that ${VAR} is expanded before typed conversion
// (a quoted "${MAX:-2}" still fills an int).
type decoder struct {
	file   string
	getenv func(string) (string, bool)
	errs   ErrorList
	// nodes remembers the value node of every decoded key path
	// ("stores[0].id"), and "key:"+path its key node, so that validation
	// can point at the offending text.
	nodes map[string]*yaml.Node
	// failed holds the key paths that already have an error, so that
	// validation does not report them twice.
	failed map[string]bool
}

// maxAliasDepth bounds alias chains; yaml.v3 already rejects recursive
// anchors, this only keeps a hostile file from costing much.
const maxAliasDepth = 16

var durationType = reflect.TypeOf(Duration(0))

func (d *decoder) fail(n *yaml.Node, path string, format string, args ...any) {
	d.failed[path] = true
	d.errs = append(d.errs, errf(d.file, pos{n.Line, n.Column}, format, args...))
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// value decodes n into v; path names it in errors. A null value leaves
// v's default in place, so "key:" with nothing after it means "default".
func (d *decoder) value(n *yaml.Node, path string, v reflect.Value, aliases int) {
	for n.Kind == yaml.AliasNode {
		if aliases++; aliases > maxAliasDepth || n.Alias == nil {
			d.fail(n, path, "%s: alias chain too deep", path)
			return
		}
		n = n.Alias
	}
	d.nodes[path] = n
	if isNull(n) {
		return
	}
	t := v.Type()
	switch {
	case t == durationType:
		s, ok := d.scalar(n, path, "a duration (90m, 36h, 7d, 2w)")
		if !ok {
			return
		}
		dur, err := ParseDuration(s)
		if err != nil {
			d.fail(n, path, "%s: %v", path, err)
			return
		}
		v.SetInt(int64(dur))
	case t.Kind() == reflect.String:
		if s, ok := d.scalar(n, path, "a string"); ok {
			v.SetString(s)
		}
	case t.Kind() == reflect.Bool:
		s, ok := d.scalar(n, path, "true or false")
		if !ok {
			return
		}
		b, ok := parseBool(s)
		if !ok {
			d.fail(n, path, "%s: %q is not a boolean (true or false)", path, s)
			return
		}
		v.SetBool(b)
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		s, ok := d.scalar(n, path, "an integer")
		if !ok {
			return
		}
		i, err := strconv.ParseInt(strings.TrimSpace(s), 10, t.Bits())
		if err != nil {
			d.fail(n, path, "%s: %q is not an integer", path, s)
			return
		}
		v.SetInt(i)
	case t.Kind() == reflect.Float64:
		s, ok := d.scalar(n, path, "a number")
		if !ok {
			return
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.fail(n, path, "%s: %q is not a number", path, s)
			return
		}
		v.SetFloat(f)
	case t.Kind() == reflect.Pointer:
		p := reflect.New(t.Elem())
		errs := len(d.errs)
		d.value(n, path, p.Elem(), aliases)
		if len(d.errs) == errs {
			v.Set(p)
		}
	case t.Kind() == reflect.Slice:
		d.slice(n, path, v, aliases)
	case t.Kind() == reflect.Struct:
		d.mapping(n, path, v)
	default:
		// Only reachable if config.go gains a field of a new kind.
		d.fail(n, path, "%s: unsupported configuration type %s", path, t)
	}
}

// scalar returns the expanded text of a scalar node.
func (d *decoder) scalar(n *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "%s: expected %s, got %s", path, want, describe(n))
		return "", false
	}
	s, err := expand(n.Value, d.getenv)
	if err != nil {
		d.fail(n, path, "%s: %v", path, err)
		return "", false
	}
	return s, true
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "on":
		return true, true
	case "false", "no", "off":
		return false, true
	}
	return false, false
}

// slice decodes a list, replacing (never appending to) the default. A
// single scalar where a list of strings is expected is read as a list of
// one, so `rules: rules.d/*.yaml` works.
func (d *decoder) slice(n *yaml.Node, path string, v reflect.Value, aliases int) {
	t := v.Type()
	items := n.Content
	switch {
	case n.Kind == yaml.SequenceNode:
	case n.Kind == yaml.ScalarNode && t.Elem().Kind() == reflect.String:
		items = []*yaml.Node{n}
	default:
		d.fail(n, path, "%s: expected a list, got %s", path, describe(n))
		return
	}
	out := reflect.MakeSlice(t, len(items), len(items))
	for i, item := range items {
		d.value(item, fmt.Sprintf("%s[%d]", path, i), out.Index(i), aliases)
	}
	v.Set(out)
}

// mapping decodes a YAML mapping into a struct by yaml tags, reporting
// unknown and repeated keys at the key's position.
func (d *decoder) mapping(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		what := path
		if what == "" {
			what = "the configuration"
		}
		d.fail(n, path, "%s: expected a mapping of keys, got %s", what, describe(n))
		return
	}
	fields := yamlFields(v.Type())
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.fail(k, path, "%s: keys must be plain names, got %s", orRoot(path), describe(k))
			continue
		}
		if k.Value == "<<" {
			d.fail(k, path, "%s: YAML merge keys (<<) are not supported; repeat the keys", orRoot(path))
			continue
		}
		full := joinPath(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.fail(k, full, "%s: duplicate key (first at line %d)", full, first.Line)
			continue
		}
		seen[k.Value] = k
		idx, ok := fields[k.Value]
		if !ok {
			msg := fmt.Sprintf("%s: unknown key %q", orRoot(path), k.Value)
			if s := suggest(k.Value, fields); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			d.fail(k, full, "%s", msg)
			continue
		}
		d.nodes["key:"+full] = k
		d.value(val, full, v.Field(idx), 0)
	}
}

func orRoot(path string) string {
	if path == "" {
		return "config"
	}
	return path
}

// yamlFields maps yaml key names to struct field indexes.
func yamlFields(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = i
	}
	return m
}

// suggest returns the known key closest to a misspelt one, if any is close.
func suggest(key string, fields map[string]int) string {
	best, bestDist := "", 3
	for name := range fields {
		if dist := editDistance(key, name); dist < bestDist || dist == bestDist && best != "" && name < best {
			best, bestDist = name, dist
		}
	}
	if bestDist > 2 || bestDist >= len(key) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance, capped for long inputs since
// only near misses matter.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
