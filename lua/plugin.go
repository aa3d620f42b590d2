// Package lua holds certkeeper's plugin for nginx and OpenResty,
// certkeeper.lua: in ssl_certificate_by_lua it fetches each name's
// certificate from a certkeeper server (docs/nginx.md). The file is
// embedded here so that the binary hands out the plugin that speaks its
// own server's API (certkeeper nginx-plugin): a user who installed the
// binary alone has no checkout to copy it from, and a plugin from another
// release might not match the server.
//
// The package's tests run the plugin in a real nginx; the end-to-end tests
// with the certkeeper server are in cli (nginx_test.go).
package lua

import _ "embed"

//go:embed certkeeper.lua
var plugin string

// Plugin returns the source of certkeeper.lua.
func Plugin() string { return plugin }
