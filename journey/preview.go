package journey

import (
	"context"
	"fmt"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/dispatch"
	"github.com/nudge-email/nudge/storage"
)

// PreviewStep builds the StepSend that step n of a rule would dispatch
// for a profile now, with send.data evaluated exactly as RunStep does, so
// `nudge preview` renders what the customer would get. The trigger is the
// profile's newest record of the rule's trigger kind; without one, a
// record of that kind carrying only the profile's email stands in. Nothing
// is written.
func (e *Engine) PreviewStep(ctx context.Context, ruleID string, p storage.Profile, n int) (dispatch.StepSend, error) {
	r := e.set.Load().Rule(ruleID)
	if r == nil {
		return dispatch.StepSend{}, fmt.Errorf("journey: preview: no rule %q", ruleID)
	}
	if n < 1 || n > len(r.Steps) {
		return dispatch.StepSend{}, fmt.Errorf("journey: preview: rule %q has steps 1 to %d", ruleID, len(r.Steps))
	}
	now := e.now()
	recs, err := e.store.RecordsByProfile(ctx, p.ID, storage.RecordQuery{Kinds: []behavior.Kind{r.Trigger.Event}, Limit: 1, Newest: true})
	if err != nil {
		return dispatch.StepSend{}, fmt.Errorf("journey: preview: %w", err)
	}
	trig := behavior.Record{ID: "preview", Kind: r.Trigger.Event, At: now, Email: p.Email}
	if len(recs) > 0 {
		trig = recs[0]
	}
	step := r.Steps[n-1]
	env := e.newEnv(ctx, &trig, &trig, p, now, n)
	data := make(map[string]any, len(step.Send.Data))
	for _, f := range step.Send.Data {
		v, err := f.Expr.Eval(&env)
		if err != nil {
			return dispatch.StepSend{}, fmt.Errorf("journey: preview: steps[%d].send.data.%s: %w", n, f.Key, err)
		}
		data[f.Key] = v
	}
	j := storage.Journey{
		ID: JourneyID(r.ID, p.ID, trig.ID, trig.At), Rule: r.ID, ProfileID: p.ID, TriggerRecord: trig.ID,
		Step: n, Status: storage.JourneyWaiting, StartedAt: trig.At,
	}
	return dispatch.StepSend{
		Journey: j, Rule: r.ID, Step: n, Priority: r.Priority, OnCap: r.OnCap,
		Send: dispatch.SendSpec{
			Provider: step.Send.Provider, Template: step.Send.Template, Subject: step.Send.Subject,
			HTMLFile: step.Send.HTMLFile, TextFile: step.Send.TextFile, Data: data,
		},
		Trigger: trig, Profile: p, Now: now, DryRun: true,
	}, nil
}
