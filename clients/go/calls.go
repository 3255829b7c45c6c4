// Calls to the sidecar under the client contract: drain the rows first, then
// reconnect, re-attach and retry as contract.go classifies each failure; and the
// run's heartbeat.

package runcore

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/runcore/runcore/clients/go/gen/runcorev1"
)

// call makes one unary call for op after the rows logged before it are in the
// sidecar; when the sidecar is unreachable it reconnects (re-attaching the run)
// and tries again, for up to Options.ReconnectTimeout.
func (r *Run) call(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	if err := r.drain(ctx); err != nil {
		return newError(op, r.id, status.FromContextError(err).Err())
	}
	return r.callNow(ctx, op, fn)
}

// callNow makes one unary call as the client contract says (kind unary).
func (r *Run) callNow(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	return r.callWith(ctx, op, true, fn)
}

// callWith is callNow; with reinit false, NOT_FOUND is returned to the caller
// rather than answered by Init-ing the run again (artifact calls, where it names a
// missing artifact).
func (r *Run) callWith(ctx context.Context, op string, reinit bool, fn func(ctx context.Context) error) error {
	// Since when the call is retried, and the backoff between retries after the
	// first: a sidecar that is reachable yet keeps answering UNAVAILABLE is given
	// up on after ReconnectTimeout.
	var retrying time.Time
	delay := 50 * time.Millisecond
	for {
		err := r.reattach(ctx)
		if err == nil {
			err = fn(ctx)
		}
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrRunEnded) {
			return newError(op, r.id, err)
		}
		switch classify(status.Code(err), kindUnary) {
		case actRetry:
			if ctx.Err() != nil {
				return newError(op, r.id, err) // the caller cancelled it: not retried
			}
			if retrying.IsZero() {
				retrying = time.Now()
			} else {
				if time.Since(retrying) > r.opts.ReconnectTimeout {
					return newError(op, r.id, err)
				}
				select {
				case <-ctx.Done():
					return newError(op, r.id, err)
				case <-time.After(delay):
				}
				delay = min(2*delay, time.Second)
			}
			if rerr := r.reconnect(ctx, err); rerr != nil {
				return newError(op, r.id, rerr)
			}
			continue
		case actReinit:
			if reinit {
				reinit = false
				aerr := r.attach(ctx, true)
				if aerr == nil {
					continue
				}
				if errors.Is(aerr, ErrRunEnded) {
					return newError(op, r.id, aerr)
				}
			}
		case actEnded:
			if aerr := r.attach(ctx, true); errors.Is(aerr, ErrRunEnded) {
				return newError(op, r.id, aerr)
			}
		}
		return newError(op, r.id, err)
	}
}

// reconnect waits, up to Options.ReconnectTimeout, for the sidecar to serve again
// (restarting it if this process spawned it) and re-attaches the run. cause is the
// error that showed the sidecar was gone; the returned error carries a status.
func (r *Run) reconnect(ctx context.Context, cause error) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.ReconnectTimeout)
	defer cancel()
	delay := 50 * time.Millisecond
	seen := r.attachedGeneration()
	for {
		err := r.sc.recover(ctx, seen)
		if err == nil {
			err = r.reattach(ctx)
		}
		if err == nil {
			return nil
		}
		if _, ok := status.FromError(err); ok && status.Code(err) != codes.Unavailable && status.Code(err) != codes.DeadlineExceeded {
			return err
		}
		if ctx.Err() != nil {
			return status.Errorf(codes.Unavailable, "the sidecar at %s went away (%s) and did not come back within %s: %v",
				r.sc.describe(), status.Convert(cause).Message(), r.opts.ReconnectTimeout, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
		seen = r.sc.gen()
	}
}

func (r *Run) attachedGeneration() uint64 {
	r.attachMu.Lock()
	defer r.attachMu.Unlock()
	return r.attachedGen
}

// reattach makes sure the run is open on the sidecar after a reconnect.
func (r *Run) reattach(ctx context.Context) error { return r.attach(ctx, false) }

// attach makes sure the run is open on the sidecar, after a reconnect (or now,
// with force): a restarted sidecar recovers an open run from its log (nothing to
// do); one that does not know the run (another data dir) gets an Init with the
// same id and resume "allow" (and MarkPreempting again if it was called); a run it
// ended (crashed, killed, ...) stays ended: the error matches ErrRunEnded.
func (r *Run) attach(ctx context.Context, force bool) error {
	r.attachMu.Lock()
	defer r.attachMu.Unlock()
	gen := r.sc.gen()
	if !force && r.attachedGen == gen {
		return nil
	}
	if err := r.endedErr("Log"); err != nil {
		return err
	}
	got, err := r.sc.client.GetRun(ctx, &pb.GetRunRequest{RunId: r.id})
	switch {
	case err == nil && stateOf(got.GetRun().GetState()).Open():
		r.attachedGen = gen
		return nil
	case err == nil:
		return r.markEnded("Log", stateOf(got.GetRun().GetState()))
	case classify(status.Code(err), kindUnary) != actReinit:
		return err
	}
	req := proto.Clone(r.initReq).(*pb.InitRequest)
	req.Id, req.Project = r.id, r.project
	req.Resume = pb.Resume_RESUME_ALLOW
	// The sidecar lost the run: give it the config too.
	if config, err := toValueMap(r.Config(), "config"); err == nil {
		req.Config = config
	}
	if _, err := r.sc.client.Init(ctx, req); err != nil {
		return err
	}
	if r.preempting.Load() {
		if _, err := r.sc.client.MarkPreempting(ctx, &pb.MarkPreemptingRequest{RunId: r.id}); err != nil {
			return err
		}
	}
	r.attachedGen = gen
	return nil
}

// heartbeat shows a sign of life every interval and picks up state and should_stop.
func (r *Run) heartbeat(interval time.Duration) {
	defer close(r.hbDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-r.hbStop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(2*interval, 5*time.Second))
		var resp *pb.HeartbeatResponse
		err := r.callNow(ctx, "Heartbeat", func(ctx context.Context) (err error) {
			resp, err = r.sc.client.Heartbeat(ctx, &pb.HeartbeatRequest{RunId: r.id, WriterId: r.opts.WriterID})
			return err
		})
		cancel()
		if errors.Is(err, ErrRunEnded) {
			return // reported (markEnded); nothing to keep alive
		}
		if err != nil {
			// The sender notices a sidecar that went away through its stream.
			continue
		}
		r.state.Store(stateOf(resp.GetState()))
		if resp.GetShouldStop() {
			r.markShouldStop()
		}
	}
}
