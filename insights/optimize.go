package insights

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/diff/fd"
	"gonum.org/v1/gonum/optimize"
)

// minimize finds a local minimum of f starting at x0. Nelder–Mead finds the
// basin without needing derivatives (the likelihoods have flat, curved
// valleys where gradient methods started far away stall); BFGS with
// central-difference gradients then polishes the optimum to the precision
// the published parameter values are quoted with.
func minimize(f func(x []float64) float64, x0 []float64) ([]float64, float64, error) {
	safe := func(x []float64) float64 {
		v := f(x)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return math.MaxFloat64 / 4
		}
		return v
	}
	nm, err := optimize.Minimize(optimize.Problem{Func: safe}, x0, &optimize.Settings{
		Converger:       &optimize.FunctionConverge{Absolute: 1e-12, Relative: 1e-12, Iterations: 200},
		MajorIterations: 20000,
	}, &optimize.NelderMead{})
	if err != nil && nm == nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrNoConvergence, err)
	}
	best, bestF := nm.X, nm.F
	grad := func(g, x []float64) {
		fd.Gradient(g, safe, x, &fd.Settings{Formula: fd.Central, Step: 1e-6})
	}
	polished, err := optimize.Minimize(optimize.Problem{Func: safe, Grad: grad}, best, &optimize.Settings{
		GradientThreshold: 1e-9,
		Converger:         &optimize.FunctionConverge{Absolute: 1e-12, Relative: 1e-14, Iterations: 50},
		MajorIterations:   2000,
	}, &optimize.BFGS{})
	if polished != nil && polished.F <= bestF && !math.IsNaN(polished.F) {
		best, bestF = polished.X, polished.F
	}
	_ = err // BFGS may stop on a line-search failure at the optimum; Nelder–Mead's answer stands then
	if bestF >= math.MaxFloat64/8 {
		return nil, 0, ErrNoConvergence
	}
	return best, bestF, nil
}
