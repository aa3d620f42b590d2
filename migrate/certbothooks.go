package migrate

import (
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// certbot runs hooks and answers challenges as its renewal configuration
// says ([renewalparams] renew_hook, pre_hook, post_hook, authenticator,
// webroot_path, [[webroot_map]], installer) and runs the executables in
// renewal-hooks/{pre,deploy,post}/. None of that is carried over: certkeeper
// takes hooks and challenge flags of its own (cert renew remembers them per
// certificate). Dropping them silently stops the web server's reload after
// renewals, or makes renewals fail on port 80, so Import reports each one
// with the certkeeper flag to give instead (Setting).

// certbotSettings returns the settings of the renewal configuration conf
// (parsed: kv, and its [[webroot_map]]) that are not carried over.
func certbotSettings(conf string, kv, webrootMap map[string]string) []Setting {
	var out []Setting
	add := func(setting, instead string) {
		out = append(out, Setting{Source: conf, Setting: setting, Instead: instead})
	}
	for _, h := range []struct{ key, flag string }{
		{"pre_hook", "--pre-hook"}, {"renew_hook", "--deploy-hook"}, {"deploy_hook", "--deploy-hook"}, {"post_hook", "--post-hook"},
	} {
		if cmd := kv[h.key]; cmd != "" {
			instead := "cert renew " + h.flag + " " + shellQuote(cmd)
			if h.flag == "--deploy-hook" && strings.Contains(cmd, "RENEWED_LINEAGE") {
				instead += renewedNote
			}
			add(fmt.Sprintf("%s = %s", h.key, cmd), instead)
		}
	}
	switch auth := kv["authenticator"]; {
	case auth == "":
	case auth == "standalone":
		setting, instead := "authenticator = standalone", "nothing: cert renew answers http-01 on port 80 itself (the default)"
		if port := kv["http01_port"]; port != "" && port != "80" {
			addr := kv["http01_address"] + ":" + port
			setting += ", http01_port = " + port
			instead = "cert renew --http-addr " + shellQuote(addr) + " (the CA connects to port 80: forward it there)"
		}
		add(setting, instead)
	case auth == "webroot":
		add(webrootSetting(kv["webroot_path"], webrootMap))
	case auth == "nginx" || auth == "apache":
		add("authenticator = "+auth, "cert renew --webroot DIR, DIR the document root "+auth+" serves these names from on port 80 "+
			"(certbot's plugin changed "+auth+"'s configuration for each challenge instead), or --challenge tls-alpn-01 with certkeeper alpn-proxy in front of "+auth)
	case auth == "manual":
		setting := "authenticator = manual"
		if h := kv["manual_auth_hook"]; h != "" {
			setting += ", manual_auth_hook = " + h
		}
		add(setting, "cert renew --challenge dns-01 --dns exec --dns-exec PROGRAM (run as PROGRAM present|cleanup FQDN VALUE, "+
			"not with certbot's CERTBOT_DOMAIN and CERTBOT_VALIDATION; docs/dns.md), or --webroot DIR for http-01")
	case strings.HasPrefix(auth, "dns-"):
		add("authenticator = "+auth, "cert renew --challenge dns-01 --dns PROVIDER (rfc2136, powerdns, exec or one compiled in; "+
			"certbot's credentials file is not read; docs/dns.md)")
	default:
		add("authenticator = "+auth, "cert renew --webroot DIR, --http-addr, --challenge tls-alpn-01 or --dns PROVIDER: the flags for how these names can be proven")
	}
	switch inst := kv["installer"]; inst {
	case "", "none", "null", "None":
	default:
		// A plugin's name to certbot, never a command: only a name
		// (nginx, apache) makes a reload command, which the suggestion
		// quotes as a whole.
		reload := "systemctl reload " + inst
		switch {
		case inst == "apache":
			reload = "systemctl reload apache2"
		case strings.Trim(inst, "abcdefghijklmnopqrstuvwxyz0123456789-_") != "":
			reload = "systemctl reload SERVICE"
		}
		add("installer = "+inst, "cert renew --deploy-hook "+shellQuote(reload)+" (certbot's plugin reloaded "+inst+
			" after each renewal), and point "+inst+" at certkeeper's files (cert renew --out-dir, or certkeeper deploy)")
	}
	return out
}

// renewedNote follows a deploy hook that reads certbot's RENEWED_LINEAGE,
// the one variable of certbot's hooks certkeeper cannot give (it sets
// RENEWED_DOMAINS: renew.Hooks.AfterRenew).
const renewedNote = " (it reads certbot's RENEWED_LINEAGE, a folder of cert.pem, fullchain.pem and privkey.pem that certkeeper " +
	"does not write: use CERTKEEPER_CERT_FILE, leaf and chain, and CERTKEEPER_KEY_FILE instead)"

// webrootSetting returns the setting and what to give instead for
// certbot's webroot authenticator: its webroot_path (a list: "DIR," for
// one) and [[webroot_map]] (name = DIR).
func webrootSetting(paths string, webrootMap map[string]string) (setting, instead string) {
	var dirs []string
	for d := range strings.SplitSeq(paths, ",") {
		if d = strings.TrimSpace(d); d != "" && !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	names := make([]string, 0, len(webrootMap))
	for n := range webrootMap {
		names = append(names, n)
	}
	slices.Sort(names)
	var mapped []string
	for _, n := range names {
		mapped = append(mapped, n+" = "+webrootMap[n])
		if !slices.Contains(dirs, webrootMap[n]) {
			dirs = append(dirs, webrootMap[n])
		}
	}
	setting = "authenticator = webroot"
	if p := strings.Trim(paths, ", "); p != "" {
		setting += ", webroot_path = " + p
	}
	if len(mapped) > 0 && len(dirs) > 1 {
		setting += ", webroot_map: " + strings.Join(mapped, ", ")
	}
	switch len(dirs) {
	case 0:
		return setting, "cert renew --webroot DIR, DIR the web server's document root for these names"
	case 1:
		return setting, "cert renew --webroot " + shellQuote(dirs[0])
	}
	return setting, "cert renew --webroot DIR takes one directory, certbot used " + fmt.Sprint(len(dirs)) +
		": serve /.well-known/acme-challenge/ of every name from one of them, or issue the names of each directory in a certificate of their own"
}

// certbotHookScripts returns the executables in certbot's
// renewal-hooks/{pre,deploy,post}/, which certbot runs around every
// renewal of every certificate: one Setting per directory that has any.
func certbotHookScripts(s *State) []Setting {
	var out []Setting
	for _, h := range []struct{ dir, flag, when string }{
		{"pre", "--pre-hook", "before renewing"}, {"deploy", "--deploy-hook", "after each renewal"}, {"post", "--post-hook", "after renewing"},
	} {
		dir := path.Join("renewal-hooks", h.dir)
		entries, err := fs.ReadDir(s.fsys, dir)
		if err != nil {
			continue
		}
		var names, cmds []string
		reads := false
		for _, e := range entries {
			info, err := e.Info()
			if err != nil || e.IsDir() || info.Mode().IsRegular() && info.Mode().Perm()&0o111 == 0 {
				continue // certbot runs only executables
			}
			names = append(names, e.Name())
			cmds = append(cmds, shellQuote(filepath.Join(s.Dir, "renewal-hooks", h.dir, e.Name())))
			if data, err := readFile(s.fsys, path.Join(dir, e.Name())); err == nil && strings.Contains(string(data), "RENEWED_LINEAGE") {
				reads = true
			}
		}
		if len(names) == 0 {
			continue
		}
		cmd := cmds[0]
		if len(cmds) > 1 {
			cmd = shellQuote(strings.Join(cmds, "; "))
		}
		instead := "cert renew " + h.flag + " " + cmd + " for every certificate"
		if reads && h.dir == "deploy" {
			instead += renewedNote
		}
		it := "it"
		if len(names) > 1 {
			it = "them"
		}
		out = append(out, Setting{Source: dir + "/", Setting: strings.Join(names, ", ") + " (certbot runs " + it + " " + h.when + ")", Instead: instead})
	}
	return out
}

// certbotTimer is certbot's own renewal, which goes on after the import
// until the operator stops it: both clients would then order the same
// names (twice the orders, and the CA's rate limits).
var certbotTimer = Setting{
	Source:  "renewal/",
	Setting: "certbot renews these certificates itself, twice a day (certbot.timer; /etc/cron.d/certbot without systemd; snap.certbot.renew.timer for the snap)",
	Instead: "stop it once certkeeper renews them, or both order the same names: systemctl disable --now certbot.timer, and remove /etc/cron.d/certbot",
}

// shellQuote quotes s for sh, unless it needs no quotes.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-:=@+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// settingActions are the NotCarried actions of settings, of the
// certificate for names ("" for the tool's whole directory). When name is
// not "", what to give instead is for that certificate only: cert renew
// -d NAME (settings given to cert renew are remembered per certificate).
func settingActions(names, name string, settings []Setting) []Action {
	if names == "" {
		names = "-"
	}
	var out []Action
	for _, st := range settings {
		instead := st.Instead
		if rest, ok := strings.CutPrefix(instead, "cert renew "); ok && name != "" {
			instead = "cert renew -d " + name + " " + rest
		}
		out = append(out, Action{Kind: "setting", Subject: names, Source: st.Source, Result: NotCarried,
			Why: st.Setting + " → " + instead})
	}
	return out
}
