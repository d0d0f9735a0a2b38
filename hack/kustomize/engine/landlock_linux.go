//go:build linux

// The native build of the engine confines itself with Landlock before main runs, so that it reads
// nothing but the materialised verified tree even if Signet's pre-build policy check has a gap.
// The WebAssembly build (GOOS=wasip1) does not include this file: WASI is its sandbox.
//
// Confinement, in init (package main's init runs after every imported package's init and before
// main, so before any kustomization byte is read):
//   - the tree (the directory of the SIGNET_ENGINE_ROOT variable) is readable: files and
//     directories, no execute; nothing else is readable, nothing anywhere is writable or executable;
//   - TCP bind and connect are denied (Landlock ABI 4); Go's DNS resolver is pointed at a dialer
//     that always fails, so a host name is never looked up over UDP (which Landlock does not cover);
//   - signals to and abstract Unix sockets of processes outside the sandbox are denied where the
//     kernel has Landlock ABI 6 or later;
//   - the address space is limited (RLIMIT_AS) to SIGNET_ENGINE_MAX_ADDRESS_SPACE bytes, if set.
//
// Fail closed: if the kernel has no Landlock, or a Landlock older than ABI 4 (which could not deny
// TCP), or the ruleset cannot be enforced in full, the engine exits with status 3 and says why,
// before reading anything. Signet then uses the WebAssembly engine.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/landlock-lsm/go-landlock/landlock"
	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"
)

// exitUnconfined is the status of a run that refused to start because it could not be confined.
const exitUnconfined = 3

// minimumABI is the oldest Landlock ABI that restricts TCP connect and bind.
const minimumABI = 4

func init() {
	if err := confine(); err != nil {
		fmt.Fprintf(os.Stderr, "kustomize-engine: refusing to run unconfined: %v\n", err)
		os.Exit(exitUnconfined)
	}
}

func confine() error {
	root := os.Getenv("SIGNET_ENGINE_ROOT")
	if root == "" || !filepath.IsAbs(root) {
		return errors.New("SIGNET_ENGINE_ROOT must name the tree's directory by an absolute path")
	}
	if err := limitAddressSpace(os.Getenv("SIGNET_ENGINE_MAX_ADDRESS_SPACE")); err != nil {
		return err
	}
	net.DefaultResolver = &net.Resolver{PreferGo: true, Dial: refuseDial}
	config, err := strictConfig()
	if err != nil {
		return err
	}
	readTree := landlock.PathAccess(llsys.AccessFSReadFile|llsys.AccessFSReadDir, root)
	// No rule for the network: every TCP bind and connect is denied. Not best-effort: a rule the
	// kernel cannot enforce is an error.
	if err := config.Restrict(readTree); err != nil {
		return fmt.Errorf("landlock: %w", err)
	}
	return nil
}

// strictConfig is every restriction the kernel's Landlock ABI has (up to ABI 7), at least ABI 4.
func strictConfig() (landlock.Config, error) {
	abi, err := llsys.LandlockGetABIVersion()
	if err != nil {
		return landlock.Config{}, fmt.Errorf("landlock is not available in this kernel: %w", err)
	}
	if abi < minimumABI {
		return landlock.Config{}, fmt.Errorf("landlock ABI %d cannot deny TCP connect (ABI %d needed)", abi, minimumABI)
	}
	configs := map[int]landlock.Config{4: landlock.V4, 5: landlock.V5, 6: landlock.V6}
	if config, ok := configs[abi]; ok {
		return config, nil
	}
	return landlock.V7, nil
}

func limitAddressSpace(value string) error {
	if value == "" {
		return nil
	}
	bytes, err := strconv.ParseUint(value, 10, 64)
	if err != nil || bytes == 0 {
		return fmt.Errorf("SIGNET_ENGINE_MAX_ADDRESS_SPACE %q is not a positive number of bytes", value)
	}
	limit := syscall.Rlimit{Cur: bytes, Max: bytes}
	if err := syscall.Setrlimit(syscall.RLIMIT_AS, &limit); err != nil {
		return fmt.Errorf("RLIMIT_AS: %w", err)
	}
	return nil
}

func refuseDial(context.Context, string, string) (net.Conn, error) {
	return nil, errors.New("the Kustomize engine has no network")
}
