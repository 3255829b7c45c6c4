//go:build !unix

package runcore

import "syscall"

func detached() *syscall.SysProcAttr { return nil }
