package rules

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"go.yaml.in/yaml/v3"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/config"
)

// Expr is an expression compiled at load against Env.
type Expr struct {
	// Source is the expression as written.
	Source string
	// File, Line and Col locate it in its rule file, for run-time errors.
	File      string
	Line, Col int
	program   *vm.Program
}

// String returns the source.
func (e *Expr) String() string { return e.Source }

// Pos returns "file:line:col".
func (e *Expr) Pos() string { return fmt.Sprintf("%s:%d:%d", e.File, e.Line, e.Col) }

// Bool evaluates a where clause. A nil Expr is true, so an absent where
// matches everything.
func (e *Expr) Bool(env *Env) (bool, error) {
	if e == nil {
		return true, nil
	}
	out, err := expr.Run(e.program, env)
	if err != nil {
		return false, fmt.Errorf("%s: %s: %w", e.Pos(), e.Source, err)
	}
	b, ok := out.(bool)
	if !ok {
		return false, fmt.Errorf("%s: %s: result is %T, not bool", e.Pos(), e.Source, out)
	}
	return b, nil
}

// Eval evaluates a send.data value.
func (e *Expr) Eval(env *Env) (any, error) {
	out, err := expr.Run(e.program, env)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", e.Pos(), e.Source, err)
	}
	return out, nil
}

// envTypeNames turns expr's Go type names in messages into the names a
// rule author writes.
var envTypeNames = strings.NewReplacer(
	"type rules.Profile", "profile",
	"type rules.Event", "event",
	"type rules.Item", "item",
	"type rules.Store", "store",
	"type rules.Product", "product",
	"rules.Profile", "profile",
	"rules.Event", "event",
	"rules.Item", "item",
	"rules.Store", "store",
	"rules.Product", "product",
	"rules.Env", "env",
)

// compileExpr compiles the scalar n as an expression; field names it in
// error messages ("trigger.where"). It reports errors on p and returns nil
// when the expression does not compile.
func (p *parser) compileExpr(n *yaml.Node, field string, asBool bool) *Expr {
	if n.Kind != yaml.ScalarNode {
		p.errorf(n, "%s: expected an expression string, got %s", field, kindName(n))
		return nil
	}
	src := n.Value
	if strings.TrimSpace(src) == "" {
		p.errorf(n, "%s: empty expression", field)
		return nil
	}
	lits := &literalChecker{}
	opts := []expr.Option{expr.Env(Env{}), expr.Patch(lits)}
	if asBool {
		opts = append(opts, expr.AsBool())
	}
	prog, err := expr.Compile(src, opts...)
	ok := true
	if err != nil {
		ok = false
		var fe *file.Error
		if errors.As(err, &fe) {
			line, col := p.exprPos(n, fe.From)
			p.errorAt(line, col, "%s: %s", field, exprMessage(fe.Message))
		} else {
			p.errorf(n, "%s: %s", field, exprMessage(err.Error()))
		}
	}
	for _, le := range lits.errs {
		ok = false
		line, col := p.exprPos(n, le.from)
		p.errorAt(line, col, "%s: %s", field, le.msg)
	}
	if !ok {
		return nil
	}
	return &Expr{Source: src, File: p.file, Line: n.Line, Col: n.Column, program: prog}
}

// exprMessage rewords expr's messages for rule authors.
func exprMessage(msg string) string {
	msg = envTypeNames.Replace(msg)
	if rest, ok := strings.CutPrefix(msg, "expected bool, but got "); ok {
		return "must be true or false, but is " + rest
	}
	return msg
}

type literalError struct {
	from int
	msg  string
}

// literalChecker checks literal arguments of the helper functions at load:
// durations must parse and kinds must exist, so that `ago("9O d")` or
// `events("cart_update", "1d")` fail before they run.
type literalChecker struct {
	errs []literalError
}

// Visit implements ast.Visitor.
func (c *literalChecker) Visit(node *ast.Node) {
	call, ok := (*node).(*ast.CallNode)
	if !ok {
		return
	}
	id, ok := call.Callee.(*ast.IdentifierNode)
	if !ok {
		return
	}
	var durArg, kindArg = -1, -1
	switch id.Value {
	case "duration", "ago":
		durArg = 0
	case "views":
		durArg = 1
	case "events":
		kindArg, durArg = 0, 1
	default:
		return
	}
	if durArg >= 0 && durArg < len(call.Arguments) {
		if s, ok := call.Arguments[durArg].(*ast.StringNode); ok {
			if _, err := config.ParseDuration(s.Value); err != nil {
				c.errs = append(c.errs, literalError{from: s.Location().From, msg: fmt.Sprintf("%s: %v", id.Value, err)})
			}
		}
	}
	if kindArg >= 0 && kindArg < len(call.Arguments) {
		if s, ok := call.Arguments[kindArg].(*ast.StringNode); ok {
			if k := behavior.Kind(s.Value); !k.Valid() {
				c.errs = append(c.errs, literalError{from: s.Location().From, msg: fmt.Sprintf("%s: %s", id.Value, unknownKind(s.Value))})
			}
		}
	}
}

// unknownKind phrases an unknown event kind with the nearest known one.
func unknownKind(s string) string {
	msg := fmt.Sprintf("unknown event kind %q", s)
	if near := nearestKind(s); near != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", near)
	}
	return msg
}

// nearestKind returns the built-in kind closest to s when it is close
// enough to be a typo.
func nearestKind(s string) string {
	best, bestD := "", 4
	for _, k := range behavior.Kinds() {
		if d := editDistance(s, string(k)); d < bestD {
			best, bestD = string(k), d
		}
	}
	return best
}

func editDistance(a, b string) int {
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

// exprPos maps a rune offset inside the expression held by scalar n to a
// 1-based line and column of the rule file, undoing YAML quoting, folding
// and block indentation, so an editor lands on the offending character.
func (p *parser) exprPos(n *yaml.Node, offset int) (int, int) {
	if n.Line < 1 || n.Line > len(p.lines) {
		return n.Line, n.Column
	}
	line, col := n.Line, n.Column
	text := p.lines[line-1]
	i := runeIndex(text, col-1)
	switch n.Style {
	case yaml.SingleQuotedStyle, yaml.DoubleQuotedStyle:
		i++
		col++
	case yaml.LiteralStyle, yaml.FoldedStyle:
		// Content starts on the line after the indicator.
		line++
		if line > len(p.lines) {
			return n.Line, n.Column
		}
		text = p.lines[line-1]
		i, col = 0, 1
		for i < len(text) && (text[i] == ' ' || text[i] == '\t') {
			i++
			col++
		}
	}
	// A literal block keeps indentation beyond the block's own; every
	// other style folds all of it away.
	keep := n.Style == yaml.LiteralStyle
	blockIndent := i
	for consumed := 0; consumed < offset; consumed++ {
		if i >= len(text) {
			// A line break in the scalar: the next line's indentation
			// folds into it.
			if line >= len(p.lines) {
				break
			}
			line++
			text = p.lines[line-1]
			i, col = 0, 1
			for i < len(text) && (text[i] == ' ' || text[i] == '\t') && (!keep || i < blockIndent) {
				i++
				col++
			}
			continue
		}
		switch {
		case n.Style == yaml.SingleQuotedStyle && text[i] == '\'' && i+1 < len(text) && text[i+1] == '\'':
			i += 2
			col += 2
		case n.Style == yaml.DoubleQuotedStyle && text[i] == '\\' && i+1 < len(text):
			skip := 2
			switch text[i+1] {
			case 'x':
				skip += 2
			case 'u':
				skip += 4
			case 'U':
				skip += 8
			}
			skip = min(skip, len(text)-i)
			i += skip
			col += skip
		default:
			_, size := utf8.DecodeRuneInString(text[i:])
			i += size
			col++
		}
	}
	return line, col
}

// runeIndex returns the byte index of the n-th rune of s.
func runeIndex(s string, n int) int {
	i := 0
	for k := 0; k < n && i < len(s); k++ {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return i
}

// parseDuration reads a rule duration, refusing negative ones.
func parseDuration(s string) (time.Duration, error) {
	d, err := config.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration %q", s)
	}
	return d, nil
}

// Compile compiles one expression outside a rule file (tools, tests);
// asBool requires a true/false result, as where clauses do.
func Compile(src string, asBool bool) (*Expr, error) {
	p := &parser{file: "<expr>", lines: strings.Split(src, "\n")}
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: src, Line: 1, Column: 1}
	e := p.compileExpr(n, "expression", asBool)
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return e, nil
}
