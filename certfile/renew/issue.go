package renew

import (
	"context"
	"errors"
	"fmt"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/certfile"
	"github.com/certkeeper/certkeeper/storage"
)

// WriteError is a certificate not written as files: obtained and in
// storage all the same (but for a CSR's), or, with BeforeOrder, not
// ordered at all because the files could not have been written.
type WriteError struct {
	Err         error
	BeforeOrder bool
}

func (e *WriteError) Error() string { return "writing the certificate files: " + e.Err.Error() }

func (e *WriteError) Unwrap() error { return e.Err }

// IssueFiles obtains a certificate (certkeeper.Issue with st and req) and
// writes it into dir, named for req.Names[0]: its key and chain
// (Dir.Write), or for a req.CSR the chain alone (Dir.WriteCert), as the
// key is the caller's and nothing is stored (st is not used). The first
// issuance of the command's cert issue; a renewal is Renewer's. Issue's
// error is returned as it is, a failed write as a *WriteError: also when
// dir cannot be written to, which is found before anything is ordered.
// A certificate issued that st refused (a full disk) is written all the
// same and returned with an error wrapping Issue's *UnstoredError. The
// stored copy is marked Files: a Manager sharing st leaves its renewal to
// the Renewer.
func IssueFiles(ctx context.Context, dir certfile.Dir, st storage.Storage, req certkeeper.IssueRequest) (*certkeeper.Issued, certfile.Paths, error) {
	if req.CSR != nil {
		st = nil
	}
	req.Files = true // the stored copy is renewed with its files, by cert renew
	if len(req.Names) > 0 {
		// Before the order: a certificate that could not be written
		// would be ordered again, against the CA's limits; and a
		// directory another user could change is not written to.
		err := dir.CheckWritable(req.Names[0], req.CSR == nil)
		if err == nil {
			err = dir.CheckOwned()
		}
		if err != nil {
			return nil, certfile.Paths{}, &WriteError{Err: err, BeforeOrder: true}
		}
	}
	got, err := certkeeper.Issue(ctx, st, req)
	// Issued, and storage refused it (a full disk): the files still get
	// it, so that it is not lost and ordered again.
	unstored, ok := errors.AsType[*certkeeper.UnstoredError](err)
	if ok {
		got = unstored.Issued
	} else if err != nil {
		return nil, certfile.Paths{}, err
	}
	var paths certfile.Paths
	if req.CSR != nil {
		paths.Cert, err = dir.WriteCert(req.Names[0], got.Certificate.ChainPEM)
	} else {
		paths, err = dir.Write(req.Names[0], got.Record.KeyPEM, got.Certificate.ChainPEM)
	}
	if err != nil {
		return nil, certfile.Paths{}, &WriteError{Err: err}
	}
	if unstored != nil {
		return got, paths, fmt.Errorf("the certificate files are written (%s), but %w: free the storage", paths.Cert, unstored)
	}
	return got, paths, nil
}

// NamedFor returns names in the order of the pair in dir that holds the
// same names in another order (its files are named for its first), or
// names as they are when a pair is named for names[0] or none holds
// exactly them. cert issue -d www.a.example -d a.example, after -d
// a.example -d www.a.example, ordered a second certificate for the same
// names (a CLI trial), which cert renew then renewed beside the first for
// good (Let's Encrypt issues five a week for one set of names) and deploy
// mapped twice.
func NamedFor(dir certfile.Dir, names []string) []string {
	if len(names) < 2 {
		return names
	}
	if _, _, err := dir.Read(names[0]); err == nil {
		return names
	}
	pairs, err := dir.Pairs()
	if err != nil {
		return names
	}
	for _, p := range pairs {
		if p.Err != nil {
			continue
		}
		held := certfile.Names(p.Chain[0], certfile.NameOfBase(p.Base))
		if held[0] == certfile.NameOfBase(p.Base) && sameNames(held, names) {
			return held
		}
	}
	return names
}
