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
