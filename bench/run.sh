#!/usr/bin/env bash
# bench/run.sh — the load harness: `make bench` runs it after the Go
# benchmarks, or run it alone from anywhere (`bash bench/run.sh`).
#
# In one run, on this machine, over loopback only, it measures with wrk:
# the upstream alone; Caddy's plain reverse_proxy; the apiusers gateway in
# front of the same upstream on cache hits (file store, Redis), with
# `record`, and on many distinct keys (cache misses, both stores); then the
# revocation propagation between two Caddy instances on one Redis, the
# memory a cached user costs, and the Redis memory a user costs. It prints
# one markdown table and writes it, with the machine it ran on, to
# bench/RESULTS.md.
#
# Everything runs in a temporary directory on free ports, and every process
# it starts (redis-server, the upstream, Caddy) is stopped when it exits.
#
# Environment (defaults in brackets):
#   BENCH_DURATION     wrk duration of each measured run [10s]
#   BENCH_REPEAT       rounds of the cache-hit runs; a row shows the median [3]
#   BENCH_WARMUP       wrk warm-up of each cache-hit scenario, not measured [2s]
#   BENCH_THREADS      wrk threads [2]
#   BENCH_CONNECTIONS  wrk connections [64]
#   BENCH_USERS        users seeded in each store for the miss runs and the
#                      memory figures [100000]
#   BENCH_ROUNDS       revocations measured for propagation [200]
#   BENCH_SCALE        the sizes bench/scale fills a fresh Redis to, and
#                      measures a gateway miss, a list page and memory per
#                      user at [1000,100000]; 1000,1000000 for the million
#                      (about 4 minutes of seeding and 1 GiB for Redis);
#                      none to skip
#   BENCH_RESULTS      where the results are written [bench/RESULTS.md]
#   BENCH_NOTE         a line added to the results (say what else ran)
#   BENCH_KEEP=1       keep the temporary directory (configs, logs, keys)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

DURATION=${BENCH_DURATION:-10s}
REPEAT=${BENCH_REPEAT:-3}
WARMUP=${BENCH_WARMUP:-2s}
THREADS=${BENCH_THREADS:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
USERS=${BENCH_USERS:-100000}
ROUNDS=${BENCH_ROUNDS:-200}
SCALE=${BENCH_SCALE:-1000,100000}
RESULTS=${BENCH_RESULTS:-bench/RESULTS.md}
NOTE=${BENCH_NOTE:-}
KEEP=${BENCH_KEEP:-0}
GO=${GO:-go}
WORKSPACE=bench
API_PATH=/api/ping

for v in USERS ROUNDS REPEAT THREADS CONNECTIONS; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || {
		echo "bench: BENCH_$v must be a positive integer, not '${!v}'" >&2
		exit 2
	}
done

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# --- tools -----------------------------------------------------------------

# ensure_tool <command> <debian package>: installs the package with apt-get
# when the command is missing and apt-get is there (as root, or with sudo).
ensure_tool() {
	command -v "$1" >/dev/null 2>&1 && return
	local sudo=
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null 2>&1 || die "$1 is missing and there is no sudo to install $2: install $2"
		sudo=sudo
	fi
	command -v apt-get >/dev/null 2>&1 || die "$1 is missing and apt-get is not available: install $2"
	log "$1 is missing: installing $2 with apt-get"
	$sudo apt-get update -qq
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
	command -v "$1" >/dev/null 2>&1 || die "$1 still missing after installing $2"
}
ensure_tool wrk wrk
ensure_tool redis-server redis-server
ensure_tool redis-cli redis-tools
ensure_tool curl curl
command -v "$GO" >/dev/null 2>&1 || die "go is not on PATH"

# --- processes, ports, cleanup ---------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/apiusers-bench.XXXXXX")
SEEDTMP=
PIDS=()
mkdir -p "$WORK/logs" "$WORK/bin" "$WORK/xdg/data" "$WORK/xdg/config"
export XDG_DATA_HOME=$WORK/xdg/data XDG_CONFIG_HOME=$WORK/xdg/config

cleanup() {
	local code=$?
	trap - EXIT INT TERM
	local pid
	for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
		wait_exit "$pid"
	done
	[ -n "$SEEDTMP" ] && rm -rf "$SEEDTMP"
	if [ "$KEEP" = 1 ]; then
		log "kept $WORK"
	else
		rm -rf "$WORK"
	fi
	exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_exit <pid>: waits up to 10s for pid to end, then kills it.
wait_exit() {
	local i
	for i in $(seq 100); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# start <name> <command...>: starts a process in the background, logging to
# $WORK/logs/<name>.log; its pid is left in LAST_PID.
start() {
	local name=$1
	shift
	"$@" >"$WORK/logs/$name.log" 2>&1 &
	LAST_PID=$!
	PIDS+=("$LAST_PID")
}

# stop <pid>: stops a process start started.
stop() {
	kill -TERM "$1" 2>/dev/null || true
	wait_exit "$1"
	local kept=() pid
	for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
		[ "$pid" = "$1" ] || kept+=("$pid")
	done
	PIDS=("${kept[@]+"${kept[@]}"}")
}

# free_port <var>: sets var to a loopback port nobody listens on, below the
# ephemeral range and not handed out before in this run.
USED_PORTS=" "
free_port() {
	local _fp_port _fp_try
	for _fp_try in $(seq 500); do
		_fp_port=$((10000 + RANDOM % 20000))
		[[ $USED_PORTS == *" $_fp_port "* ]] && continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$_fp_port") 2>/dev/null; then
			USED_PORTS+="$_fp_port "
			printf -v "$1" '%s' "$_fp_port"
			return
		fi
	done
	die "no free port found"
}

# wait_http <pid> <name> <url>: waits until url answers (any status).
wait_http() {
	local i
	for i in $(seq 200); do
		if ! kill -0 "$1" 2>/dev/null; then
			tail -n 20 "$WORK/logs/$2.log" >&2 || true
			die "$2 exited while starting"
		fi
		if [ "$(curl -s -m 2 -o /dev/null -w '%{http_code}' "$3" 2>/dev/null)" != 000 ]; then
			return
		fi
		sleep 0.1
	done
	tail -n 20 "$WORK/logs/$2.log" >&2 || true
	die "$2 does not answer on $3"
}

# status <url> [key]: prints the status of one GET.
status() {
	if [ $# -gt 1 ]; then
		curl -s -m 10 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $2" "$1"
	else
		curl -s -m 10 -o /dev/null -w '%{http_code}' "$1"
	fi
}

# caddy_start <name> <Caddyfile> <port>: runs Caddy on a config and waits
# until it answers; the pid is left in CADDY_PID.
caddy_start() {
	start "$1" ./caddy run --config "$2" --adapter caddyfile
	CADDY_PID=$LAST_PID
	wait_http "$CADDY_PID" "$1" "http://127.0.0.1:$3$API_PATH"
}

# --- build -----------------------------------------------------------------

log "building ./caddy and the bench programs"
"$GO" build -o ./caddy ./cmd/caddy
"$GO" build -o "$WORK/bin/upstream" ./bench/upstream
"$GO" build -o "$WORK/bin/propagation" ./bench/propagation
"$GO" build -o "$WORK/bin/cachemem" ./bench/cachemem
"$GO" build -o "$WORK/bin/scale" ./bench/scale
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)

# --- Redis, upstream, stores -----------------------------------------------

free_port REDIS_PORT
mkdir -p "$WORK/redis"
start redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$WORK/redis" \
	--save '' --appendonly no --protected-mode yes
REDIS_PID=$LAST_PID
for i in $(seq 100); do
	redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
	kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server exited: $(tail -n 5 "$WORK/logs/redis.log")"
	sleep 0.1
done
redis-cli -p "$REDIS_PORT" ping >/dev/null || die "redis-server does not answer"
REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0

free_port UP_PORT
start upstream "$WORK/bin/upstream" -addr "127.0.0.1:$UP_PORT"
UP_PID=$LAST_PID
wait_http "$UP_PID" upstream "http://127.0.0.1:$UP_PORT/"

# Every instance of a fleet must verify the same keys; the secret stays in
# the environment, out of the generated files.
APIUSERS_BENCH_SIGNING_KEY=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
export APIUSERS_BENCH_SIGNING_KEY

FILE_DIR=$WORK/file-store
global_file() {
	printf '{\n\tadmin off\n\tdefault_bind 127.0.0.1\n\tapiusers {\n\t\tstore file %s\n\t}\n}\n' "$FILE_DIR"
}
global_redis() {
	printf '{\n\tadmin off\n\tdefault_bind 127.0.0.1\n\tapiusers {\n\t\tstore redis %s\n\t\tsigning_key {env.APIUSERS_BENCH_SIGNING_KEY}\n\t}\n}\n' "$REDIS_URL"
}
# gateway_site <port> [extra subdirective]: the protected route.
gateway_site() {
	printf 'http://:%s {\n\tapiusers {\n\t\trequire listeners.invoke\n%s\t}\n\treverse_proxy 127.0.0.1:%s\n}\n' \
		"$1" "${2:+$'\t\t'$2$'\n'}" "$UP_PORT"
}
proxy_site() {
	printf 'http://:%s {\n\treverse_proxy 127.0.0.1:%s\n}\n' "$1" "$UP_PORT"
}

# Seeding: the file store is filled on tmpfs when there is room (each user
# is one bbolt commit, and tmpfs makes its fsync free) and copied to disk
# before Caddy opens it; Redis at the same time.
SEED_FILE_DIR=$FILE_DIR
SEEDED_ON_TMPFS=0
if [ -d /dev/shm ] && [ -w /dev/shm ] &&
	[ "$(df -Pk /dev/shm | awk 'NR==2 {print $4}')" -gt $((USERS * 4 + 65536)) ]; then
	SEEDTMP=$(mktemp -d /dev/shm/apiusers-bench.XXXXXX)
	SEED_FILE_DIR=$SEEDTMP/file-store
	SEEDED_ON_TMPFS=1
fi
printf '{\n\tapiusers {\n\t\tstore file %s\n\t}\n}\n' "$SEED_FILE_DIR" >"$WORK/seed-file.Caddyfile"
global_redis >"$WORK/redis-global.Caddyfile"

log "seeding $USERS users with a key each in the file store and in Redis"
start seed-file ./caddy apiusers seed --config "$WORK/seed-file.Caddyfile" --adapter caddyfile \
	--workspace "$WORKSPACE" --users "$USERS" --prefix load --keys-out "$WORK/keys-file.txt"
SEED_FILE_PID=$LAST_PID
REDIS_MEM_BEFORE=$(redis-cli -p "$REDIS_PORT" info memory | awk -F: '/^used_memory:/ {print $2+0}')
if ! ./caddy apiusers seed --config "$WORK/redis-global.Caddyfile" --adapter caddyfile \
	--workspace "$WORKSPACE" --users "$USERS" --prefix load --keys-out "$WORK/keys-redis.txt" \
	2>"$WORK/logs/seed-redis.log"; then
	tail -n 5 "$WORK/logs/seed-redis.log" >&2
	die "seeding Redis failed"
fi
REDIS_MEM_AFTER=$(redis-cli -p "$REDIS_PORT" info memory | awk -F: '/^used_memory:/ {print $2+0}')
wait "$SEED_FILE_PID" || {
	tail -n 5 "$WORK/logs/seed-file.log" >&2
	die "seeding the file store failed"
}
stop "$SEED_FILE_PID"
if [ "$SEED_FILE_DIR" != "$FILE_DIR" ]; then
	cp -a "$SEED_FILE_DIR" "$FILE_DIR"
	rm -rf "$SEEDTMP"
	SEEDTMP=
fi
SEED_FILE_RATE=$(awk '/^seeded .* users\/s$/ {print $(NF-1)}' "$WORK/logs/seed-file.log" | tail -n 1)
SEED_REDIS_RATE=$(awk '/^seeded .* users\/s$/ {print $(NF-1)}' "$WORK/logs/seed-redis.log" | tail -n 1)
TMPFS_NOTE=
[ "$SEEDED_ON_TMPFS" = 1 ] && TMPFS_NOTE=" (seeded on tmpfs, then copied to disk)"
log "seeded: file store ${SEED_FILE_RATE} users/s$TMPFS_NOTE, Redis ${SEED_REDIS_RATE} users/s"
FILE_KEY=$(head -n 1 "$WORK/keys-file.txt")
REDIS_KEY=$(head -n 1 "$WORK/keys-redis.txt")

# --- wrk runs --------------------------------------------------------------

# The table's rows, rendered at the end (the ratio needs the baseline).
R_LABEL=() R_RPS=() R_P50=() R_P99=() R_NOTES=()
PROXY_RPS=

# row <label> <req/s or ""> <p50> <p99> <notes>
row() {
	R_LABEL+=("$1")
	R_RPS+=("$2")
	R_P50+=("$3")
	R_P99+=("$4")
	R_NOTES+=("$5")
}

# to_ms <wrk latency such as 812.00us, 1.20ms, 1.01s>: prints milliseconds.
to_ms() {
	awk -v v="$1" 'BEGIN {
		n = v + 0
		if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
		printf "%.2f", n
	}'
}

# fmt_int 1234567 -> 1,234,567
fmt_int() { printf '%s' "$1" | sed -e ':a' -e 's/\B[0-9]\{3\}\b/,&/' -e 'ta'; }

# run_wrk <out file> <url> <key|-> [keys file]: one measured wrk run; with
# "-" the keys script sends another key of the keys file with every request.
# Prints "req/s p50_ms p99_ms requests errors".
run_wrk() {
	local out=$1 url=$2 key=$3
	local args=(-t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" --latency)
	if [ "$key" = - ]; then
		wrk "${args[@]}" -s bench/keys.lua "$url" -- "$4" "$THREADS" >"$out"
	else
		wrk "${args[@]}" -H "Authorization: Bearer $key" "$url" >"$out"
	fi
	local rps p50 p99 reqs errs
	rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
	[ -n "$rps" ] || die "no result from wrk: $(cat "$out")"
	p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
	p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
	reqs=$(awk '/requests in/ {print $1}' "$out")
	# Answers other than 2xx/3xx, and connect, read, write and timeout errors.
	errs=$(awk -F'[ ,]+' '/Non-2xx or 3xx responses:/ {e += $NF} /Socket errors:/ {e += $4 + $6 + $8 + $10} END {print e + 0}' "$out")
	echo "$rps $p50 $p99 $reqs $errs"
}

# Cache-hit scenarios: each runs in its own process, all started at once and
# measured in turn, BENCH_REPEAT rounds, so that a change in the machine's
# load during the run touches every scenario alike; each row is the round
# with the median req/s. A scenario is a name, a label, a URL and a key.
SC_NAME=() SC_LABEL=() SC_URL=() SC_KEY=()
scenario() {
	SC_NAME+=("$1")
	SC_LABEL+=("$2")
	SC_URL+=("$3")
	SC_KEY+=("$4")
}

scenario upstream "upstream alone (no Caddy)" "http://127.0.0.1:$UP_PORT$API_PATH" "$FILE_KEY"

free_port P
{
	printf '{\n\tadmin off\n\tdefault_bind 127.0.0.1\n}\n'
	proxy_site "$P"
} >"$WORK/proxy.Caddyfile"
caddy_start caddy-proxy "$WORK/proxy.Caddyfile" "$P"
scenario proxy "Caddy reverse_proxy (the baseline)" "http://127.0.0.1:$P$API_PATH" "$FILE_KEY"

free_port P
{
	global_file
	gateway_site "$P"
} >"$WORK/gateway-file.Caddyfile"
caddy_start caddy-gateway-file "$WORK/gateway-file.Caddyfile" "$P"
[ "$(status "http://127.0.0.1:$P$API_PATH" "$FILE_KEY")" = 200 ] || die "the gateway refuses a seeded key (file store)"
[ "$(status "http://127.0.0.1:$P$API_PATH")" = 401 ] || die "the gateway admits a request without a key"
scenario gateway-file "apiusers + reverse_proxy, file store, cache hits" "http://127.0.0.1:$P$API_PATH" "$FILE_KEY"

free_port P
{
	global_redis
	gateway_site "$P"
} >"$WORK/gateway-redis.Caddyfile"
caddy_start caddy-gateway-redis "$WORK/gateway-redis.Caddyfile" "$P"
[ "$(status "http://127.0.0.1:$P$API_PATH" "$REDIS_KEY")" = 200 ] || die "the gateway refuses a seeded key (Redis)"
scenario gateway-redis "apiusers + reverse_proxy, Redis, cache hits" "http://127.0.0.1:$P$API_PATH" "$REDIS_KEY"

# record, when this build has it; on a copy of the file store (one process
# holds a store file).
RECORD_DIR=$WORK/file-store-record
free_port P
{
	global_file | sed "s|store file $FILE_DIR|store file $RECORD_DIR|"
	gateway_site "$P" record
} >"$WORK/gateway-record.Caddyfile"
if ./caddy adapt --config "$WORK/gateway-record.Caddyfile" --adapter caddyfile >/dev/null 2>"$WORK/logs/adapt-record.log"; then
	cp -a "$FILE_DIR" "$RECORD_DIR"
	caddy_start caddy-gateway-record "$WORK/gateway-record.Caddyfile" "$P"
	[ "$(status "http://127.0.0.1:$P$API_PATH" "$FILE_KEY")" = 200 ] || die "the gateway with record refuses a seeded key"
	scenario gateway-record "apiusers + record + reverse_proxy, file store, cache hits" "http://127.0.0.1:$P$API_PATH" "$FILE_KEY"
else
	RECORD_SKIPPED="skipped: \`./caddy adapt\` does not know \`record\` in this build ($(grep -m 1 -o 'record[^"]*' "$WORK/logs/adapt-record.log" | tr '|' '/'))"
fi

declare -A RES
for s in "${!SC_NAME[@]}"; do
	log "warming up: ${SC_LABEL[$s]}"
	wrk -t "$THREADS" -c "$CONNECTIONS" -d "$WARMUP" -H "Authorization: Bearer ${SC_KEY[$s]}" "${SC_URL[$s]}" >/dev/null
done
for r in $(seq "$REPEAT"); do
	for s in "${!SC_NAME[@]}"; do
		log "round $r/$REPEAT: ${SC_LABEL[$s]}"
		RES[$s,$r]=$(run_wrk "$WORK/logs/wrk-${SC_NAME[$s]}-$r.txt" "${SC_URL[$s]}" "${SC_KEY[$s]}")
	done
done
for s in "${!SC_NAME[@]}"; do
	# The round with the median req/s.
	med=$(for r in $(seq "$REPEAT"); do echo "${RES[$s,$r]}"; done | sort -n -k1,1 | sed -n "$(((REPEAT + 1) / 2))p")
	read -r rps p50 p99 _ _ <<<"$med"
	all=$(for r in $(seq "$REPEAT"); do fmt_int "$(echo "${RES[$s,$r]}" | cut -d' ' -f1)"; echo; done | paste -sd/ | sed 's|/| / |g')
	errs=$(for r in $(seq "$REPEAT"); do echo "${RES[$s,$r]}"; done | awk '{e += $5} END {print e + 0}')
	notes="median of $REPEAT rounds (req/s: $all)"
	[ "$errs" != 0 ] && notes+="; $errs errors or answers not 2xx"
	[ "${SC_NAME[$s]}" = proxy ] && PROXY_RPS=$rps
	row "${SC_LABEL[$s]}" "$rps" "$p50 ms" "$p99 ms" "$notes"
done
[ -n "${RECORD_SKIPPED:-}" ] && row "apiusers + record + reverse_proxy" "" — — "$RECORD_SKIPPED"
for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
	[ "$pid" = "$REDIS_PID" ] || [ "$pid" = "$UP_PID" ] || stop "$pid"
done

# Many distinct keys: a fresh Caddy per store, each request another key, so
# each request verifies a key and loads a principal (one store round trip)
# until the keys run out.
miss() {
	local name=$1 label=$2 global=$3 keys=$4 p
	free_port p
	{
		$global
		gateway_site "$p"
	} >"$WORK/$name.Caddyfile"
	caddy_start "caddy-$name" "$WORK/$name.Caddyfile" "$p"
	log "measuring: $label"
	local rps p50 p99 reqs errs n notes
	read -r rps p50 p99 reqs errs <<<"$(run_wrk "$WORK/logs/wrk-$name.txt" "http://127.0.0.1:$p$API_PATH" - "$keys")"
	stop "$CADDY_PID"
	n=$(wc -l <"$keys")
	if [ "$reqs" -le "$n" ]; then
		notes="every request a key's first use ($(fmt_int "$reqs") requests, $(fmt_int "$n") keys)"
	else
		notes="$(awk -v n="$n" -v r="$reqs" 'BEGIN {printf "%.0f", 100 * n / r}')% of $(fmt_int "$reqs") requests a key's first use, then the keys came round again"
	fi
	[ "$errs" != 0 ] && notes+="; $errs errors or answers not 2xx"
	row "$label" "$rps" "$p50 ms" "$p99 ms" "one run; $notes"
}
miss miss-file "apiusers + reverse_proxy, file store, $(fmt_int "$USERS") distinct keys (misses)" global_file "$WORK/keys-file.txt"
miss miss-redis "apiusers + reverse_proxy, Redis, $(fmt_int "$USERS") distinct keys (misses)" global_redis "$WORK/keys-redis.txt"

# --- revocation propagation ------------------------------------------------

log "measuring revocation propagation over $ROUNDS revocations"
./caddy apiusers bootstrap --config "$WORK/redis-global.Caddyfile" --adapter caddyfile \
	--workspace "$WORKSPACE" --username bench-root >"$WORK/root.key" 2>"$WORK/logs/bootstrap.log" ||
	die "bootstrap on Redis failed: $(cat "$WORK/logs/bootstrap.log")"
chmod 600 "$WORK/root.key"
fleet_site() {
	printf 'http://:%s {\n\thandle_path /admin/* {\n\t\tapiusers_admin\n\t}\n\thandle /api/* {\n\t\tapiusers {\n\t\t\trequire listeners.invoke\n\t\t}\n\t\trespond "ok" 200\n\t}\n}\n' "$1"
}
free_port PA
free_port PB
{
	global_redis
	fleet_site "$PA"
} >"$WORK/fleet-a.Caddyfile"
{
	global_redis
	fleet_site "$PB"
} >"$WORK/fleet-b.Caddyfile"
caddy_start caddy-fleet-a "$WORK/fleet-a.Caddyfile" "$PA"
A_PID=$CADDY_PID
caddy_start caddy-fleet-b "$WORK/fleet-b.Caddyfile" "$PB"
B_PID=$CADDY_PID
PROP=$("$WORK/bin/propagation" -a "http://127.0.0.1:$PA" -b "http://127.0.0.1:$PB" -api "$API_PATH" \
	-workspace "$WORKSPACE" -root-key-file "$WORK/root.key" -rounds "$ROUNDS" 2>"$WORK/logs/propagation.log") ||
	die "propagation failed: $(tail -n 5 "$WORK/logs/propagation.log")"
stop "$A_PID"
stop "$B_PID"
kv() { printf '%s\n' "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {print $2}'; }
row "revocation on A seen on B (2 instances, one Redis; $(kv "$PROP" rounds) revocations)" "" "$(kv "$PROP" p50_ms) ms" "$(kv "$PROP" p99_ms) ms" \
	"max $(kv "$PROP" max_ms) ms; $(kv "$PROP" failures) failed rounds; from A's answer to the revocation to B's first 401"

# --- memory ----------------------------------------------------------------

log "measuring the memory of $(fmt_int "$USERS") cached users"
MEM=$("$WORK/bin/cachemem" -store "$FILE_DIR" -keys "$WORK/keys-file.txt" 2>"$WORK/logs/cachemem.log") ||
	die "cachemem failed: $(tail -n 5 "$WORK/logs/cachemem.log")"
PB_BYTES=$(kv "$MEM" principal_bytes)
KB_BYTES=$(kv "$MEM" key_bytes)
UB_BYTES=$(kv "$MEM" user_bytes)
row "Go heap per cached user ($(fmt_int "$(kv "$MEM" cached)") of $(fmt_int "$(kv "$MEM" users)") users cached, file store)" "" — — \
	"$(fmt_int "$PB_BYTES") B per principal + $(fmt_int "$KB_BYTES") B per verified key = $(fmt_int "$UB_BYTES") B per user: $(awk -v b="$UB_BYTES" 'BEGIN {printf "%.1f", b * 100000 / 1048576}') MiB per 100,000 cached users"
REDIS_PER_USER=$(((REDIS_MEM_AFTER - REDIS_MEM_BEFORE) / USERS))
row "Redis used_memory per seeded user ($(fmt_int "$USERS") users)" "" — — \
	"$(fmt_int "$REDIS_PER_USER") B per user (the user, its name index entry, its key, 2 audit entries): $(awk -v b="$REDIS_PER_USER" 'BEGIN {printf "%.1f", b * 100000 / 1048576}') MiB per 100,000 users"

# --- scale -----------------------------------------------------------------

SCALE_TABLE=
if [ "$SCALE" != none ]; then
	log "scale: filling a fresh Redis to $SCALE users"
	free_port SCALE_PORT
	mkdir -p "$WORK/redis-scale"
	start redis-scale redis-server --bind 127.0.0.1 --port "$SCALE_PORT" --dir "$WORK/redis-scale" \
		--save '' --appendonly no --protected-mode yes
	SCALE_PID=$LAST_PID
	for i in $(seq 100); do
		redis-cli -p "$SCALE_PORT" ping >/dev/null 2>&1 && break
		sleep 0.1
	done
	SCALE_TABLE=$("$WORK/bin/scale" -redis "redis://127.0.0.1:$SCALE_PORT/0" -sizes "$SCALE" 2>"$WORK/logs/scale.log") ||
		die "scale failed: $(tail -n 5 "$WORK/logs/scale.log")"
	stop "$SCALE_PID"
fi

# --- results ---------------------------------------------------------------

CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
MEM_TOTAL=$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || REV="$REV (with uncommitted changes)"
TABLE=$(
	echo "| scenario | req/s | p50 | p99 | req/s vs reverse_proxy | notes |"
	echo "|---|---:|---:|---:|---:|---|"
	for i in "${!R_LABEL[@]}"; do
		rps=— ratio=—
		if [ -n "${R_RPS[$i]}" ]; then
			rps=$(fmt_int "${R_RPS[$i]}")
			ratio=$(awk -v a="${R_RPS[$i]}" -v b="$PROXY_RPS" 'BEGIN {printf "%.3f", a / b}')
		fi
		echo "| ${R_LABEL[$i]} | $rps | ${R_P50[$i]} | ${R_P99[$i]} | $ratio | ${R_NOTES[$i]} |"
	done
)
{
	echo "# apiusers load harness results"
	echo
	echo "Made by \`bench/run.sh\` (\`make bench\`); all rows measured in the same run."
	echo
	echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "- machine: $(nproc) CPUs ($CPU_MODEL), $MEM_TOTAL memory, $(uname -sr)"
	echo "- load average (1, 5, 15 min) when the run started: $LOAD_AT_START; when it ended: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- $("$GO" version | sed 's/^go version //'), $(wrk --version 2>&1 | head -n 1 | awk '{print "wrk " $2}'), $(redis-server --version | awk '{print "Redis " $3}' | sed 's/v=//')"
	echo "- commit: $REV"
	echo "- wrk: $THREADS threads, $CONNECTIONS connections, $DURATION per run, GET $API_PATH over loopback; cache-hit scenarios run in their own processes side by side, warmed up ($WARMUP), then measured in turn for $REPEAT rounds; miss scenarios once each, on a fresh Caddy"
	echo "- upstream: \`bench/upstream\` (net/http, 12-byte JSON body), its own process; wrk, Caddy, the upstream and redis-server share the machine's CPUs"
	echo "- seeding with \`caddy apiusers seed\`: $(fmt_int "$USERS") users per store; file store ${SEED_FILE_RATE} users/s$TMPFS_NOTE, Redis ${SEED_REDIS_RATE} users/s, both at once"
	[ -n "$NOTE" ] && echo "- note: $NOTE"
	echo
	echo "$TABLE"
	if [ -n "$SCALE_TABLE" ]; then
		echo
		echo "## Scale (\`bench/scale\`, one workspace of a fresh Redis)"
		echo
		echo "At each size: a gateway miss is the first use of a key by a fresh cache (signature check and the one-round-trip principal load, \`authz.Service.Authenticate\`); a list page is 100 users from a cursor at a random user (\`ListUsers\`, what \`GET /workspaces/{ws}/users?limit=100\` does); 1,000 of each, keys and cursors drawn from every user seeded so far. Users are created as the admin API creates them (user, name index, key, two audit entries), 500 per transaction."
		echo
		echo "$SCALE_TABLE"
	fi
} >"$RESULTS"

echo
echo "$TABLE"
[ -n "$SCALE_TABLE" ] && echo && echo "$SCALE_TABLE"
echo
log "results written to $RESULTS"
