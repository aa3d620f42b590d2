package cmdline

import (
	"flag"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unsafe"
)

// Bind defines a flag on fs for each field of the struct v points to that
// has a help tag. A setting's flag name, config key, default and help are
// then written once, on the field that holds it, instead of in a struct
// and again in a list of fs.StringVar calls that can drift apart (a
// default spelled two ways, a config key that is not the flag's name).
//
// The tags of a field:
//
//	help:"..."         the flag's usage (Go string escapes work: \n)
//	arg:"ADDR"         the value's placeholder: its first use in help is
//	                   what flag.UnquoteUsage shows (-listen ADDR)
//	flag:"name"        the flag's name; else the yaml key with "-" for "_"
//	default:"30s"      the default, given to the flag's Set; else the
//	                   value the field holds when Bind is called
//	deprecated:"a,b"   old names kept as hidden aliases (Deprecated)
//
// A field tagged bind:"-" is left out, with whatever it holds: flags a
// command registers in parts.
//
// Fields of type string, bool, int, time.Duration (taking days too, as
// Duration), []string (repeatable, Strings), map[string]string
// (NAME=VALUE, repeatable, Settings) and any whose pointer is a
// flag.Value are supported. Embedded structs and fields tagged
// yaml:",inline" are walked. A tag Bind cannot honour is a programmer's
// mistake and panics, so that every command's tests catch it.
func Bind(fs *flag.FlagSet, v any) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		panic(fmt.Sprintf("cmdline.Bind: want a pointer to a struct, got %T", v))
	}
	bind(fs, rv.Elem())
}

func bind(fs *flag.FlagSet, sv reflect.Value) {
	t := sv.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		fv := sv.Field(i)
		key, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if f.Tag.Get("bind") == "-" {
			continue
		}
		if f.Type.Kind() == reflect.Struct && (f.Anonymous || opts == "inline") && f.Tag.Get("help") == "" {
			bind(fs, fv)
			continue
		}
		help, ok := f.Tag.Lookup("help")
		if !ok {
			continue
		}
		name := f.Tag.Get("flag")
		if name == "" {
			name = strings.ReplaceAll(key, "_", "-")
		}
		if name == "" || name == "-" {
			panic(fmt.Sprintf("cmdline.Bind: field %s has help but no flag or yaml name", f.Name))
		}
		if arg := f.Tag.Get("arg"); arg != "" {
			j := strings.Index(help, arg)
			if j < 0 {
				panic(fmt.Sprintf("cmdline.Bind: --%s: help does not use its arg %s", name, arg))
			}
			help = help[:j] + "`" + arg + "`" + help[j+len(arg):]
		}
		if def, ok := f.Tag.Lookup("default"); ok {
			if err := value(fv, name).Set(def); err != nil {
				panic(fmt.Sprintf("cmdline.Bind: --%s: default %q: %v", name, def, err))
			}
		}
		define(fs, fv, name, help)
		if old := f.Tag.Get("deprecated"); old != "" {
			for o := range strings.SplitSeq(old, ",") {
				Deprecated(fs, o, name, nil)
			}
		}
	}
}

// addr is a pointer to the field fv, which may be unexported (a command's
// own flags, an embedded config): Bind sets up the fields of a struct its
// caller handed it, as the caller could.
func addr(fv reflect.Value) any {
	return reflect.NewAt(fv.Type(), unsafe.Pointer(fv.UnsafeAddr())).Interface()
}

// define defines flag name for the field fv, its current value the
// default: with the flag package's own String, Bool and Int values for
// those kinds, so that their parse errors and help read as they always
// have.
func define(fs *flag.FlagSet, fv reflect.Value, name, help string) {
	switch p := addr(fv).(type) {
	case flag.Value:
		fs.Var(p, name, help)
	case *string:
		fs.StringVar(p, name, *p, help)
	case *bool:
		fs.BoolVar(p, name, *p, help)
	case *int:
		fs.IntVar(p, name, *p, help)
	default:
		fs.Var(value(fv, name), name, help)
	}
}

// value is a flag.Value that sets the field fv, for the types the flag
// package has no Var function of.
func value(fv reflect.Value, name string) flag.Value {
	switch p := addr(fv).(type) {
	case flag.Value:
		return p
	case *time.Duration:
		return (*Duration)(p)
	case *[]string:
		return (*Strings)(p)
	case *map[string]string:
		return (*Settings)(p)
	case *string, *bool, *int:
		// Only for a default tag: parse it as the flag will.
		tmp := flag.NewFlagSet("", flag.ContinueOnError)
		define(tmp, fv, name, "")
		return tmp.Lookup(name).Value
	}
	panic(fmt.Sprintf("cmdline.Bind: --%s: unsupported type %s", name, fv.Type()))
}
