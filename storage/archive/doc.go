// Package archive moves certkeeper's whole state between storages: Export
// writes every key of a storage.Storage to one portable archive (a
// gzip-compressed tar), Import reads such an archive into a Storage, and
// Copy does both at once, from one Storage to another, and verifies the
// copy.
//
// It exists so that moving certkeeper to a new server, backing it up, or
// growing a single node into a cluster (files to Redis or PostgreSQL) is
// one call a Go program can make, not only a command ("certkeeper storage
// export", "storage import", "storage migrate" are thin wrappers around
// it). The package never touches a Manager: it works on keys and values,
// and checks each value as certkeeper would read it (certificate records,
// account keys, JSON documents), so that an archive it writes is one it
// would read back, and a damaged or hostile archive stores nothing.
//
// It does not convert other tools' state (package migrate reads certbot's,
// lego's, acme.sh's, dehydrated's and Caddy's), nor does it lock the storages it
// reads and writes: stop the processes that write to them for an exact
// copy.
package archive
