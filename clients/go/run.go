package runcore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/runcore/runcore/clients/go/gen/runcorev1"
)

// Run is a run being logged to a sidecar. Its methods are safe for concurrent use.
// Log queues and returns; every other method that changes the run first waits until
// the rows logged before it are in the sidecar, so the sidecar sees calls in the
// order the program made them.
//
// A failed call is handled as the client contract says (classify, contract.go):
// the sidecar unreachable -> reconnect and retry; the run unknown to it -> Init it
// again; the run ended by it (crashed, killed, ...) -> an error matching
// ErrRunEnded, a warning, and Context cancelled; never a silent resume.
type Run struct {
	opts    Options
	sc      *sidecar
	id      string
	project string
	info    RunInfo // as Init returned it
	resumed bool
	start   int64
	// initReq is kept to re-attach the run after a sidecar restart.
	initReq *pb.InitRequest

	snd *sender

	// logLock (a one-slot channel, so that Finish can give up waiting for it when
	// its ctx ends) orders Log calls: the step mirror and the queue follow call
	// order, and Finish closes the queue only between Log calls.
	logLock  chan struct{}
	step     int64
	pending  bool
	finished bool

	// attachMu serialises re-attaching after a reconnect.
	attachMu    sync.Mutex
	attachedGen uint64

	preempting atomic.Bool
	state      atomic.Value // State, from the last Heartbeat
	shouldStop atomic.Bool
	stopOnce   sync.Once
	stopCh     chan struct{}
	dropped    atomic.Int64
	warnedDrop atomic.Bool

	hbStop chan struct{}
	hbDone chan struct{}

	// ctx is the run's context (Context): cancelled, with the reason as its cause,
	// when an operator asks the run to stop, when the sidecar ends the run, and by
	// Finish.
	ctx    context.Context
	cancel context.CancelCauseFunc

	// mu guards config and ended.
	mu sync.Mutex
	// config is the run's config as the sidecar holds it (Config).
	config map[string]any
	// ended is how the sidecar ended the run without this client finishing it.
	ended State

	finishMu  sync.Mutex
	finishRes *FinishResult
}

// Init starts a run (or resumes one, see Options.Resume) on the sidecar at
// opts.Address, else at $RUNCORE_ADDRESS, else on a sidecar this process spawns.
// The run sends a heartbeat in the background and must be ended with Finish.
func Init(ctx context.Context, opts Options) (*Run, error) {
	opts.withDefaults()
	resume, ok := opts.Resume.proto()
	if !ok {
		return nil, invalid("Init", opts.ID, "unknown resume mode %q; use never, allow or must", opts.Resume)
	}
	config, err := toValueMap(opts.Config, "config")
	if err != nil {
		return nil, invalid("Init", opts.ID, "%v", err)
	}
	wd := opts.WorkingDir
	if wd == "" {
		if wd, err = os.Getwd(); err != nil {
			return nil, fmt.Errorf("runcore: Init: working directory: %w", err)
		}
	}
	req := &pb.InitRequest{
		Id:         opts.ID,
		Name:       opts.Name,
		Entity:     opts.Entity,
		Project:    opts.Project,
		Group:      opts.Group,
		JobType:    opts.JobType,
		Tags:       opts.Tags,
		Notes:      opts.Notes,
		Config:     config,
		Resume:     resume,
		Client:     clientInfo(),
		WorkingDir: wd,
		WriterId:   opts.WriterID,
		Writer:     opts.writerSettings(),
	}
	if opts.ClientTimeout > 0 {
		req.ClientTimeout = proto.Float64(opts.ClientTimeout.Seconds())
	}
	if sm := opts.SystemMetrics; sm != nil {
		req.SystemMetrics = &pb.SystemMetricsSettings{
			Interval:  sm.Interval.Seconds(),
			Disabled:  sm.Disabled,
			PerCpu:    sm.PerCPU,
			DiskPaths: sm.DiskPaths,
		}
	}

	findCtx, cancel := context.WithTimeout(ctx, opts.InitTimeout)
	sc, err := getSidecar(findCtx, &opts)
	cancel()
	if err != nil {
		return nil, err
	}
	resp, err := initCall(ctx, sc, req, opts.InitTimeout)
	if err != nil {
		return nil, newError("Init", opts.ID, err)
	}
	runConfig := fromValueMap(req.Config)
	if resp.GetResumed() {
		// The sidecar merged Options.Config into the run's config; InitResponse does
		// not carry the result, GetRun does.
		got, err := sc.client.GetRun(ctx, &pb.GetRunRequest{RunId: resp.GetRun().GetId()})
		if err == nil {
			runConfig = fromValueMap(got.GetConfig())
		} else {
			slog.Warn("runcore: the run resumed, but its config could not be read: Config holds only Options.Config",
				"run", resp.GetRun().GetId(), "error", err)
		}
	}
	runCtx, cancelRun := context.WithCancelCause(context.WithoutCancel(ctx))
	r := &Run{
		opts:        opts,
		sc:          sc,
		id:          resp.GetRun().GetId(),
		project:     resp.GetRun().GetProject(),
		info:        infoOf(resp.GetRun()),
		resumed:     resp.GetResumed(),
		start:       resp.GetStartingStep(),
		step:        resp.GetStartingStep(),
		initReq:     req,
		attachedGen: sc.gen(),
		logLock:     make(chan struct{}, 1),
		stopCh:      make(chan struct{}),
		hbStop:      make(chan struct{}),
		hbDone:      make(chan struct{}),
		ctx:         runCtx,
		cancel:      cancelRun,
		config:      runConfig,
	}
	r.state.Store(r.info.State)
	if r.info.StopRequested {
		r.markShouldStop()
	}
	// A resumed run holds batches up to last_seq: continue after it, or the
	// sidecar would take the new batches for resent ones.
	r.snd = newSender(r, resp.GetLastSeq()+1)
	go r.heartbeat(opts.heartbeatInterval(r.info.ClientTimeout))
	return r, nil
}

// initCall is the Init RPC, retried as the client contract says (kind init: the
// sidecar unreachable) for up to timeout.
func initCall(ctx context.Context, sc *sidecar, req *pb.InitRequest, timeout time.Duration) (*pb.InitResponse, error) {
	retryCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	delay := 50 * time.Millisecond
	for {
		seen := sc.gen()
		resp, err := sc.client.Init(ctx, req)
		if err == nil || classify(status.Code(err), kindInit) != actRetry || ctx.Err() != nil {
			return resp, err
		}
		if rerr := sc.recover(retryCtx, seen); rerr != nil {
			return nil, err
		}
		select {
		case <-retryCtx.Done():
			return nil, err
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

func clientInfo() *pb.ClientInfo {
	host, _ := os.Hostname()
	info := &pb.ClientInfo{Pid: int64(os.Getpid()), Hostname: host}
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		info.BootId = string(trimSpace(b))
	}
	return info
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

// ID is the run's id.
func (r *Run) ID() string { return r.id }

// Name is the run's display name.
func (r *Run) Name() string { return r.info.Name }

// Project is the run's project.
func (r *Run) Project() string { return r.project }

// Path is entity/project/id (project/id without an entity).
func (r *Run) Path() string { return r.info.Path }

// Dir is the run's files directory on the sidecar's host (W&B's run.dir).
func (r *Run) Dir() string { return r.info.Dir }

// Info is the run as Init returned it.
func (r *Run) Info() RunInfo { return r.info }

// Resumed reports whether Init continued an existing run.
func (r *Run) Resumed() bool { return r.resumed }

// StartingStep is the step logging began at (0 for a new run).
func (r *Run) StartingStep() int64 { return r.start }

// Address is the address of the sidecar the run logs to.
func (r *Run) Address() string { return r.sc.address }

// Step is the step the next committed row gets, following the rules of Log.
func (r *Run) Step() int64 {
	r.logLock <- struct{}{}
	defer func() { <-r.logLock }()
	return r.step
}

// State is the run's state as the last heartbeat reported it.
func (r *Run) State() State {
	s, _ := r.state.Load().(State)
	return s
}

// ShouldStop reports whether an operator asked the run to stop (runcore runs stop),
// as the heartbeat reports it. The program may then finish cleanly.
func (r *Run) ShouldStop() bool { return r.shouldStop.Load() }

// StopRequested is closed when ShouldStop becomes true, for use in select.
func (r *Run) StopRequested() <-chan struct{} { return r.stopCh }

// Context is the run's context, for the work the run tracks (a training loop
// selects on Done, or passes it down). It is cancelled when an operator asks the
// run to stop (`runcore runs stop ID`: context.Cause wraps ErrStopRequested), when
// the sidecar ends the run without this client (context.Cause matches ErrRunEnded
// and says how), and by Finish. It carries the values of Init's ctx, not its
// deadline.
func (r *Run) Context() context.Context { return r.ctx }

// Config is the run's config as the sidecar holds it (a copy): Options.Config for
// a new run, the whole config of a resumed one (Options.Config merged into it), as
// UpdateConfig last returned it.
func (r *Run) Config() map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.config)
}

// DroppedRows counts the rows the sidecar did not apply (see Options.OnDropped).
func (r *Run) DroppedRows() int64 { return r.dropped.Load() }

// markShouldStop: an operator asked the run to stop. Like W&B, interrupt the
// training loop: the run's Context is cancelled, with the reason as its cause.
func (r *Run) markShouldStop() {
	r.shouldStop.Store(true)
	r.stopOnce.Do(func() {
		close(r.stopCh)
		slog.Warn("runcore: the run was asked to stop (runcore runs stop, or a StopRun call); its Context is cancelled",
			"run", r.id)
		r.cancel(fmt.Errorf("%w: run %s (runcore runs stop %s, or a StopRun call)", ErrStopRequested, r.id, r.id))
	})
}

// endedWhy says why the sidecar ends a run in a state without its client.
var endedWhy = map[State]string{
	StateCrashed:   "it saw no sign of life from this client within the client timeout, or its process gone",
	StateKilled:    "the sidecar shut down with the run open",
	StatePreempted: "the run was preempting when its client went quiet",
	StateFinished:  "it was finished, not by this client",
	StateFailed:    "it was finished with an error, not by this client",
}

// markEnded records that the sidecar ended the run in st without this client
// finishing it (the first time: a warning, and Context is cancelled), and returns
// the error calls about it get: FAILED_PRECONDITION, as the sidecar words it,
// matching ErrRunEnded.
func (r *Run) markEnded(op string, st State) *Error {
	r.mu.Lock()
	first := r.ended == StateUnknown
	if first {
		r.ended = st
	}
	st = r.ended
	r.mu.Unlock()
	err := &Error{Op: op, RunID: r.id, State: st, Err: status.Errorf(codes.FailedPrecondition,
		"run %q has ended (%s); Init it with resume=\"allow\" to log to it again", r.id, st)}
	if first {
		r.state.Store(st)
		slog.Warn("runcore: the sidecar ended the run; runcore does not resume it, so rows logged from now on are not recorded "+
			"(Init it with ResumeAllow to continue it)", "run", r.id, "state", string(st), "why", endedWhy[st])
		r.cancel(err)
	}
	return err
}

// endedErr is the error of a call about a run the sidecar ended, or nil.
func (r *Run) endedErr(op string) *Error {
	r.mu.Lock()
	st := r.ended
	r.mu.Unlock()
	if st == StateUnknown {
		return nil
	}
	return r.markEnded(op, st)
}

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

// MetricOption modifies a DefineMetric call.
type MetricOption func(*pb.DefineMetricRequest)

// WithStepMetric sets the metric's x axis: another logged key (e.g. "epoch").
func WithStepMetric(name string) MetricOption {
	return func(r *pb.DefineMetricRequest) { r.StepMetric = name }
}

// WithStepSync fills the step metric's last value into rows that lack it (the
// default is true with a step metric).
func WithStepSync(sync bool) MetricOption {
	return func(r *pb.DefineMetricRequest) { r.StepSync = &sync }
}

// WithHidden hides the metric from charts.
func WithHidden(hidden bool) MetricOption {
	return func(r *pb.DefineMetricRequest) { r.Hidden = &hidden }
}

// WithSummary selects the summary aggregations: any of "min", "max", "mean",
// "first", "last", "best" (needs WithGoal), or "none".
func WithSummary(aggregations ...string) MetricOption {
	return func(r *pb.DefineMetricRequest) {
		for i, a := range aggregations {
			if i > 0 {
				r.Summary += ","
			}
			r.Summary += a
		}
	}
}

// Goals for WithGoal.
const (
	Minimize = "minimize"
	Maximize = "maximize"
)

// WithGoal sets the goal of the "best" summary: Minimize or Maximize.
func WithGoal(goal string) MetricOption {
	return func(r *pb.DefineMetricRequest) { r.Goal = goal }
}

// WithOverwrite(false) merges with an earlier definition of the same name instead
// of replacing it.
func WithOverwrite(overwrite bool) MetricOption {
	return func(r *pb.DefineMetricRequest) { r.Overwrite = &overwrite }
}

// DefineMetric is W&B's run.define_metric: name is a key, or a prefix ending in '*'
// ("val/*"). It returns the definition as the sidecar now holds it.
func (r *Run) DefineMetric(ctx context.Context, name string, opts ...MetricOption) (MetricDefinition, error) {
	req := &pb.DefineMetricRequest{RunId: r.id, Name: name}
	for _, opt := range opts {
		opt(req)
	}
	var resp *pb.DefineMetricResponse
	err := r.call(ctx, "DefineMetric", func(ctx context.Context) (err error) {
		resp, err = r.sc.client.DefineMetric(ctx, req)
		return err
	})
	if err != nil {
		return MetricDefinition{}, err
	}
	m := resp.GetMetric()
	return MetricDefinition{
		Name:       m.GetName(),
		StepMetric: m.GetStepMetric(),
		StepSync:   m.GetStepSync(),
		Hidden:     m.GetHidden(),
		Summary:    m.GetSummary(),
		Goal:       m.GetGoal(),
	}, nil
}

// AlertLevel is an alert's level.
type AlertLevel string

// Alert levels.
const (
	AlertInfo  AlertLevel = "INFO"
	AlertWarn  AlertLevel = "WARN"
	AlertError AlertLevel = "ERROR"
)

// AlertOption modifies an Alert call.
type AlertOption func(*pb.AlertRequest)

// WithLevel sets the alert's level (AlertInfo when not given).
func WithLevel(level AlertLevel) AlertOption {
	return func(r *pb.AlertRequest) { r.Level = string(level) }
}

// WithWaitDuration sets how long alerts with the same title are throttled after
// this one is sent (60 s when not given).
func WithWaitDuration(d time.Duration) AlertOption {
	return func(r *pb.AlertRequest) { r.WaitDuration = proto.Float64(d.Seconds()) }
}

// Alert is W&B's run.alert: title is 1..64 characters. An alert whose title was
// sent less than its wait duration ago is throttled, and the result says so.
func (r *Run) Alert(ctx context.Context, title, text string, opts ...AlertOption) (AlertResult, error) {
	req := &pb.AlertRequest{RunId: r.id, Title: title, Text: text}
	for _, opt := range opts {
		opt(req)
	}
	var resp *pb.AlertResponse
	err := r.call(ctx, "Alert", func(ctx context.Context) (err error) {
		resp, err = r.sc.client.Alert(ctx, req)
		return err
	})
	if err != nil {
		return AlertResult{}, err
	}
	return AlertResult{Sent: resp.GetSent(), Throttled: resp.GetThrottled(), ThrottledUntil: unixTime(resp.GetThrottledUntil())}, nil
}

// SavePolicy says when a saved file is copied into the run.
type SavePolicy string

// Save policies.
const (
	// SaveLive copies now, again whenever the file changes (debounced), and at the end.
	SaveLive SavePolicy = "live"
	// SaveNow copies once, now.
	SaveNow SavePolicy = "now"
	// SaveEnd copies when the run finishes.
	SaveEnd SavePolicy = "end"
)

// SaveOption modifies a Save call.
type SaveOption func(*pb.SaveFilesRequest)

// WithBasePath keeps the path below this prefix of the glob as the layout under the
// run's files/ (W&B's base_path).
func WithBasePath(base string) SaveOption {
	return func(r *pb.SaveFilesRequest) { r.BasePath = base }
}

// WithPolicy sets when the files are copied (SaveLive when not given).
func WithPolicy(p SavePolicy) SaveOption {
	return func(r *pb.SaveFilesRequest) { r.Policy = string(p) }
}

// WithWorkingDir resolves a relative glob against dir instead of the run's working
// directory.
func WithWorkingDir(dir string) SaveOption {
	return func(r *pb.SaveFilesRequest) { r.WorkingDir = dir }
}

// Save is W&B's run.save: glob is a path or glob, absolute or relative to the run's
// working directory, expanded now. It returns the saved paths, relative to the
// run's files/ directory (Dir).
func (r *Run) Save(ctx context.Context, glob string, opts ...SaveOption) ([]string, error) {
	req := &pb.SaveFilesRequest{RunId: r.id, Glob: glob}
	for _, opt := range opts {
		opt(req)
	}
	var resp *pb.SaveFilesResponse
	err := r.call(ctx, "Save", func(ctx context.Context) (err error) {
		resp, err = r.sc.client.SaveFiles(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.GetSaved(), nil
}

// UpdateConfig merges values into the run config at the top level and removes the
// keys in remove; it returns the whole config.
func (r *Run) UpdateConfig(ctx context.Context, values map[string]any, remove ...string) (map[string]any, error) {
	config, err := toValueMap(values, "config")
	if err != nil {
		return nil, invalid("UpdateConfig", r.id, "%v", err)
	}
	var resp *pb.UpdateConfigResponse
	err = r.call(ctx, "UpdateConfig", func(ctx context.Context) (err error) {
		resp, err = r.sc.client.UpdateConfig(ctx, &pb.UpdateConfigRequest{RunId: r.id, Config: config, Remove: remove})
		return err
	})
	if err != nil {
		return nil, err
	}
	whole := fromValueMap(resp.GetConfig())
	r.mu.Lock()
	r.config = whole
	r.mu.Unlock()
	return maps.Clone(whole), nil
}

// SetSummary sets summary values explicitly (an explicit value wins over the
// aggregation of logged values for its key) and removes the keys in remove; it
// returns the whole summary.
func (r *Run) SetSummary(ctx context.Context, values map[string]any, remove ...string) (map[string]any, error) {
	summary, err := toValueMap(values, "summary")
	if err != nil {
		return nil, invalid("SetSummary", r.id, "%v", err)
	}
	var resp *pb.UpdateSummaryResponse
	err = r.call(ctx, "SetSummary", func(ctx context.Context) (err error) {
		resp, err = r.sc.client.UpdateSummary(ctx, &pb.UpdateSummaryRequest{RunId: r.id, Summary: summary, Remove: remove})
		return err
	})
	if err != nil {
		return nil, err
	}
	return fromValueMap(resp.GetSummary()), nil
}

// Summary returns the run's summary now (after the rows logged so far).
func (r *Run) Summary(ctx context.Context) (map[string]any, error) {
	var resp *pb.GetRunResponse
	err := r.call(ctx, "Summary", func(ctx context.Context) (err error) {
		resp, err = r.sc.client.GetRun(ctx, &pb.GetRunRequest{RunId: r.id})
		return err
	})
	if err != nil {
		return nil, err
	}
	return fromValueMap(resp.GetSummary()), nil
}

// MarkPreempting is W&B's run.mark_preempting: the run is about to be preempted.
// If the client then disappears without Finish, the run ends "preempted" instead
// of "crashed".
func (r *Run) MarkPreempting(ctx context.Context) error {
	err := r.call(ctx, "MarkPreempting", func(ctx context.Context) error {
		_, err := r.sc.client.MarkPreempting(ctx, &pb.MarkPreemptingRequest{RunId: r.id})
		return err
	})
	if err == nil {
		r.preempting.Store(true)
	}
	return err
}

// Finish ends the run, as W&B's run.finish: every logged row is sent and
// acknowledged first, then the run ends "finished" (exitCode 0) or "failed". It
// returns the ended run and its final summary, together with the errors the
// sidecar reported for rows not returned by an earlier Log or Flush. Finish is
// idempotent: a later call returns the same result. If ctx ends first, Finish
// returns its error and may be called again.
func (r *Run) Finish(ctx context.Context, exitCode int) (*FinishResult, error) {
	r.finishMu.Lock()
	defer r.finishMu.Unlock()
	if r.finishRes != nil {
		return r.finishRes, nil
	}
	if exitCode < math.MinInt32 || exitCode > math.MaxInt32 {
		return nil, invalid("Finish", r.id, "exit code %d does not fit an int32", exitCode)
	}
	// A Log blocked on a full queue (the sidecar is away) holds the lock.
	select {
	case r.logLock <- struct{}{}:
	case <-ctx.Done():
		return nil, newError("Finish", r.id, status.FromContextError(ctx.Err()).Err())
	}
	if !r.finished {
		r.finished = true
		r.commitPending()
		close(r.snd.queue)
	}
	<-r.logLock
	select {
	case <-r.snd.done:
	case <-ctx.Done():
		return nil, newError("Finish", r.id, status.FromContextError(ctx.Err()).Err())
	}
	logErr := r.snd.takeErrs()
	r.stopHeartbeat()
	code := int32(exitCode)
	req := &pb.FinishRequest{RunId: r.id, ExitCode: &code, WriterId: r.opts.WriterID}
	var resp *pb.FinishResponse
	err := r.callNow(ctx, "Finish", func(ctx context.Context) (err error) {
		resp, err = r.sc.client.Finish(ctx, req)
		return err
	})
	if errors.Is(err, ErrRunEnded) {
		// Finish of an ended run answers with how it ended (and changes nothing).
		if got, ferr := r.sc.client.Finish(ctx, req); ferr == nil {
			resp, err = got, nil
		}
	}
	if err != nil {
		return nil, errors.Join(err, logErr)
	}
	r.finishRes = &FinishResult{
		Run:      infoOf(resp.GetRun()),
		Summary:  fromValueMap(resp.GetSummary()),
		Backends: backendsOf(resp.GetBackends()),
		Writer:   stateOf(resp.GetWriter().GetState()),
	}
	r.state.Store(r.finishRes.Run.State)
	r.cancel(nil)
	// A shared run's writer that may not end the run finished alone.
	alone := resp.GetWriter() != nil && (r.finishRes.Run.State == StateRunning || r.finishRes.Run.State == StatePreempting)
	if st := r.finishRes.Run.State; !alone && st != StateFinished && st != StateFailed {
		// The sidecar had ended the run (this client stalled past its client
		// timeout, or the sidecar shut down): say how; it is not resumed.
		ended := r.markEnded("Finish", st)
		if !errors.Is(logErr, ErrRunEnded) {
			logErr = errors.Join(ended, logErr)
		}
	}
	return r.finishRes, logErr
}

func (r *Run) stopHeartbeat() {
	select {
	case <-r.hbStop:
	default:
		close(r.hbStop)
	}
	<-r.hbDone
}

// String is "project/id (name)".
func (r *Run) String() string {
	return r.project + "/" + r.id + " (" + strconv.Quote(r.info.Name) + ")"
}
