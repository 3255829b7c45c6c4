package runcore_test

// The client contract (tests/vectors/status_contract.json; vectors_test.go checks
// the table itself): what the client does when the sidecar ends a run, loses it,
// fails inside, or refuses the client. A run the sidecar ended (crashed, killed) is
// reported, never resumed; a run it does not know is Init-ed again; INTERNAL is
// retried a few times, not forever; UNAUTHENTICATED stops the sender at once.

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	runcore "github.com/runcore/runcore/clients/go"
	pb "github.com/runcore/runcore/clients/go/gen/runcorev1"
)

// wantEnded checks that err says the sidecar ended the run in state.
func wantEnded(t *testing.T, err error, op string, state runcore.State) {
	t.Helper()
	var rerr *runcore.Error
	if !errors.Is(err, runcore.ErrRunEnded) || !errors.As(err, &rerr) || rerr.State != state || rerr.Op != op ||
		runcore.Code(err) != codes.FailedPrecondition {
		t.Fatalf("%s: error %v (%#v), want %s ending in %s", op, err, rerr, runcore.ErrRunEnded, state)
	}
}

func TestCrashedRunIsReportedNotResumed(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	// No heartbeat within the client timeout: this client looks stalled.
	run := newRun(t, runcore.Options{ClientTimeout: 500 * time.Millisecond, HeartbeatInterval: time.Hour})
	if err := run.Log(map[string]any{"x": 1.0}); err != nil {
		t.Fatal(err)
	}
	if err := run.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the sidecar crashes the silent run", func() bool {
		return getRun(t, shared.client, run.ID()).GetRun().GetState() == pb.RunState_RUN_STATE_CRASHED
	})
	if err := run.Log(map[string]any{"x": 2.0}); err != nil {
		t.Fatal(err) // queued; the sidecar refuses it
	}
	err := run.Flush(ctx)
	wantEnded(t, err, "Log", runcore.StateCrashed)
	if rerr := (*runcore.Error)(nil); !errors.As(err, &rerr) || rerr.Lost != 1 {
		t.Errorf("lost rows of %v: want 1", err)
	}
	select {
	case <-run.Context().Done():
		if cause := context.Cause(run.Context()); !errors.Is(cause, runcore.ErrRunEnded) {
			t.Errorf("context cause %v", cause)
		}
	default:
		t.Error("the run's context is not cancelled")
	}
	_, err = run.DefineMetric(ctx, "x")
	wantEnded(t, err, "DefineMetric", runcore.StateCrashed)
	res, err := run.Finish(ctx, 0)
	wantEnded(t, err, "Log", runcore.StateCrashed)
	if res == nil || res.Run.State != runcore.StateCrashed || run.State() != runcore.StateCrashed {
		t.Fatalf("Finish = %+v", res)
	}
	got := getRun(t, shared.client, run.ID()).GetRun()
	if got.GetState() != pb.RunState_RUN_STATE_CRASHED || got.GetResumed() {
		t.Errorf("the sidecar's run: %v resumed=%v; want crashed, not resumed", got.GetState(), got.GetResumed())
	}
	checkXs(t, shared.client, run.ID(), 1.0)
}

// checkXs checks the "x" values of a run's history.
func checkXs(t *testing.T, client pb.RunServiceClient, runID string, xs ...float64) {
	t.Helper()
	rows := history(t, client, runID)
	if len(rows) != len(xs) {
		t.Fatalf("history %v, want x = %v", rows, xs)
	}
	for i, r := range rows {
		if r["x"] != xs[i] {
			t.Fatalf("history %v, want x = %v", rows, xs)
		}
	}
}

// terminate SIGTERMs the sidecar and waits for it to exit: it gives open runs its
// grace period, then ends them killed.
func (sc *testSidecar) terminate(t testing.TB) {
	t.Helper()
	_ = sc.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-sc.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the sidecar did not exit within 30 s of SIGTERM")
	}
}

func TestKilledAtSidecarShutdownIsNotResumed(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	sc := startSidecar(t, "--shutdown-grace", "1")
	run, err := runcore.Init(ctx, runcore.Options{Address: sc.addr, Project: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Log(map[string]any{"x": 1.0}); err != nil {
		t.Fatal(err)
	}
	if err := run.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sc.terminate(t)
	if err := sc.start(); err != nil {
		t.Fatal(err)
	}
	_ = run.Log(map[string]any{"x": 2.0}) // refused now or by the next call
	err = run.Flush(ctx)
	wantEnded(t, err, "Log", runcore.StateKilled)
	res, err := run.Finish(ctx, 0)
	wantEnded(t, err, "Log", runcore.StateKilled)
	if res == nil || res.Run.State != runcore.StateKilled {
		t.Fatalf("Finish = %+v", res)
	}
	got := getRun(t, sc.client, run.ID()).GetRun()
	if got.GetState() != pb.RunState_RUN_STATE_KILLED || got.GetResumed() {
		t.Errorf("the sidecar's run: %v resumed=%v; want killed, not resumed", got.GetState(), got.GetResumed())
	}
	checkXs(t, sc.client, run.ID(), 1.0)
}

func TestLostRunIsInitedAgain(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	sc := startSidecar(t)
	run, err := runcore.Init(ctx, runcore.Options{Address: sc.addr, Project: "p", Config: map[string]any{"lr": 0.1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Log(map[string]any{"x": 1.0}); err != nil {
		t.Fatal(err)
	}
	if err := run.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sc.kill(t)
	// Started again on another data dir: this sidecar never saw the run.
	for i, a := range sc.args {
		if a == "--data-dir" {
			sc.args[i+1] = filepath.Join(sc.dir, "another-data-dir")
		}
	}
	if err := sc.start(); err != nil {
		t.Fatal(err)
	}
	if err := run.Log(map[string]any{"x": 2.0}); err != nil {
		t.Fatal(err)
	}
	res, err := run.Finish(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Run.State != runcore.StateFinished || res.Run.Resumed {
		t.Errorf("Finish = %+v", res.Run)
	}
	got := getRun(t, sc.client, run.ID())
	if runcore.FromValue(got.GetConfig()["lr"]) != 0.1 {
		t.Errorf("config on the new sidecar: %v", got.GetConfig())
	}
	checkXs(t, sc.client, run.ID(), 2.0)
}

// failingSidecar answers Init, GetRun, Heartbeat and Finish, and ends every
// LogStream with code.
type failingSidecar struct {
	pb.UnimplementedRunServiceServer
	code    codes.Code
	streams atomic.Int32
}

func (f *failingSidecar) Init(_ context.Context, req *pb.InitRequest) (*pb.InitResponse, error) {
	return &pb.InitResponse{Run: &pb.RunInfo{Id: req.GetId(), Project: "p", State: pb.RunState_RUN_STATE_RUNNING, ClientTimeout: 60}}, nil
}

func (f *failingSidecar) GetRun(_ context.Context, req *pb.GetRunRequest) (*pb.GetRunResponse, error) {
	return &pb.GetRunResponse{Run: &pb.RunInfo{Id: req.GetRunId(), State: pb.RunState_RUN_STATE_RUNNING}}, nil
}

func (f *failingSidecar) Heartbeat(context.Context, *pb.HeartbeatRequest) (*pb.HeartbeatResponse, error) {
	return &pb.HeartbeatResponse{State: pb.RunState_RUN_STATE_RUNNING}, nil
}

func (f *failingSidecar) Finish(_ context.Context, req *pb.FinishRequest) (*pb.FinishResponse, error) {
	return &pb.FinishResponse{Run: &pb.RunInfo{Id: req.GetRunId(), State: pb.RunState_RUN_STATE_FINISHED}}, nil
}

func (f *failingSidecar) LogStream(stream pb.RunService_LogStreamServer) error {
	f.streams.Add(1)
	_, _ = stream.Recv()
	return status.Errorf(f.code, "the fake sidecar fails every stream with %s", f.code)
}

func startFailingSidecar(t *testing.T, code codes.Code) (*failingSidecar, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "rcfake-")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "f.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	fake := &failingSidecar{code: code}
	srv := grpc.NewServer()
	pb.RegisterRunServiceServer(srv, fake)
	hs := health.NewServer()
	hs.SetServingStatus("runcore.v1.RunService", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop()
		_ = os.RemoveAll(dir)
	})
	return fake, "unix://" + sock
}

func TestInternalIsRetriedAFewTimesNotForever(t *testing.T) {
	t.Parallel()
	fake, addr := startFailingSidecar(t, codes.Internal)
	ctx := testCtx(t)
	run, err := runcore.Init(ctx, runcore.Options{Address: addr, ID: "internal"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := run.Log(map[string]any{"x": 1.0}); err != nil {
		t.Fatal(err)
	}
	err = run.Flush(ctx)
	wantStatus(t, err, "Log", codes.Internal, "~the log stream failed 3 times in a row")
	if n := fake.streams.Load(); n != runcore.RetryLimitedAttempts {
		t.Errorf("%d streams, want %d attempts", n, runcore.RetryLimitedAttempts)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("gave up after %s: INTERNAL must not be waited out for the reconnect timeout", d)
	}
	if _, err := run.Finish(ctx, 0); runcore.Code(err) != codes.Internal {
		t.Errorf("Finish: %v", err)
	}
}

func TestUnauthenticatedStopsTheSenderAtOnce(t *testing.T) {
	t.Parallel()
	fake, addr := startFailingSidecar(t, codes.Unauthenticated)
	ctx := testCtx(t)
	run, err := runcore.Init(ctx, runcore.Options{Address: addr, ID: "unauth"})
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Log(map[string]any{"x": 1.0}); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, run.Flush(ctx), "Log", codes.Unauthenticated, "~fails every stream")
	wantStatus(t, run.Log(map[string]any{"x": 2.0}), "Log", codes.Unauthenticated, "~fails every stream")
	if n := fake.streams.Load(); n != 1 {
		t.Errorf("%d streams: an UNAUTHENTICATED stream is not retried", n)
	}
	_, _ = run.Finish(ctx, 0)
}
