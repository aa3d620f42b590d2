#!/bin/sh
# A hook written for lego's exec provider in RAW mode (EXEC_MODE=RAW), run
# unchanged by certkeeper's --dns exec --dns-exec-mode raw:
#
#   hook present|cleanup -- DOMAIN TOKEN KEYAUTH
#
# It computes the TXT value itself (the unpadded base64url SHA-256 of
# KEYAUTH, RFC 8555 §8.4) and sets or deletes _acme-challenge.DOMAIN with
# nsupdate. NS_HOST, NS_PORT and TSIG (ALG:NAME:SECRET) say where.
set -eu
action=$1
shift
[ "${1:-}" = "--" ] && shift
domain=$1 keyauth=$3
case "$action" in present) op=add ;; cleanup) op=delete ;; *) exit 2 ;; esac
value=$(printf '%s' "$keyauth" | openssl dgst -sha256 -binary | openssl base64 -A | tr '+/' '-_' | tr -d '=')
printf 'server %s %s\nupdate %s _acme-challenge.%s. 60 TXT "%s"\nsend\n' "$NS_HOST" "$NS_PORT" "$op" "$domain" "$value" |
	nsupdate -t 5 -y "$TSIG"
