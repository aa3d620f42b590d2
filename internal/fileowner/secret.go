package fileowner

import (
	"io/fs"
	"os"
	"os/user"
	"runtime"
	"slices"
	"strconv"
)

// Exposure says who besides this process may read or change a file that
// holds a secret (a token file, a storage key file, a password file), and
// the command that stops it.
type Exposure struct {
	// Who is "other users", or "group NAME" for a group this process is
	// not in (or any group, for a group write).
	Who string
	// Access is what Who may do: "read", "change" or "read and change".
	Access string
	// Fix is chmod 600 for a file this user owns; for another's (a
	// secret an orchestrator mounts root-owned and read-only), what to
	// give it instead: one of this process's groups and a mode without
	// other users' bits.
	Fix string
}

// SecretExposure returns who besides this process's user and groups may
// read or change the secret file at path, whose info is fi, or nil if no
// one. A group-readable (not writable) file is this process's own when
// its group is one of this process's groups, effective or supplementary:
// a Kubernetes or Docker secret reaches a service that runs as its own
// user that way, root-owned, mode 0440, in the pod's fsGroup (a
// supplementary group), and chmod 600 would lock it out (container
// trials); --config files follow the same rule. Nil on Windows, where
// modes say nothing of other users.
func SecretExposure(path string, fi fs.FileInfo) *Exposure {
	if runtime.GOOS == "windows" {
		return nil
	}
	mode := fi.Mode().Perm()
	gid, hasGID := GID(fi)
	mine := hasGID && InGroup(gid)
	var e Exposure
	switch {
	case mode&0o007 != 0:
		e.Who, e.Access = "other users", access(mode&0o004 != 0, mode&0o002 != 0)
	case mode&0o020 != 0 || mode&0o040 != 0 && !mine:
		// A group write: whoever may change it may hand the secret out.
		e.Who, e.Access = "group "+GroupName(gid), access(mode&0o040 != 0 && !mine, mode&0o020 != 0)
	default:
		return nil
	}
	e.Fix = "chmod 600 " + path
	if uid, ok := UID(fi); ok && uid != os.Geteuid() {
		e.Fix = "give it no access for others, read for one of this process's groups (chmod 440 " + path
		if !mine {
			e.Fix = "give it no access for others, read for one of this process's groups (chgrp " + GroupName(os.Getegid()) + " " + path + " && chmod 440 " + path
		}
		e.Fix += "; a Kubernetes secret: defaultMode 0440 and the pod's fsGroup)"
	}
	return &e
}

// access names read and write access.
func access(read, write bool) string {
	switch {
	case read && write:
		return "read and change"
	case write:
		return "change"
	}
	return "read"
}

// InGroup reports whether gid is this process's effective group or one of
// its supplementary groups.
func InGroup(gid int) bool {
	if gid == os.Getegid() {
		return true
	}
	groups, err := os.Getgroups()
	return err == nil && slices.Contains(groups, gid)
}

// GroupName is the name of group gid, or its number if it has none.
func GroupName(gid int) string {
	if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
		return g.Name
	}
	return strconv.Itoa(gid)
}
