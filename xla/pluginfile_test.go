package xla

import (
	"bytes"
	"debug/elf"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCheckPluginFile: an ELF shared library cut short anywhere — in its headers, its segments or its section
// table — is refused with an error that names the file and how to reinstall it (loading it would kill the
// process with SIGBUS); the whole file, and a file that is not ELF, pass.
func TestCheckPluginFile(t *testing.T) {
	exe, err := os.Executable() // the test binary: an ELF executable on Linux
	require.NoError(t, err)
	whole, err := os.ReadFile(exe)
	require.NoError(t, err)
	if !bytes.HasPrefix(whole, []byte(elf.ELFMAG)) {
		t.Skip("the test binary is not ELF on this system")
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, data, 0o644))
		return p
	}
	require.NoError(t, checkPluginFile(write("pjrt_c_api_cpu_plugin.so", whole)))
	require.NoError(t, checkPluginFile(write("not-elf.so", []byte("#!/bin/sh\n"))), "left to the loader")
	for _, cut := range []int{40, 100_000, len(whole) / 2, len(whole) - 1} {
		p := write("pjrt_c_api_cuda_plugin.so", whole[:cut])
		err := checkPluginFile(p)
		require.Error(t, err, "cut at %d of %d bytes", cut, len(whole))
		require.ErrorContains(t, err, p)
		require.ErrorContains(t, err, "nowt setup -plugin cuda -force")
	}
	// nowt setup's check of an installed plugin refuses it too (it crashed there), so that setup replaces it.
	cut := write("pjrt_c_api_cpu_plugin.so", whole[:100_000])
	require.False(t, keepInstalled(cut, "CPU", false, io.Discard))
}
