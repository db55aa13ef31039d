//go:build !linux

package main

import "syscall"

// childAttr leaves the platform's defaults: only Linux can tie a child's
// life to its parent's.
func childAttr() *syscall.SysProcAttr { return nil }
