//go:build linux || darwin || freebsd

package trainer

import "syscall"

// freeBytes returns the bytes free to an unprivileged user on the file system holding dir (0: unknown).
func freeBytes(dir string) uint64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0
	}
	return uint64(st.Bavail) * uint64(st.Bsize)
}
