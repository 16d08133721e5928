package config

import (
	"strconv"
	"time"
)

// KeepsRaw reports whether raw webhook bodies are kept; an unset keep_raw
// means yes.
func (s StorageConfig) KeepsRaw() bool { return s.KeepRaw == nil || *s.KeepRaw }

// Location is the configured default timezone. Parse has validated it,
// so only a hand-built Config with a bad name falls back to UTC.
func (c *Config) Location() *time.Location {
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// Window returns the quiet hours as offsets from local midnight; ok is
// false when none are set. A window with end before start wraps midnight
// (21:00–08:00), which callers must handle.
func (q QuietHours) Window() (start, end time.Duration, ok bool) {
	s, okS := clockOffset(q.Start)
	e, okE := clockOffset(q.End)
	if !okS || !okE {
		return 0, 0, false
	}
	return s, e, true
}

// clockOffset reads "HH:MM" as a duration after midnight.
func clockOffset(hhmm string) (time.Duration, bool) {
	if !clockPattern.MatchString(hhmm) {
		return 0, false
	}
	h, _ := strconv.Atoi(hhmm[:2])
	m, _ := strconv.Atoi(hhmm[3:])
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute, true
}
