// Package runcore is the Go client of the runcore sidecar: a thin, W&B-like Run API
// over the gRPC contract in proto/runcore/v1/runcore.proto.
//
//	run, err := runcore.Init(ctx, runcore.Options{Project: "demo", Config: map[string]any{"lr": 0.01}})
//	if err != nil { ... }
//	for step := 0; step < 100; step++ {
//		if err := run.Log(map[string]any{"loss": loss}); err != nil { ... }
//	}
//	res, err := run.Finish(ctx, 0)
//
// Finding the sidecar: Options.Address, else $RUNCORE_ADDRESS, else the client
// spawns `runcore serve` (Options.Binary, else $RUNCORE_BIN, else runcore on PATH) on
// a unix socket in a private temp dir, with --port-file and --parent-pid, waits for
// its health check to say SERVING, and reuses it for every later run of the process.
// Close stops it.
//
// Errors of calls carry the gRPC status: status.Code(err), or Code(err) and
// Status(err) here, see it through any wrapping; errors.As(err, &*Error) gives the
// method and run. A failed call is handled as the client contract in
// proto/runcore/v1/runcore.proto says; a run the sidecar ended (crashed, killed) is
// never resumed by the client: its calls fail with ErrRunEnded. An operator's stop
// request (runcore runs stop) cancels Run.Context, with ErrStopRequested as cause.
//
// Layout:
//
//	run.go      Init, the Run's identity and state, Finish
//	log.go      Log and its options, the step state machine, Flush
//	calls.go    a call under the client contract: reconnect, re-attach, retry; heartbeats
//	requests.go DefineMetric, Alert, Save, config and summary changes, MarkPreempting
//	artifacts.go LogArtifact, UseArtifact, Download (files sent in chunks or by path)
//	api.go      Connect and the Client: reading, editing and deleting runs (W&B's public API)
//	contract.go what a failed call means (retry, re-Init, run ended, ...): classify
//	sender.go   Log's bounded queue, batching over LogStream, acks, resends
//	sidecar.go  finding, spawning and connecting to the sidecar; Close
//	values.go   Go values <-> runcore.v1.Value; Histogram, Media
//	options.go  Options and their defaults
//	info.go     RunInfo, State and the results of calls
//	errors.go   Error, Code, Status
//	gen/runcorev1  generated stubs (scripts/gen.sh; do not edit)
package runcore
