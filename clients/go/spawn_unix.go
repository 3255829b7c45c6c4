//go:build unix

package runcore

import "syscall"

// detached puts a spawned sidecar in its own process group, so that a Ctrl-C meant
// for the training program does not stop the sidecar before the run is finished.
// The sidecar still exits with this process (--parent-pid).
func detached() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
