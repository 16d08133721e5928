package journey

import (
	"crypto/sha256"
	"encoding/binary"
)

// InHoldout reports whether a profile is in a rule's control group. It is
// a pure function of rule id and profile id, so membership is stable
// across restarts and journeys, and anyone can audit it: hash
// SHA-256(rule id, 0x00, profile id), read the first 8 bytes as a
// big-endian fraction of 2^64, and compare it with the share.
func InHoldout(ruleID, profileID string, share float64) bool {
	if share <= 0 {
		return false
	}
	return holdoutPoint(ruleID, profileID) < share
}

// holdoutPoint maps rule and profile to [0, 1).
func holdoutPoint(ruleID, profileID string) float64 {
	h := sha256.New()
	h.Write([]byte(ruleID))
	h.Write([]byte{0})
	h.Write([]byte(profileID))
	sum := h.Sum(nil)
	return float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53)
}
