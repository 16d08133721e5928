package storage

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nudge-email/nudge/behavior"
)

func TestCommitStepWritesEverythingOrNothing(t *testing.T) {
	ctx := context.Background()
	db, clk := openOutboxDB(t)
	stepJob := JobSpec{Kind: "step", UniqueKey: "step:j1:1", DueAt: clk.Now()}
	if _, err := db.EnqueueJobs(ctx, stepJob); err != nil {
		t.Fatal(err)
	}
	claimed, err := db.ClaimDueJobs(ctx, clk.Now(), 1)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	j := Journey{ID: "j1", Rule: "cart", ProfileID: "p1", Step: 2, Status: JourneyWaiting, DueAt: clk.Now().Add(time.Hour)}
	send := Send{ID: "s1", JourneyID: "j1", Rule: "cart", Step: 1, ProfileID: "p1", Email: "ann@example.com", Status: SendSending, Attempts: 1, Message: []byte(`{"subject":"hi"}`)}
	next := JobSpec{Kind: "step", UniqueKey: "step:j1:2", DueAt: clk.Now().Add(time.Hour)}
	sendJob := JobSpec{Kind: "send", UniqueKey: "send:s1"}

	got, created, err := db.CommitStep(ctx, StepCommit{Journey: j, Jobs: []JobSpec{next}, Send: &send, SendJobs: []JobSpec{sendJob}, CompleteJob: claimed[0].ID})
	if err != nil || !created {
		t.Fatalf("CommitStep: created=%v err=%v", created, err)
	}
	if !got.CreatedAt.Equal(clk.Now()) || got.Status != SendSending {
		t.Errorf("stored send %+v", got)
	}
	if s, err := db.Send(ctx, "s1"); err != nil || string(s.Message) != `{"subject":"hi"}` {
		t.Errorf("Send = %+v, %v", s, err)
	}
	if ids := statusIndex(t, db, SendSending); len(ids) != 1 || ids[0] != "s1" {
		t.Errorf("status index %v", ids)
	}
	if stored, err := db.Journey(ctx, "j1"); err != nil || stored.Step != 2 {
		t.Errorf("Journey = %+v, %v", stored, err)
	}
	if _, err := db.Job(ctx, claimed[0].ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("the step's job still exists: %v", err)
	}
	counts, _ := db.CountJobs(ctx)
	if counts[JobCompleted] != 1 || counts[JobScheduled] != 2 {
		t.Errorf("jobs %v, want 1 completed and 2 scheduled (next step, send)", counts)
	}

	// A replay keeps the first send and enqueues no second send job.
	again := send
	again.Status = SendPending
	got, created, err = db.CommitStep(ctx, StepCommit{Journey: j, Send: &again, SendJobs: []JobSpec{{Kind: "send", UniqueKey: "send:s1:other"}}})
	if err != nil || created || got.Status != SendSending {
		t.Fatalf("replay: %+v created=%v err=%v", got, created, err)
	}
	if counts, _ := db.CountJobs(ctx); counts[JobScheduled] != 2 {
		t.Errorf("replay enqueued a job: %v", counts)
	}

	// Ending a job that is not running fails the whole commit: the
	// journey and send it carried are not written.
	j3 := Journey{ID: "j3", Rule: "cart", ProfileID: "p3", Status: JourneyCompleted}
	s3 := Send{ID: "s3", ProfileID: "p3", Status: SendSending}
	if _, _, err := db.CommitStep(ctx, StepCommit{Journey: j3, Send: &s3, CompleteJob: claimed[0].ID}); err == nil {
		t.Fatal("CommitStep ended a job that is gone")
	}
	if _, err := db.Journey(ctx, "j3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("journey of a failed commit stored: %v", err)
	}
	if _, err := db.Send(ctx, "s3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("send of a failed commit stored: %v", err)
	}
	if _, _, err := db.CommitStep(ctx, StepCommit{Journey: Journey{ID: "j4"}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("journey without rule and profile: %v", err)
	}
}

func TestFinishSendMarksSentWithItsRecord(t *testing.T) {
	ctx := context.Background()
	db, clk := openOutboxDB(t)
	s := Send{ID: "s1", JourneyID: "j1", Rule: "cart", Step: 1, ProfileID: "p1", Email: "ann@example.com", Status: SendSending, Attempts: 1}
	stored, _, err := db.CreateSend(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	done := stored
	done.Status, done.ProviderMessageID, done.SentAt, done.UpdatedAt = SendSent, "<msg-1@mg>", clk.Now(), clk.Now()
	rec := behavior.Record{ID: "sent-s1", Kind: behavior.EmailSent, Source: "nudge", At: clk.Now(), Email: "ann@example.com"}
	if err := db.FinishSend(ctx, done, Ingest{Records: []behavior.Record{rec}}); err != nil {
		t.Fatal(err)
	}
	got, err := db.Send(ctx, "s1")
	if err != nil || got.Status != SendSent || !got.CreatedAt.Equal(stored.CreatedAt) || !got.UpdatedAt.Equal(clk.Now()) {
		t.Errorf("Send = %+v, %v", got, err)
	}
	if ids := statusIndex(t, db, SendSending); len(ids) != 0 {
		t.Errorf("still indexed as sending: %v", ids)
	}
	if byProvider, err := db.SendByProviderMessageID(ctx, "msg-1@mg"); err != nil || byProvider.ID != "s1" {
		t.Errorf("by provider id: %+v %v", byProvider, err)
	}
	if _, err := db.Record(ctx, "sent-s1"); err != nil {
		t.Errorf("email_sent record: %v", err)
	}

	// A send that is gone (forgotten) takes its record with it: nothing.
	gone := done
	gone.ID = "nope"
	rec2 := rec
	rec2.ID = "sent-nope"
	if err := db.FinishSend(ctx, gone, Ingest{Records: []behavior.Record{rec2}}); !errors.Is(err, ErrNotFound) {
		t.Errorf("FinishSend of a missing send = %v", err)
	}
	if _, err := db.Record(ctx, "sent-nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("record of a failed FinishSend stored: %v", err)
	}
	if err := db.FinishSend(ctx, done, Ingest{Delivery: &Delivery{Source: "x"}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("FinishSend with a raw delivery = %v", err)
	}
}

// TestCommitEvaluation checks that an evaluation's journeys, decisions and
// job end land together, and that a failing part leaves nothing behind.
func TestCommitEvaluation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := openTestDB(t, Options{})
	if _, err := db.EnqueueJobs(ctx, JobSpec{Kind: JobEvaluate, DueAt: t0}); err != nil {
		t.Fatal(err)
	}
	claimed, err := db.ClaimDueJobs(ctx, t0, 1)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v, %d jobs", err, len(claimed))
	}
	journey := func(id string) Journey {
		return Journey{ID: id, Rule: "r", ProfileID: "p1", Step: 1, Status: JourneyWaiting, StartedAt: t0, DueAt: t0.Add(time.Hour), UpdatedAt: t0}
	}
	step := JobSpec{Kind: "step", UniqueKey: "step:j1:1", DueAt: t0.Add(time.Hour)}
	decision := Decision{At: t0, Rule: "r", RecordID: "rec1", Started: true, JourneyID: "j1"}

	// A job that is not running makes the whole commit fail: no journey,
	// no decision.
	err = db.CommitEvaluation(ctx, EvaluationCommit{ProfileID: "p1", Starts: []JourneyStart{{Journey: journey("j0")}}, Decisions: []Decision{decision}, CompleteJob: 999})
	if err == nil {
		t.Fatal("commit with an unknown job succeeded")
	}
	if _, err := db.Journey(ctx, "j0"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("journey of a failed commit: %v", err)
	}
	if ds, _ := db.Decisions(ctx, "p1"); len(ds) != 0 {
		t.Fatalf("decisions of a failed commit: %v", ds)
	}
	if err := db.CommitEvaluation(ctx, EvaluationCommit{Starts: []JourneyStart{{Journey: Journey{ID: "x"}}}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("journey without rule and profile: %v", err)
	}

	before := db.CommitStats()
	err = db.CommitEvaluation(ctx, EvaluationCommit{
		ProfileID: "p1", Starts: []JourneyStart{{Journey: journey("j1"), Jobs: []JobSpec{step}}},
		Decisions: []Decision{decision}, CompleteJob: claimed[0].ID,
	})
	if err != nil {
		t.Fatal(err)
	}
	if after := db.CommitStats(); after.Writes-before.Writes != 1 {
		t.Errorf("%d writes, want 1", after.Writes-before.Writes)
	}
	if _, err := db.Journey(ctx, "j1"); err != nil {
		t.Errorf("journey: %v", err)
	}
	if ds, err := db.Decisions(ctx, "p1"); err != nil || len(ds) != 1 || ds[0].JourneyID != "j1" {
		t.Errorf("decisions: %v %v", ds, err)
	}
	if j, err := db.Job(ctx, claimed[0].ID); err == nil && j.State != JobCompleted {
		t.Errorf("evaluation job %s, want completed (or gone)", j.State)
	}
	counts, err := db.CountJobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts[JobScheduled] != 1 || counts[JobRunning] != 0 {
		t.Errorf("jobs %v: want the step scheduled and nothing running", counts)
	}
}

// TestCommitStepsIsOneTransaction: a batch of steps lands whole, with
// each step's own created flag; one bad step (a job that is not running,
// a journey named twice) leaves nothing of the batch behind.
func TestCommitStepsIsOneTransaction(t *testing.T) {
	ctx := context.Background()
	db, clk := openOutboxDB(t)
	var specs []JobSpec
	for i := range 3 {
		specs = append(specs, JobSpec{Kind: "step", UniqueKey: fmt.Sprintf("step:j%d:1", i), DueAt: clk.Now()})
	}
	if _, err := db.EnqueueJobs(ctx, specs...); err != nil {
		t.Fatal(err)
	}
	claimed, err := db.ClaimDueJobs(ctx, clk.Now(), 3)
	if err != nil || len(claimed) != 3 {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	commit := func(i int, job uint64) StepCommit {
		id := fmt.Sprintf("j%d", i)
		return StepCommit{
			Journey:     Journey{ID: id, Rule: "cart", ProfileID: fmt.Sprintf("p%d", i), Step: 2, Status: JourneyWaiting},
			Send:        &Send{ID: "s-" + id, JourneyID: id, Rule: "cart", Step: 1, ProfileID: fmt.Sprintf("p%d", i), Email: fmt.Sprintf("c%d@example.com", i), Status: SendSending, Attempts: 1},
			CompleteJob: job,
		}
	}
	// The first send exists already: a replayed step keeps it.
	if _, _, err := db.CreateSend(ctx, *commit(0, 0).Send); err != nil {
		t.Fatal(err)
	}

	bad := []StepCommit{commit(1, claimed[1].ID), commit(2, 999)}
	if _, err := db.CommitSteps(ctx, bad); err == nil {
		t.Fatal("a batch ending a job that does not run was committed")
	}
	twice := []StepCommit{commit(1, 0), commit(1, 0)}
	if _, err := db.CommitSteps(ctx, twice); !errors.Is(err, ErrInvalid) {
		t.Errorf("a batch naming a journey twice = %v, want ErrInvalid", err)
	}
	for _, id := range []string{"j1", "j2"} {
		if _, err := db.Journey(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("journey %s of a failed batch stored: %v", id, err)
		}
		if _, err := db.Send(ctx, "s-"+id); !errors.Is(err, ErrNotFound) {
			t.Errorf("send of %s of a failed batch stored: %v", id, err)
		}
	}
	if counts, _ := db.CountJobs(ctx); counts[JobRunning] != 3 {
		t.Errorf("jobs after failed batches %v, want all 3 still running", counts)
	}

	res, err := db.CommitSteps(ctx, []StepCommit{commit(0, claimed[0].ID), commit(1, claimed[1].ID), commit(2, claimed[2].ID)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 || res[0].Created || !res[1].Created || !res[2].Created {
		t.Errorf("created flags %+v, want the first replayed and the others new", res)
	}
	for i, r := range res {
		if r.Send.ID != fmt.Sprintf("s-j%d", i) || r.Send.Status != SendSending {
			t.Errorf("result %d: send %+v", i, r.Send)
		}
		if j, err := db.Journey(ctx, fmt.Sprintf("j%d", i)); err != nil || j.Step != 2 {
			t.Errorf("journey j%d = %+v, %v", i, j, err)
		}
	}
	if counts, _ := db.CountJobs(ctx); counts[JobCompleted] != 3 || counts[JobRunning] != 0 {
		t.Errorf("jobs %v, want the 3 step jobs completed", counts)
	}
}

// TestFinishSendsIsOneTransaction: sends of a batch are marked sent with
// their email_sent records together, or none is.
func TestFinishSendsIsOneTransaction(t *testing.T) {
	ctx := context.Background()
	db, clk := openOutboxDB(t)
	var fs []SendFinish
	for i := range 3 {
		s := Send{ID: fmt.Sprintf("s%d", i), JourneyID: "j", Rule: "cart", Step: 1, ProfileID: fmt.Sprintf("p%d", i), Email: fmt.Sprintf("c%d@example.com", i), Status: SendSending, Attempts: 1}
		stored, _, err := db.CreateSend(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		stored.Status, stored.SentAt, stored.ProviderMessageID = SendSent, clk.Now(), fmt.Sprintf("m%d", i)
		fs = append(fs, SendFinish{Send: stored, Ingest: Ingest{Records: []behavior.Record{{
			ID: "sent-" + s.ID, Kind: behavior.EmailSent, Source: "nudge", At: clk.Now(), Email: s.Email,
		}}}})
	}
	// A send that is gone fails the batch: no send is marked sent, no
	// record stored.
	gone := fs[1]
	gone.Send.ID = "gone"
	if err := db.FinishSends(ctx, []SendFinish{fs[0], gone, fs[2]}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("FinishSends with a missing send = %v", err)
	}
	for _, f := range fs {
		if s, _ := db.Send(ctx, f.Send.ID); s.Status != SendSending {
			t.Errorf("send %s of a failed batch is %s", s.ID, s.Status)
		}
		if _, err := db.Record(ctx, f.Ingest.Records[0].ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("record of a failed batch stored: %v", err)
		}
	}
	if err := db.FinishSends(ctx, fs); err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if s, _ := db.Send(ctx, f.Send.ID); s.Status != SendSent {
			t.Errorf("send %s is %s, want sent", s.ID, s.Status)
		}
		if _, err := db.Record(ctx, f.Ingest.Records[0].ID); err != nil {
			t.Errorf("email_sent record: %v", err)
		}
	}
	if ids := statusIndex(t, db, SendSending); len(ids) != 0 {
		t.Errorf("still indexed as sending: %v", ids)
	}
}
