package runcore

// The client contract: what the client does when a call to the sidecar ends with a
// gRPC status. The table is the one in proto/runcore/v1/runcore.proto (above
// `service RunService`) and in tests/vectors/status_contract.json, which
// vectors_test.go checks classify against. Every place in the client that handles a
// failed call asks classify.

import "google.golang.org/grpc/codes"

// action is what the client does about a failed call (the contract's words).
type action string

const (
	actNone action = "none"
	// actRetry: reconnect, make sure the run is open, call again or resend; back off;
	// give up after Options.ReconnectTimeout without progress.
	actRetry action = "retry"
	// actRetryLimited: as actRetry, but stop after retryLimitedAttempts failed
	// attempts in a row.
	actRetryLimited action = "retry_limited"
	// actReinit: the sidecar does not know the run: Init it again (resume "allow").
	actReinit action = "reinit"
	// actEnded: the run may have ended on the sidecar: read its state; if it ended,
	// report it (ErrRunEnded) and stop sending; never resume it automatically.
	actEnded action = "ended"
	// actDropBatch: LogStream only: the oldest unacknowledged batch was refused;
	// report its rows lost and resend the rest.
	actDropBatch action = "drop_batch"
	// actFail: return the error; the run stays usable.
	actFail action = "fail"
	// actStop: return the error; on a stream, the sender gives up for good.
	actStop action = "stop"
)

// callKind is which kind of call failed.
type callKind int

const (
	// kindInit is the Init that starts or resumes a run.
	kindInit callKind = iota
	// kindUnary is any other unary call about an open run.
	kindUnary
	// kindStream is the end of a LogStream call.
	kindStream
	// kindAPI is a call of the read API (Client): about any run, open or ended,
	// that this client does not log to.
	kindAPI
)

// retryLimitedAttempts is how many failed attempts in a row (the first included,
// no acknowledgement between them) actRetryLimited allows before it stops.
const retryLimitedAttempts = 3

// contract is the table: per code, the action for Init, unary calls, LogStream
// and read API calls.
var contract = map[codes.Code][4]action{
	codes.OK:                 {actNone, actNone, actNone, actNone},
	codes.Canceled:           {actRetry, actRetry, actRetry, actRetry},
	codes.Unknown:            {actFail, actFail, actRetryLimited, actFail},
	codes.InvalidArgument:    {actFail, actFail, actDropBatch, actFail},
	codes.DeadlineExceeded:   {actFail, actFail, actRetry, actFail},
	codes.NotFound:           {actFail, actReinit, actReinit, actFail},
	codes.AlreadyExists:      {actFail, actFail, actStop, actFail},
	codes.PermissionDenied:   {actFail, actStop, actStop, actStop},
	codes.ResourceExhausted:  {actFail, actFail, actDropBatch, actFail},
	codes.FailedPrecondition: {actFail, actEnded, actEnded, actFail},
	codes.Aborted:            {actFail, actFail, actRetry, actFail},
	codes.OutOfRange:         {actFail, actFail, actDropBatch, actFail},
	codes.Unimplemented:      {actFail, actStop, actStop, actStop},
	codes.Internal:           {actFail, actFail, actRetryLimited, actFail},
	codes.Unavailable:        {actRetry, actRetry, actRetry, actRetry},
	codes.DataLoss:           {actFail, actStop, actStop, actStop},
	codes.Unauthenticated:    {actFail, actStop, actStop, actStop},
}

// classify is the action for a call of kind k that ended with code (stop, or fail
// for Init, for a code the table does not know).
func classify(code codes.Code, k callKind) action {
	row, ok := contract[code]
	if !ok {
		if k == kindInit {
			return actFail
		}
		return actStop
	}
	return row[k]
}
