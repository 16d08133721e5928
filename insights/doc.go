// Package insights learns from the stored behavior records: item-to-item
// recommendations, replenishment intervals, best send hours, churn and
// value (BG/NBD and Gamma-Gamma), engagement and purchase-intent scores,
// and lifecycle segments.
//
// Every model is small and explainable, lives in its own file and is pure
// (no storage, no clock) so that it can be tested against published
// results. Engine ties them to a storage.Store: it refits them on the
// history, writes profile scores and segments, appends derived records
// (replenishment_due, became_inactive), saves the fit in the store so a
// restart can reuse it (Restore, NextRefit) and keeps the recommendation
// and engagement state current as records arrive (dispatch.Observer).
//
// Below a minimum of data a model says so (ErrNotEnoughData, or a
// "low" confidence in the Report) and no score is written: numbers are
// never invented.
package insights
