package runcore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	runcore "github.com/runcore/runcore/clients/go"
	pb "github.com/runcore/runcore/clients/go/gen/runcorev1"
)

// StopRun (what `runcore runs stop` sends) reaches the client through its heartbeat.
func TestHeartbeatShouldStop(t *testing.T) {
	t.Parallel()
	run := newRun(t, runcore.Options{HeartbeatInterval: 50 * time.Millisecond})
	if run.ShouldStop() {
		t.Fatal("ShouldStop before anyone asked")
	}
	if _, err := shared.client.StopRun(testCtx(t), &pb.StopRunRequest{RunId: run.ID()}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-run.StopRequested():
	case <-time.After(10 * time.Second):
		t.Fatal("StopRequested not closed within 10 s of StopRun")
	}
	if !run.ShouldStop() || run.State() != runcore.StateRunning {
		t.Errorf("ShouldStop %v State %q", run.ShouldStop(), run.State())
	}
	// Like W&B, the training loop is interrupted: the run's context is cancelled,
	// and its cause says why.
	select {
	case <-run.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the run's Context is not cancelled")
	}
	cause := context.Cause(run.Context())
	if !errors.Is(cause, runcore.ErrStopRequested) || !strings.Contains(cause.Error(), "runcore runs stop "+run.ID()) {
		t.Errorf("context cause %v", cause)
	}
	// The run still works: the program finishes it cleanly.
	if err := run.Log(map[string]any{"x": 1.0}); err != nil {
		t.Fatal(err)
	}
	if res, err := run.Finish(testCtx(t), 0); err != nil || res.Run.State != runcore.StateFinished {
		t.Fatalf("Finish = %+v, %v", res, err)
	}
}

// The background heartbeat is the run's sign of life: with a client timeout of 1 s
// and nothing logged, the run stays running for several timeouts; the same run
// with a heartbeat slower than its timeout is crashed.
func TestHeartbeatKeepsQuietRunAlive(t *testing.T) {
	t.Parallel()
	alive := newRun(t, runcore.Options{ClientTimeout: time.Second})
	quiet := newRun(t, runcore.Options{ClientTimeout: time.Second, HeartbeatInterval: time.Hour})
	if alive.Info().ClientTimeout != time.Second {
		t.Fatalf("client timeout %s", alive.Info().ClientTimeout)
	}
	eventually(t, 10*time.Second, "the quiet run is crashed", func() bool {
		return getRun(t, shared.client, quiet.ID()).GetRun().GetState() == pb.RunState_RUN_STATE_CRASHED
	})
	// The quiet run took at least one client timeout to crash; the live one has
	// been quiet as long and keeps running for two timeouts more.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if st := getRun(t, shared.client, alive.ID()).GetRun().GetState(); st != pb.RunState_RUN_STATE_RUNNING {
			t.Fatalf("run with heartbeats is %s", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := alive.Log(map[string]any{"x": 1.0}); err != nil {
		t.Fatal(err)
	}
	if err := alive.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	// The sidecar ended the crashed run: its rows are refused, and from then on
	// Log fails at once.
	if err := quiet.Log(map[string]any{"x": 1.0}); err != nil {
		t.Fatal(err)
	}
	err := quiet.Flush(testCtx(t))
	msg := `run "` + quiet.ID() + `" has ended (crashed); Init it with resume="allow" to log to it again`
	wantStatus(t, err, "Log", codes.FailedPrecondition, msg)
	wantStatus(t, quiet.Log(map[string]any{"x": 2.0}), "Log", codes.FailedPrecondition, msg)
}
