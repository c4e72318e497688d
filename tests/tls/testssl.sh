#!/usr/bin/env bash
# Scan a TLS listener with testssl.sh (Debian package), offline, and judge it.
#
#   tests/tls/testssl.sh HOST:PORT [OUTDIR] [CAFILE]
#       scan a running listener (e.g. the gateway); CAFILE is the CA that
#       signed its certificate (so the chain-of-trust check can pass)
#   tests/tls/testssl.sh --self [OUTDIR]
#       generate test certificates, build tests/tls/tls_server.c (pc_tls on a
#       bare evhttp), start it on 127.0.0.1, scan it, stop it
#
# Writes OUTDIR/testssl.log (the report), OUTDIR/testssl.csv (findings) and
# OUTDIR/summary.txt. OUTDIR defaults to build/tls. Exits non-zero when
# SSLv2, SSLv3, TLS 1.0 or TLS 1.1 is offered, a NULL/anonymous/export/LOW/
# 3DES/obsolete-CBC ("AVERAGE") cipher is offered, any finding is HIGH or
# CRITICAL, renegotiation is possible, any
# vulnerability check is not OK, or the scan itself did not complete.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
SCAN_TIMEOUT=${SCAN_TIMEOUT:-600}

usage() { echo "usage: $0 HOST:PORT [OUTDIR] [CAFILE] | --self [OUTDIR]" >&2; exit 2; }
[ $# -ge 1 ] || usage
command -v testssl >/dev/null || { echo "testssl not installed (apt: testssl.sh)" >&2; exit 2; }

srv_pid=
certdir=
cleanup() {
	if [ -n "$srv_pid" ]; then kill "$srv_pid" 2>/dev/null || true; wait "$srv_pid" 2>/dev/null || true; fi
	if [ -n "$certdir" ]; then rm -rf "$certdir"; fi
}
trap cleanup EXIT

if [ "$1" = "--self" ]; then
	out=${2:-$root/build/tls}
	mkdir -p "$out"
	certdir=$(mktemp -d /tmp/pc-testssl-XXXXXX)
	# A year: shorter validity is itself flagged by the scanner.
	CERT_DAYS=365 "$here/make-certs.sh" "$certdir"
	cafile=$certdir/ca.crt
	# Built here, not by the Makefile: a scan helper, not a product part.
	# shellcheck disable=SC2046
	cc -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter \
		-O2 -g -I"$root/src" -o "$out/tls_server" "$here/tls_server.c" \
		"$root/src/http/tls.c" "$root/src/lib/errors.c" \
		"$root/src/lib/log.c" "$root/src/lib/util.c" \
		$(pkg-config --cflags --libs libevent libevent_openssl libssl libcrypto jansson)
	# An ephemeral port that is free now.
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 18443)
	"$out/tls_server" "$port" "$certdir/server.crt" "$certdir/server.key" 2>"$out/tls_server.log" &
	srv_pid=$!
	for _ in $(seq 50); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
		sleep 0.1
	done
	target=127.0.0.1:$port
	host=localhost
else
	target=$1
	out=${2:-$root/build/tls}
	cafile=${3:-}
	mkdir -p "$out"
	host=${target%:*}
	port=${target##*:}
fi

log=$out/testssl.log
csv=$out/testssl.csv
rm -f "$log" "$csv"

# Offline and bounded: no DNS (--nodns none, --ip), no OCSP/CRL fetches
# (no --phone-out), per-connection timeouts, and a hard cap on the whole run.
args=(--quiet --color 0 --warnings off --nodns none
	--openssl /usr/bin/openssl --connect-timeout 10 --openssl-timeout 10
	--sneaky -p -s -f -E -S -P -U -h
	--logfile "$log" --csvfile "$csv")
# A host name is not resolved: it is the name (SNI, certificate check) and
# TESTSSL_IP the address (default loopback).
if ! [[ $host =~ ^[0-9.]+$ ]]; then args+=(--ip "${TESTSSL_IP:-127.0.0.1}"); fi
if [ -n "$cafile" ]; then args+=(--add-ca "$cafile"); fi
echo "testssl ${args[*]} ${host}:${port}" >"$out/command.txt"

set +e
timeout "$SCAN_TIMEOUT" testssl "${args[@]}" "${host}:${port}" >/dev/null 2>"$out/testssl.stderr"
rc=$?
set -e
if [ ! -s "$csv" ]; then
	echo "testssl produced no findings (exit $rc); see $out/testssl.stderr" >&2
	exit 1
fi
[ "$rc" -eq 124 ] && { echo "testssl timed out after ${SCAN_TIMEOUT}s" >&2; exit 1; }

# CSV: "id","fqdn/ip","port","severity","finding","cve","cwe"
awk -F'","' '
	function bad(why) { print "FAIL " $1 ": " why " (" $5 ")"; nbad++ }
	NR == 1 { next }
	{
		gsub(/^"/, "", $1); id = $1; sev = $4; fin = $5
		if (id ~ /^(SSLv2|SSLv3|TLS1|TLS1_1)$/ && fin !~ /^not offered/)
			bad("protocol offered")
		if (id ~ /^cipherlist_(NULL|aNULL|EXPORT|LOW|3DES_IDEA|AVERAGE|OBSOLETED)$/ &&
		    fin !~ /^not offered/)
			bad("weak cipher category offered")
		if (id ~ /^(secure_renego|secure_client_renego)$/ && sev != "OK")
			bad("renegotiation")
		if (id ~ /^(heartbleed|CCS|ticketbleed|ROBOT|CRIME_TLS|BREACH|POODLE_SSL|fallback_SCSV|SWEET32|FREAK|DROWN|LOGJAM|LOGJAM-common_primes|BEAST|BEAST_CBC_TLS1|LUCKY13|winshock|RC4)$/ &&
		    sev != "OK" && sev != "INFO")
			bad("vulnerability check " sev)
		if (sev == "HIGH" || sev == "CRITICAL")
			bad("severity " sev)
		if (id == "scanProblem")
			bad("scan problem")
		seen[id] = 1
	}
	END {
		split("SSLv2 SSLv3 TLS1 TLS1_1 TLS1_2 TLS1_3 cipherlist_NULL cipherlist_aNULL " \
		    "cipherlist_EXPORT cipherlist_LOW cipherlist_3DES_IDEA cipherlist_AVERAGE " \
		    "heartbleed CCS ROBOT secure_renego secure_client_renego CRIME_TLS " \
		    "POODLE_SSL SWEET32 FREAK LOGJAM BEAST LUCKY13", need, " ")
		for (i in need) if (!(need[i] in seen)) { print "FAIL missing check " need[i]; nbad++ }
		exit nbad > 0
	}' "$csv" >"$out/failures.txt" && ok=1 || ok=0

{
	echo "command: $(cat "$out/command.txt")"
	echo "testssl exit: $rc"
	awk -F'","' 'NR > 1 && $1 != "\"cert" { gsub(/^"/, "", $1); gsub(/"$/, "", $7);
		printf "%-28s %-8s %s\n", $1, $4, $5 }' "$csv"
	echo
	if [ "$ok" = 1 ]; then echo "RESULT: PASS"; else echo "RESULT: FAIL"; cat "$out/failures.txt"; fi
} >"$out/summary.txt"
cat "$out/summary.txt"
[ "$ok" = 1 ]
