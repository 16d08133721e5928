package config

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// RuleTestSuffix marks rule unit-test files (CONTRACT §7), which rule
// globs never load even when they match.
const RuleTestSuffix = "_test.yaml"

// Dir is the directory relative rule globs are resolved against: the
// config file's directory, or the working directory for a config that was
// not read from a file.
func (c *Config) Dir() string {
	if c.Path == "" {
		return "."
	}
	return filepath.Dir(c.Path)
}

// RuleFiles expands the rule globs relative to the config file's
// directory into a sorted list of files without duplicates, leaving out
// directories and rule test files. A glob that matches nothing is not an
// error (an empty rules.d is a valid start), but a plain path that does
// not exist is, since it can only be a typo.
func (c *Config) RuleFiles() ([]string, error) {
	seen := map[string]bool{}
	var files []string
	for _, pattern := range c.Rules {
		p := pattern
		if !filepath.IsAbs(p) {
			p = filepath.Join(c.Dir(), p)
		}
		matches, err := filepath.Glob(p)
		if err != nil {
			return nil, fmt.Errorf("config: rules: %q: %w", pattern, err)
		}
		if len(matches) == 0 && !hasMeta(pattern) {
			return nil, fmt.Errorf("config: rules: %s: %w", p, os.ErrNotExist)
		}
		for _, m := range matches {
			if strings.HasSuffix(m, RuleTestSuffix) || seen[m] {
				continue
			}
			fi, err := os.Stat(m)
			if err != nil {
				return nil, fmt.Errorf("config: rules: %w", err)
			}
			if fi.IsDir() {
				continue
			}
			seen[m] = true
			files = append(files, m)
		}
	}
	sort.Strings(files)
	return files, nil
}

func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// StoreByID returns the configured store with the given id.
func (c *Config) StoreByID(id string) (Store, bool) {
	for _, s := range c.Stores {
		if s.ID == id {
			return s, true
		}
	}
	return Store{}, false
}

// StripeStore is the store whose name and currency Stripe records use:
// stripe.store when set, else the first store; false when there are none.
func (c *Config) StripeStore() (Store, bool) {
	if c.Stripe.Store != "" {
		return c.StoreByID(c.Stripe.Store)
	}
	if len(c.Stores) == 0 {
		return Store{}, false
	}
	return c.Stores[0], true
}
