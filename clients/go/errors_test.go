package runcore_test

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	runcore "github.com/runcore/runcore/clients/go"
)

// Errors carry the sidecar's status through the caller's own wrapping.
func TestErrorsCarryTheStatus(t *testing.T) {
	t.Parallel()
	run := newRun(t, runcore.Options{})
	_, err := run.Alert(testCtx(t), "", "")
	wrapped := fmt.Errorf("training step 7: %w", err)

	var rerr *runcore.Error
	if !errors.As(wrapped, &rerr) || rerr.Op != "Alert" || rerr.RunID != run.ID() || rerr.Code() != codes.InvalidArgument {
		t.Fatalf("errors.As: %#v", rerr)
	}
	st, ok := runcore.Status(wrapped)
	if !ok || st.Code() != codes.InvalidArgument || st.Message() != "alert title must be 1..64 characters, got 0" {
		t.Errorf("runcore.Status = %v, %v", st, ok)
	}
	if runcore.Code(wrapped) != codes.InvalidArgument || status.Code(wrapped) != codes.InvalidArgument {
		t.Errorf("codes %s %s", runcore.Code(wrapped), status.Code(wrapped))
	}
	if direct, ok := status.FromError(err); !ok || direct.Message() != st.Message() {
		t.Errorf("status.FromError on the error itself = %v", direct)
	}
	want := "runcore: Alert (run " + run.ID() + "): InvalidArgument: alert title must be 1..64 characters, got 0"
	if err.Error() != want {
		t.Errorf("Error() = %q\nwant %q", err.Error(), want)
	}
	if runcore.Code(nil) != codes.OK || runcore.Code(errors.New("plain")) != codes.Unknown {
		t.Error("Code of nil / a plain error")
	}
}
