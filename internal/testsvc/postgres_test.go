package testsvc

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestPostgres(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		opts      PostgresOptions
		wantFsync string
	}{
		{"default", PostgresOptions{}, "on"},
		{"fsync off", PostgresOptions{FsyncOff: true}, "off"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := PostgresWith(t, tt.opts)
			ctx := t.Context()
			cfg, err := pgx.ParseConfig(s.URL("postgres"))
			if err != nil {
				t.Fatal(err)
			}
			cfg.Password = s.Password()
			conn, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				t.Fatalf("connecting to %s: %v", s.Addr(), err)
			}
			defer conn.Close(ctx)
			var fsync string
			if err := conn.QueryRow(ctx, "SHOW fsync").Scan(&fsync); err != nil {
				t.Fatal(err)
			}
			if fsync != tt.wantFsync {
				t.Errorf("SHOW fsync = %q, want %q", fsync, tt.wantFsync)
			}

			// The password is checked over TCP.
			cfg.Password = "wrong"
			if c, err := pgx.ConnectConfig(ctx, cfg); err == nil {
				c.Close(ctx)
				t.Error("connecting with a wrong password succeeded")
			}

			// As root, the server runs as nobody.
			if os.Geteuid() == 0 {
				status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.proc.Pid()))
				if err != nil {
					t.Fatal(err)
				}
				for _, l := range strings.Split(string(status), "\n") {
					if strings.HasPrefix(l, "Uid:") && strings.Fields(l)[1] == "0" {
						t.Errorf("postgres runs as root: %s", l)
					}
					if strings.HasPrefix(l, "Groups:") && strings.TrimSpace(strings.TrimPrefix(l, "Groups:")) != "" {
						t.Errorf("postgres keeps supplementary groups: %s", l)
					}
				}
			}

			cfg.Password = s.Password()
			if _, err := conn.Exec(ctx, "CREATE TABLE kept (x int)"); err != nil {
				t.Fatal(err)
			}
			s.Restart(t)
			c2, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				t.Fatalf("connecting after Restart: %v", err)
			}
			if _, err := c2.Exec(ctx, "SELECT * FROM kept"); err != nil {
				t.Errorf("after Restart: %v, want the table made before", err)
			}
			c2.Close(ctx)

			s.Stop()
			s.Stop()
			_, err = pgx.ConnectConfig(ctx, cfg)
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("connecting after Stop = %v, want connection refused", err)
			}
		})
	}
}
