package pgstore

import (
	"context"
	"fmt"
)

// CheckDurability returns a sentence for each server setting that may lose
// what Store wrote once it returned: fsync=off, with which a crash of the
// server or its host can lose or corrupt committed data. It returns an error
// if the settings cannot be read.
func (s *Store) CheckDurability(ctx context.Context) ([]string, error) {
	octx, cancel := s.op(ctx)
	defer cancel()
	var fsync string
	if err := s.pool.QueryRow(octx, "SHOW fsync").Scan(&fsync); err != nil {
		return nil, s.fail(octx, "reading setting", "fsync", err)
	}
	var risks []string
	if fsync != "on" {
		risks = append(risks, fmt.Sprintf("%s runs with fsync=%s: a crash of the server or its host can lose or corrupt committed certificates, keys and accounts; set fsync = on in postgresql.conf", s.where, fsync))
	}
	return risks, nil
}
