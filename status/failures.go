package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"

	"github.com/certkeeper/certkeeper/storage"
)

// UpdateFailures reads the failures stored under FailuresKey, lets change
// edit them and, when it reports a change, stores them back; it returns
// the failures as they are after change (nil, with the error, when they
// cannot be read: nothing is stored then). Whoever renews certificates
// records its failures this way, so that status shows them (a Manager;
// cert renew's Renewer): one entry per failing certificate (by storage
// key) or name (by FailingKey), removed on success.
//
// It holds the storage lock FailuresLock while it reads and writes:
// without it, two nodes updating at one moment lost one's change, and a
// lost removal never healed (a soak trial: a renewal one node failed
// during a CA outage, which another node then renewed, was shown failing,
// and alerted on, until the certificate's next renewal). damaged is
// called (when not nil) for a stored value that does not decode, which is
// then replaced.
func UpdateFailures(ctx context.Context, st storage.Storage, change func(map[string]Failure) bool, damaged func(error)) (map[string]Failure, error) {
	unlock, err := st.Lock(ctx, FailuresLock)
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", FailuresKey, err)
	}
	defer unlock()
	all := map[string]Failure{}
	data, err := st.Load(ctx, FailuresKey)
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &all); err != nil {
			if damaged != nil {
				damaged(err)
			}
			all = map[string]Failure{}
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("reading %s: %w", FailuresKey, err)
	}
	if !change(all) {
		return all, nil
	}
	if data, err = json.Marshal(all); err == nil {
		err = st.Store(ctx, FailuresKey, data)
	}
	if err != nil {
		return all, fmt.Errorf("storing %s: %w", FailuresKey, err)
	}
	return all, nil
}

// FailuresLock is the lock name under which UpdateFailures reads and
// writes FailuresKey.
const FailuresLock = "state/renewal-errors"
