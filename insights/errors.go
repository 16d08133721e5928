package insights

import "errors"

// ErrNotEnoughData reports that a model has too little history to be
// fitted or to score someone; callers omit the score rather than guess.
var ErrNotEnoughData = errors.New("insights: not enough data")

// ErrNoConvergence reports that a maximum-likelihood fit did not reach a
// finite optimum.
var ErrNoConvergence = errors.New("insights: fit did not converge")
