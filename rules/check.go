package rules

import (
	"errors"
	"fmt"
	"io"
)

// Check is `nudge check` for rule files: it loads them and prints
// "ok: N rules", or one `file:line:col: rule "id": message` line per
// problem. It returns the load error, so the command exits 1 on any.
func Check(w io.Writer, files []string) (*Set, error) {
	set, err := Load(files)
	if err != nil {
		var list Errors
		if errors.As(err, &list) {
			for _, e := range list {
				fmt.Fprintln(w, e.Error())
			}
		} else {
			fmt.Fprintln(w, err.Error())
		}
		return nil, err
	}
	n := set.Len()
	noun := "rules"
	if n == 1 {
		noun = "rule"
	}
	fmt.Fprintf(w, "ok: %d %s\n", n, noun)
	return set, nil
}
