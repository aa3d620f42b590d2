package fileowner

import (
	"io/fs"
	"os"
	"os/user"
	"runtime"
	"strconv"
)

// Exposure says who besides this process may read or change a file that
// holds a secret (a token file, a storage key file, a password file), and the
// command that stops it.
type Exposure struct {
	// Who is "other users", or "group NAME" for a group that is not this
	// process's.
	Who string
	// Fix is chmod 600 for a file this user owns; for another's (a
	// secret an orchestrator mounts root-owned and read-only), what to
	// give it instead: this process's group and a mode without other
	// users' bits.
	Fix string
}

// SecretExposure returns who besides this process's user and group may
// read or change the secret file at path, whose info is fi, or nil if no
// one. A group-readable (not writable) file is this process's own when its group is this
// process's effective group: a Kubernetes or Docker secret reaches a
// service that runs as its own user that way, root-owned, mode 0440, in
// the service's group (fsGroup), and chmod 600 would lock it out (a
// container trial); --config files follow the same rule. Nil on Windows,
// where modes say nothing of other users.
func SecretExposure(path string, fi fs.FileInfo) *Exposure {
	if runtime.GOOS == "windows" {
		return nil
	}
	mode := fi.Mode().Perm()
	gid, hasGID := GID(fi)
	var who string
	switch {
	case mode&0o007 != 0:
		who = "other users"
	case mode&0o020 != 0 || mode&0o070 != 0 && (!hasGID || gid != os.Getegid()):
		who = "group " + GroupName(gid) // write: whoever may change it may hand the secret out
	default:
		return nil
	}
	fix := "chmod 600 " + path
	if uid, ok := UID(fi); ok && uid != os.Geteuid() {
		fix = "give it this process's group and no access for others (chgrp " + GroupName(os.Getegid()) + " " + path + " && chmod 440 " + path +
			"; a Kubernetes secret: defaultMode 0440 and the pod's fsGroup)"
	}
	return &Exposure{Who: who, Fix: fix}
}

// GroupName is the name of group gid, or its number if it has none.
func GroupName(gid int) string {
	if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
		return g.Name
	}
	return strconv.Itoa(gid)
}
