package config

import (
	"fmt"
	"strings"
)

// maxExpandDepth bounds nested defaults such as ${A:-${B:-${C}}}; nobody
// writes more than a few, and the bound keeps hostile input cheap.
const maxExpandDepth = 8

// expand replaces ${VAR} and ${VAR:-default} in s from getenv, and $$
// with a single $. A $ followed by anything else is kept as it is, so
// passwords containing a lone $ survive. As in POSIX shells, the default
// applies when the variable is unset or empty, and may itself contain
// references. An unset variable without a default is an error naming it.
func expand(s string, getenv func(string) (string, bool)) (string, error) {
	return expandDepth(s, getenv, 0)
}

func expandDepth(s string, getenv func(string) (string, bool), depth int) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	if depth > maxExpandDepth {
		return "", fmt.Errorf("${...} defaults nested more than %d deep", maxExpandDepth)
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			i++
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i += 2
			continue
		case '{':
		default:
			b.WriteByte(c)
			i++
			continue
		}
		end := matchBrace(s, i+1)
		if end < 0 {
			return "", fmt.Errorf("unterminated ${ in %q", s)
		}
		inner := s[i+2 : end]
		name, def, hasDef := strings.Cut(inner, ":-")
		if !validVarName(name) {
			return "", fmt.Errorf("invalid environment variable name %q in ${%s}", name, inner)
		}
		v, ok := getenv(name)
		switch {
		case hasDef && v == "":
			d, err := expandDepth(def, getenv, depth+1)
			if err != nil {
				return "", err
			}
			b.WriteString(d)
		case !ok:
			return "", fmt.Errorf("environment variable %s is not set", name)
		default:
			b.WriteString(v)
		}
		i = end + 1
	}
	return b.String(), nil
}

// matchBrace returns the index of the } closing the { at open, counting
// nested ${ so that defaults may contain references; -1 if unclosed.
func matchBrace(s string, open int) int {
	depth := 0
	for j := open; j < len(s); j++ {
		switch s[j] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return j
			}
		}
	}
	return -1
}

// validVarName accepts POSIX shell variable names.
func validVarName(name string) bool {
	if name == "" {
		return false
	}
	for i, c := range name {
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
