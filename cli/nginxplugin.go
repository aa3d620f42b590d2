package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/certkeeper/certkeeper/internal/atomicfile"
	"github.com/certkeeper/certkeeper/lua"
)

func nginxPluginCmd() *Command {
	var outDir string
	return &Command{
		UsageLine: "certkeeper nginx-plugin [flags]",
		Short:     "print or install the nginx/OpenResty plugin that serves certificates from certkeeper server",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&outDir, "out-dir", "", "write DIR/certkeeper.lua (mode 0644, DIR made if missing) instead of printing it; put DIR on lua_package_path")
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			if outDir == "" {
				_, err := io.WriteString(env.Stdout, lua.Plugin())
				return err
			}
			file := filepath.Join(outDir, "certkeeper.lua")
			if err := os.MkdirAll(outDir, 0o755); err != nil {
				return fmt.Errorf("--out-dir: %w", err)
			}
			if err := atomicfile.WriteFile(file, []byte(lua.Plugin()), 0o644); err != nil {
				return fmt.Errorf("--out-dir: %w", err)
			}
			fmt.Fprintf(env.Stdout, "wrote %s; in nginx's http block: lua_package_path \"%s/?.lua;;\";\n", file, filepath.ToSlash(outDir))
			return nil
		},
	}
}
