package rules

import (
	"sort"
	"strconv"
	"strings"
)

// Error is one problem in a rule file, at the position of the offending
// key or value. Line and Col are 1-based; 0 means unknown.
type Error struct {
	File      string
	Line, Col int
	// Rule is the id of the rule the problem is in; "" when the id is not
	// known (a YAML syntax error, a document without id).
	Rule string
	Msg  string
}

// Error formats the problem as `file:line:col: rule "id": message`, the
// form editors jump to; unknown parts are left out.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
		if e.Col > 0 {
			b.WriteString(":" + strconv.Itoa(e.Col))
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Rule != "" {
		b.WriteString("rule " + strconv.Quote(e.Rule) + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found, in file and position order. Parse and
// Load return it so that a user fixes everything in one round; reach it
// with errors.As.
type Errors []*Error

// Error prints one problem per line.
func (l Errors) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap exposes the items to errors.Is and errors.As.
func (l Errors) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// sorted orders by file then position, keeping discovery order for ties,
// so output follows the files top to bottom.
func (l Errors) sorted() Errors {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i], l[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return l
}
