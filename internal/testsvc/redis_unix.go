//go:build unix

package testsvc

import "syscall"

// Freeze stops the server (SIGSTOP) without closing its port: connections
// are accepted by the kernel and never answered, as with a Redis that
// hangs (swapping, a long BGSAVE on a small host, a network that drops
// packets). Thaw resumes it.
func (r *RedisServer) Freeze() error { return r.signal(syscall.SIGSTOP) }

// Thaw resumes a server Freeze stopped.
func (r *RedisServer) Thaw() error { return r.signal(syscall.SIGCONT) }

func (r *RedisServer) signal(sig syscall.Signal) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return syscall.Kill(r.proc.Pid(), sig)
}
