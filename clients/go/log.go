// Logging rows: Log and its options, the step state machine, Flush, and the
// sidecar's reports of dropped rows.

package runcore

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/runcore/runcore/clients/go/gen/runcorev1"
)

func (r *Run) onDropped(d *pb.DroppedRow) {
	r.dropped.Add(1)
	row := DroppedRow{Step: d.GetStep(), CurrentStep: d.GetCurrentStep(), Reason: d.GetReason()}
	if r.opts.OnDropped != nil {
		r.opts.OnDropped(row)
		return
	}
	if r.warnedDrop.CompareAndSwap(false, true) {
		slog.Warn("runcore: the sidecar dropped a logged row (warned once; Run.DroppedRows counts them)",
			"run", r.id, "reason", row.Reason)
	}
}

// LogOption modifies one Log call.
type LogOption func(*logOptions)

type logOptions struct {
	step   *int64
	commit *bool
}

// WithStep is W&B's step argument: log at this step. A step larger than the run's
// commits the pending row and jumps; the same step merges into the pending row; a
// smaller step is dropped by the sidecar and reported (Options.OnDropped). With a
// step, the row is not committed unless WithCommit(true).
func WithStep(step int64) LogOption {
	return func(o *logOptions) { o.step = &step }
}

// WithCommit is W&B's commit argument: false adds to the pending row without
// committing it; the default is true without WithStep and false with it.
func WithCommit(commit bool) LogOption {
	return func(o *logOptions) { o.commit = &commit }
}

// Log logs a row, as W&B's run.log: data maps keys to values (float and int kinds,
// bool, string, nil, nested map[string]any, slices, Histogram, Media). Without
// WithStep the row is committed at the current step, which then advances, unless
// WithCommit(false). Keys are free text except that they may not be empty or start
// with '_'.
//
// Log validates its arguments and queues the row; a background goroutine sends it.
// It blocks only while Options.BufferRows rows wait to be sent. Errors the sidecar
// reports later for queued rows (a batch it refused) are returned by the next Log,
// Flush or Finish as an *Error whose Lost counts the rows lost; the row of that
// call is queued all the same. Once the run cannot take rows any more (it ended, or
// the sidecar is gone for good) Log returns that error and queues nothing.
func (r *Run) Log(data map[string]any, opts ...LogOption) error {
	var o logOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.step != nil && *o.step < 0 {
		return invalid("Log", r.id, "step %d is negative; steps start at 0", *o.step)
	}
	rw := &row{step: o.step, commit: o.commit}
	for k, v := range data {
		if k == "" {
			return invalid("Log", r.id, "key is empty; give every logged value a non-empty name")
		}
		if k[0] == '_' {
			return invalid("Log", r.id, "key %q starts with '_', which is reserved for runcore's own keys (_step, _runtime, _timestamp); rename it", k)
		}
		var f float64
		switch x := v.(type) {
		case float64:
			f = x
		case float32:
			f = float64(x)
		default:
			pv, err := toValue(v)
			if err != nil {
				return invalid("Log", r.id, "cannot log %q: %v", k, err)
			}
			if rw.values == nil {
				rw.values = make(map[string]*pb.Value)
			}
			rw.values[k] = pv
			rw.size += len(k) + proto.Size(pv) + 6
			continue
		}
		if rw.keys == nil {
			rw.keys = make([]string, 0, len(data))
			rw.vals = make([]float64, 0, len(data))
		}
		rw.keys = append(rw.keys, k)
		rw.vals = append(rw.vals, f)
	}

	r.logLock <- struct{}{}
	defer func() { <-r.logLock }()
	if r.finished {
		return newError("Log", r.id, status.Errorf(codes.FailedPrecondition,
			"run %s has finished; Init it again with Resume: runcore.ResumeAllow to log more", r.id))
	}
	if err := r.snd.deadErr(); err != nil {
		return err
	}
	rw.ts = float64(time.Now().UnixNano()) / 1e9
	r.advance(len(data) > 0, o.step, o.commit)
	r.snd.put(rw)
	return r.snd.takeErrs()
}

// advance mirrors the sidecar's step rules, for Step; false when the row is at a
// smaller step (the sidecar drops it and reports it). tests/vectors/log_steps.json
// holds the cases.
func (r *Run) advance(hasData bool, step *int64, commit *bool) bool {
	doCommit := true
	if step != nil {
		if *step < r.step {
			return false
		}
		if *step > r.step {
			r.step = *step
			r.pending = false
		}
		doCommit = false
	}
	if commit != nil {
		doCommit = *commit
	}
	if hasData {
		r.pending = true
	}
	if doCommit && r.pending {
		r.step++
		r.pending = false
	}
	return true
}

// commitPending mirrors Finish, which commits the pending row.
func (r *Run) commitPending() {
	if r.pending {
		r.step++
		r.pending = false
	}
}

// Flush waits until every row logged so far is in the sidecar (acknowledged), and
// returns the errors the sidecar reported for them since the last Log or Flush.
func (r *Run) Flush(ctx context.Context) error {
	if err := r.drain(ctx); err != nil {
		return newError("Flush", r.id, status.FromContextError(err).Err())
	}
	return r.snd.takeErrs()
}

// drain waits for the rows logged so far; only ctx's error is returned.
func (r *Run) drain(ctx context.Context) error {
	select {
	case r.logLock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	if r.finished {
		<-r.logLock
		return nil
	}
	// The marker goes on the queue under the lock: Finish closes the queue only
	// between calls that hold it.
	done := make(chan struct{})
	select {
	case r.snd.queue <- item{flush: done}:
		<-r.logLock
	case <-ctx.Done():
		<-r.logLock
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
