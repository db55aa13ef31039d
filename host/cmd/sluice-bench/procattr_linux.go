package main

import "syscall"

// childAttr puts a server in its own process group, so that Ctrl-C reaches
// only the benchmark, which then stops the servers in order; and has the
// kernel stop the server if the benchmark dies without cleaning up.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
