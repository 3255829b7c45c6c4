package runcore

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrNoSidecar is wrapped by Init's error when there is no sidecar to log to: none
// at the given address, and none could be spawned.
var ErrNoSidecar = errors.New("runcore: no sidecar")

// ErrRunEnded matches (errors.Is) the error of a call about a run the sidecar ended
// without this client finishing it: crashed (no sign of life from the client within
// its client timeout), killed (the sidecar shut down with the run open), preempted,
// or finished by another client. Error.State says which. The client never resumes
// such a run by itself; Init with the same ID and ResumeAllow continues it.
var ErrRunEnded = errors.New("runcore: the sidecar ended the run")

// ErrStopRequested is wrapped by context.Cause(run.Context()) when an operator asked
// the run to stop (`runcore runs stop ID`, or a StopRun call).
var ErrStopRequested = errors.New("runcore: the run was asked to stop")

// Error is the error of a call that the sidecar refused or could not answer. It
// carries the gRPC status: Code(err), Status(err), status.Code(err) and
// status.FromError(err) all see it through any wrapping. Errors the client finds itself
// (a reserved key, a value of an unsupported type, Log after Finish) are Errors too,
// with the status the sidecar would have given (INVALID_ARGUMENT,
// FAILED_PRECONDITION).
type Error struct {
	// Op is the Run method (or RPC) that failed: "Init", "Log", "Finish", ...
	Op string
	// RunID is the run the call was for, when it has one.
	RunID string
	// Lost counts the rows that were not logged because of this error: set for
	// the asynchronous errors of Log (a batch the sidecar refused, or could not be
	// sent), which the next Log, Flush or Finish returns.
	Lost int
	// Err is the gRPC status error.
	Err error
	// State is how the sidecar ended the run, when this error says it did (the
	// status is then FAILED_PRECONDITION, and errors.Is(err, ErrRunEnded) holds).
	State State
}

func (e *Error) Error() string {
	where := "runcore: " + e.Op
	if e.RunID != "" {
		where += " (run " + e.RunID + ")"
	}
	switch {
	case e.Lost == 1:
		where += ": lost 1 logged row"
	case e.Lost > 1:
		where += fmt.Sprintf(": lost %d logged rows", e.Lost)
	}
	st := e.GRPCStatus()
	return fmt.Sprintf("%s: %s: %s", where, st.Code(), st.Message())
}

// Unwrap returns the gRPC status error.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether the error is ErrRunEnded (the sidecar ended the run).
func (e *Error) Is(target error) bool { return target == ErrRunEnded && e.State != StateUnknown }

// GRPCStatus is the call's status, so that status.FromError and status.Code see it.
func (e *Error) GRPCStatus() *status.Status {
	if st, ok := status.FromError(e.Err); ok {
		return st
	}
	return status.New(codes.Unknown, e.Err.Error())
}

// Code is the gRPC code of the call's status.
func (e *Error) Code() codes.Code { return e.GRPCStatus().Code() }

// Status returns the gRPC status that err carries, and whether it carries one; a
// nil err gives an OK status. Through any wrapping, the status of the first *Error
// in err comes back as the sidecar sent it, message included (status.FromError
// gives the same code, but replaces the message of a wrapped status with the whole
// error text).
func Status(err error) (*status.Status, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.GRPCStatus(), true
	}
	return status.FromError(err)
}

// Code is the gRPC code err carries: codes.OK for nil, codes.Unknown for an error
// that carries none.
func Code(err error) codes.Code {
	return status.Code(err)
}

// newError wraps an RPC error (or a status error made here); an *Error (a run the
// sidecar ended) is relabelled with op rather than wrapped again.
func newError(op, runID string, err error) error {
	if err == nil {
		return nil
	}
	if e, ok := err.(*Error); ok {
		c := *e
		c.Op = op
		if c.RunID == "" {
			c.RunID = runID
		}
		return &c
	}
	return &Error{Op: op, RunID: runID, Err: err}
}

// invalid is an INVALID_ARGUMENT the client finds itself.
func invalid(op, runID, format string, args ...any) error {
	return newError(op, runID, status.Errorf(codes.InvalidArgument, format, args...))
}
