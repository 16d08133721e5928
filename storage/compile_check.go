package storage

// The bbolt DB implements the whole Store; this fails the build, not a
// caller, when a method is missing or its signature drifts.
var _ Store = (*DB)(nil)
