package filestore

// A lease outlives a holder that crashed by up to a lease (30 s by
// default): a proxy restarted at once after a SIGKILL would fail the
// handshakes of the names its predecessor was issuing until then. A lease
// therefore records who holds it, and a contender that can tell for sure
// that the holder is gone takes the lock over at once.
//
// "For sure" means: the holder ran on this boot of this host (the boot ID),
// in this PID namespace (so its PID means the same process here) and this
// time namespace (so its start time reads the same here), and its PID now
// names no process, a zombie (exited, not yet reaped), or a process that
// started at another time (the PID was reused). Processes in containers
// with their own PID namespaces sharing a volume, processes on other hosts
// sharing a network file system, and systems where this cannot be read
// (every one but Linux) all leave the identity incomplete or different, and
// the lease applies as before.
//
// A holder that is stopped (SIGSTOP, a debugger) is still there: its lease
// applies.

// process identifies the process that holds a lease. The zero values of
// the fields other than PID mean unknown.
type process struct {
	// PID is also for operators wondering who holds a lock.
	PID int `json:"pid"`
	// Start is when the process started, in clock ticks after boot as
	// /proc/PID/stat gives it (field 22).
	Start uint64 `json:"start,omitempty"`
	// Boot is the boot ID (/proc/sys/kernel/random/boot_id): it differs
	// between hosts and between boots of one host.
	Boot string `json:"boot,omitempty"`
	// PIDNS and TimeNS are the PID and time namespaces of the process
	// (readlink /proc/self/ns/pid and .../time; TimeNS is empty on kernels
	// without time namespaces, before 5.6).
	PIDNS  string `json:"pidns,omitempty"`
	TimeNS string `json:"timens,omitempty"`
}

// known reports whether p has all that a successor needs to tell it is
// gone.
func (p process) known() bool {
	return p.PID > 0 && p.Start != 0 && p.Boot != "" && p.PIDNS != ""
}

// outlived reports whether holder, the process recorded in a lease, is
// known to be gone, as seen from p, the current process: both must be
// fully identified, on the same boot and in the same namespaces, and
// holder's PID must no longer name the process that started at
// holder.Start. Any doubt reports false, and the lease applies.
func (p process) outlived(holder process) bool {
	if !p.known() || !holder.known() || p.Boot != holder.Boot || p.PIDNS != holder.PIDNS || p.TimeNS != holder.TimeNS {
		return false
	}
	return pidGone(holder.PID, holder.Start)
}
