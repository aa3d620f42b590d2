package redisstore

import (
	"context"
	"fmt"
)

// CheckDurability returns a sentence for each server setting that may lose
// what Store wrote: neither RDB snapshots (CONFIG GET save is empty) nor
// the append-only file (appendonly no), with which a restart of Redis
// loses everything. It returns an error if the settings cannot be read,
// for example because CONFIG is refused to the Store's user (an ACL
// without +config, a renamed command, a managed Redis).
func (s *Store) CheckDurability(ctx context.Context) ([]string, error) {
	if s.Client == nil {
		return nil, errNoClient
	}
	save, err := s.Client.ConfigGet(ctx, "save").Result()
	if err != nil {
		return nil, s.fail(ctx, "CONFIG GET", "save", err)
	}
	aof, err := s.Client.ConfigGet(ctx, "appendonly").Result()
	if err != nil {
		return nil, s.fail(ctx, "CONFIG GET", "appendonly", err)
	}
	if save["save"] == "" && aof["appendonly"] != "yes" {
		return []string{fmt.Sprintf(`%s keeps its data in memory only (save "" and appendonly no): a restart of Redis loses every certificate, key and account; set appendonly yes (appendfsync everysec or always)`, s.server())}, nil
	}
	return nil, nil
}
