package runcore_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	runcore "github.com/runcore/runcore/clients/go"
)

func TestAlert(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	run := newRun(t, runcore.Options{})
	res, err := run.Alert(ctx, "diverging", "loss is NaN", runcore.WithLevel(runcore.AlertError))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Sent || res.Throttled {
		t.Errorf("first alert = %+v, want sent", res)
	}
	// The same title inside the wait duration is throttled, and the reply says until when.
	res, err = run.Alert(ctx, "diverging", "again", runcore.WithWaitDuration(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent || !res.Throttled || !res.ThrottledUntil.After(time.Now().Add(30*time.Second)) {
		t.Errorf("second alert = %+v, want throttled for about a minute", res)
	}
	// Another title is not.
	if res, err = run.Alert(ctx, "other", "", runcore.WithWaitDuration(0)); err != nil || !res.Sent {
		t.Errorf("other alert = %+v %v", res, err)
	}

	_, err = run.Alert(ctx, "", "no title")
	wantStatus(t, err, "Alert", codes.InvalidArgument, "alert title must be 1..64 characters, got 0")
	_, err = run.Alert(ctx, strings.Repeat("t", 65), "")
	wantStatus(t, err, "Alert", codes.InvalidArgument, "alert title must be 1..64 characters, got 65")
	_, err = run.Alert(ctx, "loud", "", runcore.WithLevel("LOUD"))
	wantStatus(t, err, "Alert", codes.InvalidArgument, `unknown alert level "LOUD"; use INFO, WARN or ERROR`)
}
