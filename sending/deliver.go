package sending

import (
	"context"
	"errors"
	"fmt"
	json "github.com/goccy/go-json"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/connectors"
	"github.com/nudge-email/nudge/scheduler"
	"github.com/nudge-email/nudge/storage"
)

// Reasons written on sends by the delivery handler.
const (
	reasonInterrupted = "interrupted after the request may have reached the provider; not repeated"
	reasonRejected    = "rejected by the provider"
)

// DefaultBackoff waits 30 s before the first retry, doubling up to one
// hour, with ±20 % jitter so a provider outage does not end in a
// synchronized burst. Eight attempts span about an hour.
func DefaultBackoff(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := 30 * time.Second << min(attempt-1, 10)
	if d > time.Hour {
		d = time.Hour
	}
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// Register makes s run send jobs, lets Dispatch wake it when it enqueues
// one, and recovers sends left "sending" when it starts.
func (d *Dispatcher) Register(s *scheduler.Scheduler) {
	d.sched.Store(s)
	s.Handle(JobSend, d.HandleSend)
	s.OnStart(d.Recover)
}

// HandleSend is the JobSend handler: it delivers one outbox entry at most
// once. See the package doc for the states.
func (d *Dispatcher) HandleSend(ctx context.Context, job storage.Job) error {
	var p sendPayload
	if err := json.Unmarshal(job.Payload, &p); err != nil || p.SendID == "" {
		return scheduler.Cancel(fmt.Errorf("sending: bad send job payload %q: %v", job.Payload, err))
	}
	return d.deliver(ctx, p.SendID)
}

func (d *Dispatcher) deliver(ctx context.Context, id string) error {
	proceed := false
	send, err := d.modify(ctx, id, func(s *storage.Send) (bool, error) {
		switch s.Status {
		case storage.SendSending:
			s.Status, s.Reason, s.LastError = storage.SendUnknown, reasonInterrupted, ""
			return true, nil
		case storage.SendPending, storage.SendRetrying:
		default:
			return false, nil // sent, dead, unknown, held, skipped: nothing to do
		}
		if reason, err := d.stillAllowed(ctx, *s); err != nil {
			return false, err
		} else if reason != "" {
			s.Status, s.Reason = storage.SendSkipped, reason
			return true, nil
		}
		s.Status = storage.SendSending
		s.Attempts++
		proceed = true
		return true, nil
	})
	if errors.Is(err, storage.ErrNotFound) {
		return scheduler.Cancel(fmt.Errorf("sending: send %s is gone: %w", id, err))
	}
	if err != nil {
		return fmt.Errorf("sending: start send %s: %w", id, err)
	}
	if !proceed {
		switch send.Status {
		case storage.SendUnknown:
			if send.Reason == reasonInterrupted {
				d.opts.Logger.Warn("send interrupted, marked unknown", "send_id", id, "rule", send.Rule)
			}
		case storage.SendSent:
			// A previous run updated the send but failed to record it.
			return d.recordSent(ctx, send)
		}
		return nil
	}

	res, sendErr := d.call(ctx, send)
	return d.settle(ctx, id, res, sendErr, false, true)
}

// Deliver hands a send the engine committed in the "sending" state
// (attempt 1, see Plan) to its provider and records the result; a
// retryable failure enqueues the send job that retries it.
func (d *Dispatcher) Deliver(ctx context.Context, send storage.Send, evaluateSent bool) error {
	if send.Status != storage.SendSending {
		return fmt.Errorf("sending: deliver %s: %w: it is %s, not sending", send.ID, ErrState, send.Status)
	}
	res, sendErr := d.call(ctx, send)
	return d.settle(ctx, send.ID, res, sendErr, true, evaluateSent)
}

// settle records the provider's answer for a send in "sending", reading
// the send again under its lock: the lock is not held across the call,
// which may take seconds, and engagement updates share its stripes. On
// the job path (inline false) a retry is the job's own RetryAt; inline, it
// is a new send job. evaluateSent: see dispatch.Planner.Deliver.
func (d *Dispatcher) settle(ctx context.Context, id string, res connectors.Result, sendErr error, inline, evaluateSent bool) error {
	now := d.now()
	if sendErr == nil {
		send, err := d.modifyFull(ctx, id, func(s *storage.Send) (bool, []storage.JobSpec, *storage.Ingest, error) {
			in := markSent(s, res, now, evaluateSent)
			return true, nil, &in, nil
		})
		if err != nil {
			// The provider has the message but we could not say so: the
			// send stays "sending", which the retried job or the next
			// start marks unknown, never sending twice.
			return fmt.Errorf("sending: record success of %s: %w", id, err)
		}
		d.opts.Logger.Info("email sent", "send_id", id, "rule", send.Rule, "step", send.Step, "provider", send.Provider, "to", maskEmail(send.Email))
		return nil
	}

	var retry *connectors.RetryableError
	permanent := errors.Is(sendErr, connectors.ErrPermanent)
	var wait time.Duration
	send, err := d.modifyFull(ctx, id, func(s *storage.Send) (bool, []storage.JobSpec, *storage.Ingest, error) {
		s.LastError = sendErr.Error()
		switch {
		case permanent:
			s.Status, s.Reason = storage.SendDead, reasonRejected
		case s.Attempts >= d.opts.MaxAttempts:
			s.Status, s.Reason = storage.SendDead, "gave up after "+strconv.Itoa(s.Attempts)+" attempts"
		default:
			s.Status, s.Reason = storage.SendRetrying, ""
		}
		if s.Status != storage.SendRetrying {
			return true, nil, nil, nil
		}
		wait = d.opts.BackoffFunc(s.Attempts)
		if errors.As(sendErr, &retry) && retry.After > wait {
			wait = retry.After
		}
		// The backoff may be longer than the provider's Retry-After: say
		// when the next attempt really is.
		s.LastError += "; next attempt in " + wait.Round(time.Second).String()
		var jobs []storage.JobSpec
		if inline {
			jobs = append(jobs, d.sendJob(id, "send:"+id, now.Add(wait)))
		}
		return true, jobs, nil, nil
	})
	if err != nil {
		return fmt.Errorf("sending: record failure of %s (%v): %w", id, sendErr, err)
	}
	if send.Status == storage.SendDead {
		d.opts.Logger.Error("send dead", "send_id", id, "rule", send.Rule, "provider", send.Provider, "attempts", send.Attempts, "error", sendErr)
		return nil
	}
	d.opts.Logger.Warn("send will be retried", "send_id", id, "provider", send.Provider, "attempt", send.Attempts, "retry_in", wait, "error", sendErr)
	if inline {
		d.wake()
		return nil
	}
	return scheduler.RetryAt(now.Add(wait), fmt.Errorf("sending: send %s attempt %d: %w", id, send.Attempts, sendErr))
}

// markSent records on s that its provider took it, returning the
// email_sent record's ingest to store with it.
func markSent(s *storage.Send, res connectors.Result, now time.Time, evaluateSent bool) storage.Ingest {
	s.Status, s.Reason, s.LastError = storage.SendSent, "", ""
	s.ProviderMessageID, s.SentAt = res.ProviderMessageID, now
	in := storage.Ingest{Records: []behavior.Record{sentRecord(*s)}}
	if !evaluateSent {
		// The record occurred before this: no evaluation job.
		in.EvaluateSince = now.Add(time.Nanosecond)
	}
	return in
}

// DeliverAll is Deliver for a batch of sends the engine committed
// together (dispatch.BatchPlanner): every provider call of the batch
// starts at once, as a worker per step would have started them, so a
// send committed as "sending" is never left waiting behind others for its
// call (a crash marks it unknown, never to be sent); the sends that went
// out are then recorded in one write. A send the provider refused, or
// whose batch write fails, is settled alone as Deliver would.
func (d *Dispatcher) DeliverAll(ctx context.Context, sends []storage.Send, evaluateSent bool) []error {
	errs := make([]error, len(sends))
	res := make([]connectors.Result, len(sends))
	calls := make([]error, len(sends))
	for i, send := range sends {
		if send.Status != storage.SendSending {
			errs[i] = fmt.Errorf("sending: deliver %s: %w: it is %s, not sending", send.ID, ErrState, send.Status)
		}
	}
	d.callAll(ctx, sends, errs, res, calls)
	var ok []int
	for i, send := range sends {
		switch {
		case errs[i] != nil:
		case calls[i] != nil:
			errs[i] = d.settle(ctx, send.ID, res[i], calls[i], true, evaluateSent)
		default:
			ok = append(ok, i)
		}
	}
	if len(ok) == 0 {
		return errs
	}
	if err := d.settleSent(ctx, sends, res, ok, evaluateSent); err != nil {
		d.opts.Logger.Warn("recording a batch of sends failed, recording them one by one", "sends", len(ok), "error", err)
		for _, i := range ok {
			errs[i] = d.settle(ctx, sends[i].ID, res[i], nil, true, evaluateSent)
		}
	}
	return errs
}

// callAll makes the provider calls of DeliverAll for the sends without an
// error yet: one call per provider that takes batches
// (connectors.BatchSender), else one per send, all started at once.
func (d *Dispatcher) callAll(ctx context.Context, sends []storage.Send, errs []error, res []connectors.Result, calls []error) {
	batches := map[string][]int{}
	var wg sync.WaitGroup
	for i, send := range sends {
		if errs[i] != nil {
			continue
		}
		if _, ok := d.senders[send.Provider].(connectors.BatchSender); ok {
			batches[send.Provider] = append(batches[send.Provider], i)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i], calls[i] = d.call(ctx, send)
		}()
	}
	for provider, idx := range batches {
		bs := d.senders[provider].(connectors.BatchSender)
		var ms []connectors.Message
		var at []int
		for _, i := range idx {
			m, err := d.message(sends[i])
			if err != nil {
				calls[i] = err
				continue
			}
			ms = append(ms, m)
			at = append(at, i)
		}
		if len(ms) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, d.opts.SendTimeout)
			defer cancel()
			rs, es := bs.SendBatch(cctx, ms)
			for k, i := range at {
				if k < len(rs) && k < len(es) {
					res[i], calls[i] = rs[k], es[k]
				} else {
					calls[i] = fmt.Errorf("%s answered %d results for %d messages", provider, min(len(rs), len(es)), len(ms))
				}
			}
		}()
	}
	wg.Wait()
}

// settleSent records, in one write, that the sends at ok went out,
// reading each again under its lock like settle.
func (d *Dispatcher) settleSent(ctx context.Context, sends []storage.Send, res []connectors.Result, ok []int, evaluateSent bool) error {
	ids := make([]string, len(ok))
	for k, i := range ok {
		ids[k] = sends[i].ID
	}
	defer d.lockAll(ids)()
	now := d.now()
	// Without their messages, which FinishSends then leaves as stored.
	current, err := d.store.SendStates(ctx, ids)
	if err != nil {
		return fmt.Errorf("sending: record success of %d sends: %w", len(ids), err)
	}
	fs := make([]storage.SendFinish, 0, len(ok))
	for k, i := range ok {
		s := current[k]
		in := markSent(&s, res[i], now, evaluateSent)
		s.UpdatedAt = now
		fs = append(fs, storage.SendFinish{Send: s, Ingest: in})
	}
	if err := d.store.FinishSends(ctx, fs); err != nil {
		return fmt.Errorf("sending: record success of %d sends: %w", len(fs), err)
	}
	for _, f := range fs {
		s := f.Send
		d.opts.Logger.Info("email sent", "send_id", s.ID, "rule", s.Rule, "step", s.Step, "provider", s.Provider, "to", maskEmail(s.Email))
	}
	return nil
}

// Recover marks every send left "sending" by an earlier run as unknown:
// the provider may or may not have it, so it is never sent again. Run it
// at start, before any delivery of this run begins.
func (d *Dispatcher) Recover(ctx context.Context) error {
	left, err := d.store.ListSends(ctx, storage.SendSending, 0)
	if err != nil {
		return fmt.Errorf("sending: recover: %w", err)
	}
	for _, s := range left {
		_, err := d.modify(ctx, s.ID, func(s *storage.Send) (bool, error) {
			if s.Status != storage.SendSending {
				return false, nil
			}
			s.Status, s.Reason, s.LastError = storage.SendUnknown, reasonInterrupted, ""
			return true, nil
		})
		if err != nil {
			return fmt.Errorf("sending: recover %s: %w", s.ID, err)
		}
		d.opts.Logger.Warn("send interrupted, marked unknown", "send_id", s.ID, "rule", s.Rule)
	}
	return nil
}

// call hands the stored message to its provider with a deadline.
func (d *Dispatcher) call(ctx context.Context, send storage.Send) (connectors.Result, error) {
	sender := d.senders[send.Provider]
	if sender == nil {
		return connectors.Result{}, fmt.Errorf("%w %q: %w", ErrNoSender, send.Provider, connectors.ErrPermanent)
	}
	msg, err := d.message(send)
	if err != nil {
		return connectors.Result{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, d.opts.SendTimeout)
	defer cancel()
	return sender.Send(cctx, msg)
}

// message is the message of send: as rendered, when its rendering in
// this process is remembered for exactly the stored bytes, else decoded.
func (d *Dispatcher) message(send storage.Send) (connectors.Message, error) {
	if m, ok := d.rendered.take(send.ID, send.Message); ok {
		return m, nil
	}
	return storedMessage(send)
}

// storedMessage decodes the message rendered into a send.
func storedMessage(send storage.Send) (connectors.Message, error) {
	var msg connectors.Message
	if err := json.Unmarshal(send.Message, &msg); err != nil {
		return connectors.Message{}, fmt.Errorf("stored message: %v: %w", err, connectors.ErrPermanent)
	}
	return msg, nil
}

// stillAllowed re-checks suppression and consent just before the provider
// call: an unsubscribe between dispatch and delivery must still win.
func (d *Dispatcher) stillAllowed(ctx context.Context, s storage.Send) (string, error) {
	var p storage.Profile
	if d.opts.Policies.RequireConsent {
		var err error
		p, err = d.store.Profile(ctx, s.ProfileID)
		if errors.Is(err, storage.ErrNotFound) {
			return "profile no longer exists", nil
		}
		if err != nil {
			return "", fmt.Errorf("profile %s: %w", s.ProfileID, err)
		}
	}
	return d.blocked(ctx, s.Email, p)
}

// recordSent appends the email_sent record; its id derives from the send,
// so recording twice stores it once.
func (d *Dispatcher) recordSent(ctx context.Context, s storage.Send) error {
	if _, err := d.store.Append(ctx, storage.Ingest{Records: []behavior.Record{sentRecord(s)}}); err != nil {
		return fmt.Errorf("sending: email_sent record for %s: %w", s.ID, err)
	}
	return nil
}

// SentRecordID is the id of the email_sent record of send sendID:
// derived from it, so recording a send twice stores it once, and led by
// the send id's first half, so the records of sends made together sort
// together (see SendID).
func SentRecordID(sendID string) string {
	return behavior.FollowID(sendID, string(behavior.EmailSent), sendID)
}

// sentRecord is the email_sent record of a send that went out.
func sentRecord(s storage.Send) behavior.Record {
	r := behavior.Record{
		ID:     SentRecordID(s.ID),
		Kind:   behavior.EmailSent,
		Source: "nudge",
		At:     s.SentAt,
		Email:  s.Email,
	}
	r.SetRef(behavior.RefSendID, s.ID)
	r.SetRef(behavior.RefRuleID, s.Rule)
	r.SetRef(behavior.RefStep, strconv.Itoa(s.Step))
	r.SetRef(behavior.RefMessageID, s.ProviderMessageID)
	return r
}

// RetrySend puts a dead send back in the outbox with a fresh attempt
// budget (admin action). Only dead sends with a rendered message qualify:
// an unknown send may have been delivered.
func (d *Dispatcher) RetrySend(ctx context.Context, id string) (storage.Send, error) {
	s, err := d.modifyJobs(ctx, id, func(s *storage.Send) (bool, []storage.JobSpec, error) {
		if s.Status != storage.SendDead || len(s.Message) == 0 {
			return false, nil, fmt.Errorf("%w: send %s is %s", ErrState, id, s.Status)
		}
		if s.Meta == nil {
			s.Meta = map[string]string{}
		}
		n, _ := strconv.Atoi(s.Meta["retries"])
		n++
		s.Meta["retries"] = strconv.Itoa(n)
		s.Status, s.Reason, s.Attempts = storage.SendPending, "retried by admin", 0
		payload, err := jsonMarshal(sendPayload{SendID: id})
		if err != nil {
			return false, nil, err
		}
		// A new unique key: the first job's key is kept forever so that a
		// replayed Dispatch cannot enqueue it twice.
		return true, []storage.JobSpec{{
			Kind: JobSend, UniqueKey: "send:" + id + ":retry:" + strconv.Itoa(n),
			Payload: payload, DueAt: d.now(), MaxAttempts: d.opts.MaxAttempts + 2,
		}}, nil
	})
	if err != nil {
		return storage.Send{}, fmt.Errorf("sending: retry send %s: %w", id, err)
	}
	d.wake()
	return s, nil
}

// DiscardSend gives up on a send that has not gone out (pending, retrying
// or dead): it becomes skipped, and a queued job finds nothing to do.
func (d *Dispatcher) DiscardSend(ctx context.Context, id string) (storage.Send, error) {
	s, err := d.modify(ctx, id, func(s *storage.Send) (bool, error) {
		switch s.Status {
		case storage.SendPending, storage.SendRetrying, storage.SendDead:
		default:
			return false, fmt.Errorf("%w: send %s is %s", ErrState, id, s.Status)
		}
		s.Status, s.Reason = storage.SendSkipped, "discarded by admin"
		return true, nil
	})
	if err != nil {
		return storage.Send{}, fmt.Errorf("sending: discard send %s: %w", id, err)
	}
	return s, nil
}
