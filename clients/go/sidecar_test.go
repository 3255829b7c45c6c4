package runcore_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	runcore "github.com/runcore/runcore/clients/go"
)

func TestNoSidecar(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	_, err := runcore.Init(ctx, runcore.Options{Address: "unix://" + filepath.Join(t.TempDir(), "none.sock"), InitTimeout: 300 * time.Millisecond})
	if !errors.Is(err, runcore.ErrNoSidecar) || !strings.Contains(err.Error(), "did not answer its health check") {
		t.Errorf("Init on a dead address: %v", err)
	}
	_, err = runcore.Init(ctx, runcore.Options{Address: "", Binary: "/nonexistent/runcore"})
	if err != nil && !strings.Contains(err.Error(), "Options.Binary=/nonexistent/runcore is not an executable file") {
		t.Errorf("Init with a missing binary: %v", err)
	}
	if err == nil {
		t.Log("RUNCORE_ADDRESS is set: the missing binary was not needed")
	} else if !errors.Is(err, runcore.ErrNoSidecar) {
		t.Errorf("error %v does not wrap ErrNoSidecar", err)
	}
}

// A binary that exits at once (not a sidecar): the error says so and shows its log.
func TestSpawnFailureIsReported(t *testing.T) {
	t.Setenv(runcore.EnvAddress, "")
	_, err := runcore.Init(testCtx(t), runcore.Options{Binary: "/bin/false", DataDir: t.TempDir()})
	if !errors.Is(err, runcore.ErrNoSidecar) || !strings.Contains(err.Error(), "exited with exit status 1 before it was listening") {
		t.Errorf("Init with /bin/false: %v", err)
	}
}

func TestATokenProtectedSidecarNeedsAuthToken(t *testing.T) {
	const token = "go-test-token-0123456789abcdef"
	sc := startSidecar(t, "--auth-token", token)
	ctx := testCtx(t)
	_, err := runcore.Init(ctx, runcore.Options{Address: sc.addr, Project: "go-tests"})
	wantStatus(t, err, "Init", codes.Unauthenticated, "~missing authorization metadata")
	run, err := runcore.Init(ctx, runcore.Options{Address: sc.addr, Project: "go-tests", AuthToken: token})
	if err != nil {
		t.Fatalf("Init with the token: %v", err)
	}
	if err := run.Log(map[string]any{"x": 1.0}); err != nil {
		t.Fatal(err)
	}
	res, err := run.Finish(ctx, 0)
	if err != nil {
		t.Fatalf("Finish: %v", err)
	}
	if res.Summary["x"] != 1.0 {
		t.Errorf("summary x = %v, want 1", res.Summary["x"])
	}
}

// An Init refused for a missing token does not poison the next one: with
// RUNCORE_AUTH_TOKEN set, the next Init in the process connects afresh.
func TestAFailedInitDoesNotPoisonTheNext(t *testing.T) {
	const token = "go-test-token-abcdef0123456789"
	sc := startSidecar(t, "--auth-token", token)
	ctx := testCtx(t)
	t.Setenv(runcore.EnvAuthToken, "")
	_, err := runcore.Init(ctx, runcore.Options{Address: sc.addr, Project: "go-tests"})
	wantStatus(t, err, "Init", codes.Unauthenticated, "~missing authorization metadata")
	t.Setenv(runcore.EnvAuthToken, token)
	run, err := runcore.Init(ctx, runcore.Options{Address: sc.addr, Project: "go-tests"})
	if err != nil {
		t.Fatalf("Init after RUNCORE_AUTH_TOKEN was set: %v", err)
	}
	if err := run.Log(map[string]any{"x": 1.0}); err != nil {
		t.Fatal(err)
	}
	if res, err := run.Finish(ctx, 0); err != nil || res.Summary["x"] != 1.0 {
		t.Fatalf("Finish = %+v, %v", res, err)
	}
}
