package behavior

import (
	"regexp"
	"sort"
	"testing"
	"time"
)

func TestDeriveOrderedID(t *testing.T) {
	base := time.Date(2026, 11, 29, 1, 2, 3, 4, time.UTC)
	hexID := regexp.MustCompile(`^[0-9a-f]{32}$`)
	tests := []struct {
		name   string
		at     time.Time
		parts  []string
		prefix string
	}{
		{"time first", base, []string{"journey", "r", "p", "x"}, "18ec5e613485ae04"},
		{"zone does not matter", base.In(time.FixedZone("x", 3600)), []string{"journey", "r", "p", "x"}, "18ec5e613485ae04"},
		{"zero time", time.Time{}, []string{"a"}, "0000000000000000"},
		{"before 1970", time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), []string{"a"}, "0000000000000000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := DeriveOrderedID(tc.at, tc.parts...)
			if !hexID.MatchString(id) {
				t.Fatalf("id %q is not 32 hex digits", id)
			}
			if id[:16] != tc.prefix {
				t.Errorf("prefix %s, want %s", id[:16], tc.prefix)
			}
			if id[16:] != DeriveID(tc.parts...)[:16] {
				t.Errorf("suffix %s is not half of DeriveID %s", id[16:], DeriveID(tc.parts...))
			}
			if again := DeriveOrderedID(tc.at, tc.parts...); again != id {
				t.Errorf("not stable: %s then %s", id, again)
			}
		})
	}

	// Ids sort as their times do, whatever their parts.
	var ids []string
	for i := range 100 {
		ids = append(ids, DeriveOrderedID(base.Add(time.Duration(99-i)*time.Millisecond), "journey", string(rune('a'+i%26))))
	}
	if sort.StringsAreSorted(ids) {
		t.Fatal("ids made in reverse time order sort ascending")
	}
	sort.Strings(ids)
	for i := 1; i < len(ids); i++ {
		if ids[i-1][:16] >= ids[i][:16] {
			t.Fatalf("ids %s and %s do not sort by time", ids[i-1], ids[i])
		}
	}
	if DeriveOrderedID(base, "a") == DeriveOrderedID(base, "b") {
		t.Error("different parts at the same time give the same id")
	}
}

func TestFollowID(t *testing.T) {
	ordered := DeriveOrderedID(time.Date(2026, 11, 29, 1, 0, 0, 0, time.UTC), "journey", "x")
	tests := []struct {
		name, parent string
		follows      bool
	}{
		{"ordered parent", ordered, true},
		{"hashed parent", DeriveID("journey", "x"), true},
		{"short parent", "j1", false},
		{"parent with other characters", "j-ann@example.com", false},
		{"upper-case hex", "ABCDEF0123456789ABCDEF0123456789", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := FollowID(tc.parent, "send", tc.parent, "1")
			if len(id) != 32 {
				t.Fatalf("id %q is not 32 characters", id)
			}
			want := DeriveID("send", tc.parent, "1")
			if tc.follows {
				want = tc.parent[:16] + want[:16]
			}
			if id != want {
				t.Errorf("FollowID = %s, want %s", id, want)
			}
		})
	}
}
