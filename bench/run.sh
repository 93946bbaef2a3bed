#!/usr/bin/env bash
# bench/run.sh — the load harness: `make bench` runs it after the Go
# benchmarks, or run it alone from anywhere (`bash bench/run.sh`).
#
# In one run, on this machine, over loopback only, it measures with wrk:
# the upstream alone; Caddy's plain reverse_proxy; the apiusers gateway in
# front of the same upstream on cache hits (file store, Redis), with
# `record`, and on many distinct keys (cache misses, both stores, against a
# reverse_proxy driven by the same wrk script), each in its own process,
# rounds interleaved, with each process's CPU time per request and RSS, in
# two GC modes (default and equalised); then a sign-in flood beside the
# gateway (and its control), the
# revocation propagation between two Caddy instances on one Redis, the
# memory a cached user costs, and the Redis memory a user costs. It prints
# one markdown table and writes it, with the machine it ran on, to
# bench/RESULTS.md.
#
# Everything runs in a temporary directory on free ports, and every process
# it starts (redis-server, the upstream, Caddy) is stopped when it exits.
#
# Environment (defaults in brackets):
#   BENCH_ONLY         all: everything above; flood: only the sign-in flood
#                      scenario (the file store alone, seeded with
#                      BENCH_USERS [1000] users; about two and a half minutes
#                      with the defaults), its three rows written to
#                      BENCH_RESULTS [all]
#   BENCH_DURATION     wrk duration of each measured run [10s]
#   BENCH_REPEAT       rounds of every wrk comparison; a row shows medians [3]
#   BENCH_WARMUP       wrk warm-up of each variant, not measured [2s]
#   BENCH_GC           the GC modes the wrk comparisons run in, in turn:
#                      default (Caddy's own settings) and equalised
#                      (GOGC=off GOMEMLIMIT=1GiB for every Caddy)
#                      [default,equalised]
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
#   BENCH_FLOOD_RATE   wrong sign-ins a second of the flood scenario [200]
#   BENCH_FLOOD_KEEPALIVE=1  the flood keeps each source address's
#                      connections for its next requests (else one a request)
#   BENCH_NOTE         a line added to the results (say what else ran)
#   BENCH_KEEP=1       keep the temporary directory (configs, logs, keys)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

ONLY=${BENCH_ONLY:-all}
case $ONLY in
all | flood) ;;
*)
	echo "bench: BENCH_ONLY must be all or flood, not '$ONLY'" >&2
	exit 2
	;;
esac
DURATION=${BENCH_DURATION:-10s}
REPEAT=${BENCH_REPEAT:-3}
WARMUP=${BENCH_WARMUP:-2s}
THREADS=${BENCH_THREADS:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
# The flood scenario measures cache hits of one key: the store's size does
# not enter it, so it seeds few users when it runs alone.
USERS_DEFAULT=100000
[ "$ONLY" = flood ] && USERS_DEFAULT=1000
USERS=${BENCH_USERS:-$USERS_DEFAULT}
ROUNDS=${BENCH_ROUNDS:-200}
SCALE=${BENCH_SCALE:-1000,100000}
[ "$ONLY" = flood ] && SCALE=none
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
"$GO" build -o "$WORK/bin/signinflood" ./bench/signinflood
"$GO" build -o "$WORK/bin/seed" ./bench/seed
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
# global_redis [extra option line]: the global options on Redis.
global_redis() {
	local extra=
	[ -n "${1:-}" ] && extra=$(printf '\t\t%s\n' "$1")
	printf '{\n\tadmin off\n\tdefault_bind 127.0.0.1\n\tapiusers {\n\t\tstore redis %s\n\t\tsigning_key {env.APIUSERS_BENCH_SIGNING_KEY}\n%s\t}\n}\n' "$REDIS_URL" "${extra:+$extra
}"
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

if [ "$ONLY" = flood ]; then
	log "seeding $USERS users with a key each in the file store"
else
	log "seeding $USERS users with a key each in the file store and in Redis"
fi
start seed-file "$WORK/bin/seed" --config "$WORK/seed-file.Caddyfile" --adapter caddyfile \
	--workspace "$WORKSPACE" --users "$USERS" --prefix load --keys-out "$WORK/keys-file.txt"
SEED_FILE_PID=$LAST_PID
REDIS_MEM_BEFORE=$(redis-cli -p "$REDIS_PORT" info memory | awk -F: '/^used_memory:/ {print $2+0}')
if [ "$ONLY" = all ] && ! "$WORK/bin/seed" --config "$WORK/redis-global.Caddyfile" --adapter caddyfile \
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
TMPFS_NOTE=
[ "$SEEDED_ON_TMPFS" = 1 ] && TMPFS_NOTE=" (seeded on tmpfs, then copied to disk)"
FILE_KEY=$(head -n 1 "$WORK/keys-file.txt")
if [ "$ONLY" = all ]; then
	SEED_REDIS_RATE=$(awk '/^seeded .* users\/s$/ {print $(NF-1)}' "$WORK/logs/seed-redis.log" | tail -n 1)
	log "seeded: file store ${SEED_FILE_RATE} users/s$TMPFS_NOTE, Redis ${SEED_REDIS_RATE} users/s"
	SEED_NOTE="file store ${SEED_FILE_RATE} users/s$TMPFS_NOTE, Redis ${SEED_REDIS_RATE} users/s, both at once"
	REDIS_KEY=$(head -n 1 "$WORK/keys-redis.txt")

	# A user with credits (10^12, never spent out) for the quota row, in Redis.
	"$WORK/bin/seed" --config "$WORK/redis-global.Caddyfile" --adapter caddyfile \
		--workspace "$WORKSPACE" --users 1 --prefix metered --credits 1000000000000 \
		--keys-out "$WORK/keys-credits.txt" 2>"$WORK/logs/seed-credits.log" ||
		die "seeding the user with credits failed: $(tail -n 3 "$WORK/logs/seed-credits.log")"
	CREDITS_KEY=$(head -n 1 "$WORK/keys-credits.txt")
else
	log "seeded: file store ${SEED_FILE_RATE} users/s$TMPFS_NOTE"
	SEED_NOTE="file store only (BENCH_ONLY=flood), ${SEED_FILE_RATE} users/s$TMPFS_NOTE"
fi

# --- wrk runs --------------------------------------------------------------

# The other rows (revocation, memory), rendered at the end.
R_LABEL=() R_P50=() R_P99=() R_NOTES=()

# row <label> <p50> <p99> <notes>
row() {
	R_LABEL+=("$1")
	R_P50+=("$2")
	R_P99+=("$3")
	R_NOTES+=("$4")
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

# median: prints the median of the numbers on stdin, one a line.
median() {
	sort -g | awk '{a[NR] = $1} END {if (NR == 0) exit 1; if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}

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

# CPU time comes from /proc/<pid>/stat (utime + stime, every thread of the
# process, in clock ticks), read before and after each measured run.
CLK_TCK=$(getconf CLK_TCK)

# cpu_ticks <pid...>: prints the CPU time the processes have used so far.
cpu_ticks() {
	local p f t=0
	for p in "$@"; do
		f=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null) || die "process $p is gone"
		# After "pid (comm) ", utime and stime are the 12th and 13th fields.
		t=$((t + $(awk '{print $12 + $13}' <<<"$f")))
	done
	echo "$t"
}

# rss_mib <pid>: prints the resident memory of a process in MiB.
rss_mib() { awk '/^VmRSS:/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

# Variants: the ways of serving /api/ping that the wrk runs compare. Each
# runs in a process of its own; the variants of a group are measured in
# turn, round after round, so that a change in the machine's load touches
# every variant of a round alike, and each variant is compared with its
# group's baseline in the same round (per-round ratios, and their median).
#
#   group hit:  every request carries the same key (-H), so the gateway
#               answers from its cache; baseline: plain reverse_proxy.
#   group miss: every request carries another seeded key (keys.lua), so
#               the gateway verifies a key and loads a principal each time;
#               baseline: plain reverse_proxy driven by the same script,
#               so wrk spends the same on both sides.
#
# variant <group> <name> <label> <Caddyfile or -> <url> <key or keys file>
#         <extra pids whose CPU counts> <fresh: 1 = a new process per round>
# A Caddyfile of "-" is a process that runs already (its pid is the extra
# pid; the upstream alone).
V_GROUP=() V_NAME=() V_LABEL=() V_CONF=() V_URL=() V_KEY=() V_EXTRA=() V_FRESH=() V_BASE=()
declare -A V_PID RES RSS0 RSS1
variant() {
	V_GROUP+=("$1")
	V_NAME+=("$2")
	V_LABEL+=("$3")
	V_CONF+=("$4")
	V_URL+=("$5")
	V_KEY+=("$6")
	V_EXTRA+=("$7")
	V_FRESH+=("$8")
	V_BASE+=(0)
}
# baseline: marks the last variant as its group's baseline.
baseline() { V_BASE[${#V_BASE[@]} - 1]=1; }

# site_conf <name> <global printer or -> <site printer> [site args...]:
# writes $WORK/<name>.Caddyfile on a free port and prints "path port".
site_conf() {
	local name=$1 global=$2 site=$3 port
	shift 3
	free_port port
	{
		if [ "$global" = - ]; then
			printf '{\n\tadmin off\n\tdefault_bind 127.0.0.1\n}\n'
		else
			$global
		fi
		$site "$port" "$@"
	} >"$WORK/$name.Caddyfile"
	echo "$WORK/$name.Caddyfile $port"
}

url_of() { echo "http://127.0.0.1:$1$API_PATH"; }

# The variants of the wrk comparisons (none when BENCH_ONLY=flood).
if [ "$ONLY" = all ]; then
	# The keys of the miss runs: the last WARM_KEYS lines of each keys file warm
	# a fresh Caddy up (and check it admits them); the measured runs use the
	# others.
	WARM_KEYS=$((USERS / 10 < 2000 ? USERS / 10 + 1 : 2000))
	for s in file redis; do
		head -n "-$WARM_KEYS" "$WORK/keys-$s.txt" >"$WORK/keys-$s-measured.txt"
		tail -n "$WARM_KEYS" "$WORK/keys-$s.txt" >"$WORK/keys-$s-warm.txt"
	done
	[ -s "$WORK/keys-file-measured.txt" ] || die "BENCH_USERS=$USERS leaves no keys to measure misses with"

	variant hit upstream "upstream alone (no Caddy; CPU: the upstream's)" - "$(url_of "$UP_PORT")" "$FILE_KEY" "$UP_PID" 0
	read -r conf port <<<"$(site_conf hit-proxy - proxy_site)"
	variant hit proxy "Caddy reverse_proxy (the baseline)" "$conf" "$(url_of "$port")" "$FILE_KEY" "" 0
	baseline
	read -r conf port <<<"$(site_conf hit-gateway-file global_file gateway_site)"
	variant hit gateway-file "apiusers + reverse_proxy, file store, cache hits" "$conf" "$(url_of "$port")" "$FILE_KEY" "" 0
	read -r conf port <<<"$(site_conf hit-gateway-redis global_redis gateway_site)"
	variant hit gateway-redis "apiusers + reverse_proxy, Redis, cache hits (CPU: Caddy + redis-server)" "$conf" "$(url_of "$port")" "$REDIS_KEY" "$REDIS_PID" 0
	# A rate limit (by user, never reached: every request is counted and
	# admitted) and credits (spent by every request): on Redis, where counts
	# and credits are the fleet's, so what they cost in Redis shows too.
	read -r conf port <<<"$(site_conf hit-gateway-ratelimit global_redis gateway_site 'rate_limit 1000000000 per 1s')"
	variant hit gateway-ratelimit "apiusers + a rate limit (by user, not reached) + reverse_proxy, Redis, cache hits (CPU: Caddy + redis-server)" "$conf" "$(url_of "$port")" "$REDIS_KEY" "$REDIS_PID" 0
	read -r conf port <<<"$(site_conf hit-gateway-credits global_redis gateway_site)"
	variant hit gateway-credits "apiusers + credits (a key's user with 10^12) + reverse_proxy, Redis, cache hits (CPU: Caddy + redis-server)" "$conf" "$(url_of "$port")" "$CREDITS_KEY" "$REDIS_PID" 0

	# record, when this build has it; on a copy of the file store (one process
	# holds a store file).
	RECORD_DIR=$WORK/file-store-record
	global_record() { global_file | sed "s|store file $FILE_DIR|store file $RECORD_DIR|"; }
	read -r conf port <<<"$(site_conf hit-gateway-record global_record gateway_site record)"
	RECORD_SKIPPED=
	if ./caddy adapt --config "$conf" --adapter caddyfile >/dev/null 2>"$WORK/logs/adapt-record.log"; then
		cp -a "$FILE_DIR" "$RECORD_DIR"
		variant hit gateway-record "apiusers + record + reverse_proxy, file store, cache hits" "$conf" "$(url_of "$port")" "$FILE_KEY" "" 0
	else
		RECORD_SKIPPED="skipped: \`./caddy adapt\` does not know \`record\` in this build ($(grep -m 1 -o 'record[^"]*' "$WORK/logs/adapt-record.log" | tr '|' '/'))"
	fi

	MEASURED_KEYS=$(wc -l <"$WORK/keys-file-measured.txt")
	read -r conf port <<<"$(site_conf miss-proxy - proxy_site)"
	variant miss proxy "Caddy reverse_proxy (the baseline), driven by the keys script" "$conf" "$(url_of "$port")" "$WORK/keys-file-measured.txt" "" 0
	baseline
	read -r conf port <<<"$(site_conf miss-gateway-file global_file gateway_site)"
	variant miss gateway-file "apiusers + reverse_proxy, file store, $(fmt_int "$MEASURED_KEYS") distinct keys (misses)" "$conf" "$(url_of "$port")" "$WORK/keys-file-measured.txt" "" 1
	read -r conf port <<<"$(site_conf miss-gateway-redis global_redis gateway_site)"
	variant miss gateway-redis "apiusers + reverse_proxy, Redis, $(fmt_int "$MEASURED_KEYS") distinct keys (misses; CPU: Caddy + redis-server)" "$conf" "$(url_of "$port")" "$WORK/keys-redis-measured.txt" "$REDIS_PID" 1
fi

# The GC settings of the Caddy processes, per mode. Without equalising, a
# process whose live heap is larger (reserved cache memory) collects less
# often and looks faster for it.
GC_MODES=${BENCH_GC:-default,equalised}
gc_env() {
	case $1 in
	default) echo ;;
	equalised) echo "GOGC=off GOMEMLIMIT=1GiB" ;;
	*) die "BENCH_GC: unknown mode '$1' (want default, equalised)" ;;
	esac
}
for mode in ${GC_MODES//,/ }; do gc_env "$mode" >/dev/null; done

# warm_key <v>: a key the variant admits without spending a measured one.
warm_key() {
	if [ "${V_GROUP[$1]}" = miss ]; then
		head -n 1 "${V_KEY[$1]%-measured.txt}-warm.txt"
	else
		echo "${V_KEY[$1]}"
	fi
}

# variant_start <v> <mode>: starts the variant's Caddy with the mode's GC
# settings, checks it, and records its RSS before any load.
variant_start() {
	local v=$1 mode=$2 name="${V_NAME[$1]}" url="${V_URL[$1]}" port k
	if [ "${V_CONF[$v]}" = - ]; then
		V_PID[$v]=${V_EXTRA[$v]}
		V_EXTRA[$v]=""
	else
		port=${url#http://127.0.0.1:}
		port=${port%%/*}
		# shellcheck disable=SC2046 # the GC settings are words
		start "caddy-${V_GROUP[$v]}-$name-$mode" env $(gc_env "$mode") ./caddy run --config "${V_CONF[$v]}" --adapter caddyfile
		V_PID[$v]=$LAST_PID
		wait_http "$LAST_PID" "caddy-${V_GROUP[$v]}-$name-$mode" "$url"
	fi
	RSS0[$mode,$v]=$(rss_mib "${V_PID[$v]}")
	k=$(warm_key "$v")
	[ "$(status "$url" "$k")" = 200 ] || die "${V_LABEL[$v]} refuses a seeded key"
	if [[ $name == gateway-* ]]; then
		[ "$(status "$url")" = 401 ] || die "${V_LABEL[$v]} admits a request without a key"
	fi
}

# variant_warm <v>: load that is not measured.
variant_warm() {
	local v=$1
	if [ "${V_GROUP[$v]}" = miss ]; then
		wrk -t "$THREADS" -c "$CONNECTIONS" -d "$WARMUP" -s bench/keys.lua "${V_URL[$v]}" -- "${V_KEY[$v]%-measured.txt}-warm.txt" "$THREADS" >/dev/null
	else
		wrk -t "$THREADS" -c "$CONNECTIONS" -d "$WARMUP" -H "Authorization: Bearer ${V_KEY[$v]}" "${V_URL[$v]}" >/dev/null
	fi
}

# variant_stop <v> <mode>: records the RSS after the load and stops the
# variant's Caddy.
variant_stop() {
	local v=$1 mode=$2
	RSS1[$mode,$v]=$(rss_mib "${V_PID[$v]}")
	if [ "${V_CONF[$v]}" = - ]; then
		V_EXTRA[$v]=${V_PID[$v]}
	else
		stop "${V_PID[$v]}"
	fi
}

# redis_commands: the commands Redis has executed (total_commands_processed:
# those clients sent and those scripts ran).
redis_commands() { redis-cli -p "$REDIS_PORT" info stats | awk -F: '/^total_commands_processed:/ {print $2+0}'; }

# measure <v> <mode> <round>: one measured wrk run; sets RES[mode,v,round] to
# "req/s p50 p99 requests errors cpu_us_per_request", and for a variant on
# Redis RCMDS[mode,v,round] to the Redis commands executed meanwhile.
declare -A RCMDS
measure() {
	local v=$1 mode=$2 r=$3 t0 t1 out c0=
	# shellcheck disable=SC2206 # extra pids are words
	local pids=("${V_PID[$v]}" ${V_EXTRA[$v]})
	local file="$WORK/logs/wrk-$mode-${V_GROUP[$v]}-${V_NAME[$v]}-$r.txt"
	[[ " ${V_EXTRA[$v]} " == *" $REDIS_PID "* ]] && c0=$(redis_commands)
	t0=$(cpu_ticks "${pids[@]}")
	if [ "${V_GROUP[$v]}" = miss ]; then
		out=$(run_wrk "$file" "${V_URL[$v]}" - "${V_KEY[$v]}")
	else
		out=$(run_wrk "$file" "${V_URL[$v]}" "${V_KEY[$v]}")
	fi
	t1=$(cpu_ticks "${pids[@]}")
	# The second INFO is not one of the run's (the first was counted).
	[ -n "$c0" ] && RCMDS[$mode,$v,$r]=$(($(redis_commands) - c0 - 1))
	[ -n "$out" ] || die "wrk failed on ${V_LABEL[$v]}"
	read -r _ _ _ reqs _ <<<"$out"
	RES[$mode,$v,$r]="$out $(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN {printf "%.1f", (n > 0 ? d * 1e6 / hz / n : 0)}')"
}

# run_group <mode> <group>: starts the group's variants, warms them up,
# measures REPEAT rounds (a fresh variant gets a new process, warmed up, in
# each round), stops them and appends the group's table to TABLES.
TABLES=
run_group() {
	local mode=$1 group=$2 v r i n order=() base=
	for v in "${!V_NAME[@]}"; do
		[ "${V_GROUP[$v]}" = "$group" ] || continue
		order+=("$v")
		[ "${V_BASE[$v]}" = 1 ] && base=$v
	done
	n=${#order[@]}
	for v in "${order[@]}"; do
		[ "${V_FRESH[$v]}" = 1 ] || variant_start "$v" "$mode"
	done
	for v in "${order[@]}"; do
		[ "${V_FRESH[$v]}" = 1 ] || { log "$mode GC, $group: warming up ${V_LABEL[$v]}"; variant_warm "$v"; }
	done
	for r in $(seq "$REPEAT"); do
		# Each round starts one variant further on, so none is always first.
		for i in $(seq 0 $((n - 1))); do
			v=${order[$(((i + r - 1) % n))]}
			if [ "${V_FRESH[$v]}" = 1 ]; then
				variant_start "$v" "$mode"
				variant_warm "$v"
			fi
			log "$mode GC, $group, round $r/$REPEAT: ${V_LABEL[$v]}"
			measure "$v" "$mode" "$r"
			[ "${V_FRESH[$v]}" = 1 ] && variant_stop "$v" "$mode"
		done
	done
	for v in "${order[@]}"; do
		[ "${V_FRESH[$v]}" = 1 ] || variant_stop "$v" "$mode"
	done
	TABLES+=$(group_table "$mode" "$group" "$base" "${order[@]}")$'\n\n'
}

# field <mode> <v> <column 1-6>: prints that column of every round.
field() {
	local r
	for r in $(seq "$REPEAT"); do
		echo "${RES[$1,$2,$r]}" | cut -d' ' -f"$3"
	done
}

# group_table <mode> <group> <baseline> <v...>: the group's markdown table.
group_table() {
	local mode=$1 group=$2 base=$3 v r
	shift 3
	local title="cache hits (one key)"
	[ "$group" = miss ] && title="cache misses (another key with every request)"
	echo "### $title, GC $mode"
	echo
	echo "| variant | req/s | p50 | p99 | CPU µs/req | req/s vs baseline | extra CPU µs/req | RSS MiB before → after | per round (req/s ratio; extra CPU µs) | notes |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"
	for v in "$@"; do
		local rps p50 p99 cpu ratio=— extra=— rounds=— notes="" errs reqs
		rps=$(field "$mode" "$v" 1 | median | awk '{printf "%.0f", $1}')
		p50=$(field "$mode" "$v" 2 | median | awk '{printf "%.2f", $1}')
		p99=$(field "$mode" "$v" 3 | median | awk '{printf "%.2f", $1}')
		cpu=$(field "$mode" "$v" 6 | median | awk '{printf "%.1f", $1}')
		errs=$(field "$mode" "$v" 5 | awk '{e += $1} END {print e + 0}')
		if [ "${V_CONF[$v]}" != - ]; then
			local ratios=() extras=() a b
			for r in $(seq "$REPEAT"); do
				read -r a _ _ _ _ ca <<<"${RES[$mode,$v,$r]}"
				read -r b _ _ _ _ cb <<<"${RES[$mode,$base,$r]}"
				ratios+=("$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f", a / b}')")
				extras+=("$(awk -v a="$ca" -v b="$cb" 'BEGIN {printf "%+.1f", a - b}')")
			done
			ratio=$(printf '%s\n' "${ratios[@]}" | median | awk '{printf "%.3f", $1}')
			extra=$(printf '%s\n' "${extras[@]}" | median | awk '{printf "%+.1f", $1}')
			rounds=$(for i in "${!ratios[@]}"; do printf '%s; %s\n' "${ratios[$i]}" "${extras[$i]}"; done | paste -sd/ | sed 's|/| / |g')
		fi
		if [ "$group" = miss ]; then
			reqs=$(field "$mode" "$v" 4 | sort -n | tail -n 1)
			if [ "$reqs" -le "$MEASURED_KEYS" ]; then
				notes="every request a key's first use (at most $(fmt_int "$reqs") requests a round, $(fmt_int "$MEASURED_KEYS") keys)"
			else
				notes="the keys came round again (up to $(fmt_int "$reqs") requests a round, $(fmt_int "$MEASURED_KEYS") keys)"
			fi
			[ "${V_FRESH[$v]}" = 1 ] && notes+="; a new process each round (RSS: the last round's)"
		fi
		if [ -n "${RCMDS[$mode,$v,1]:-}" ]; then
			local cmds=() per
			for r in $(seq "$REPEAT"); do cmds+=("${RCMDS[$mode,$v,$r]}"); done
			reqs=$(field "$mode" "$v" 4 | median | awk '{printf "%.0f", $1}')
			per=$(printf '%s\n' "${cmds[@]}" | median | awk -v n="$reqs" '{printf "%.2f", (n > 0 ? $1 * 1000 / n : 0)}')
			notes+="${notes:+; }Redis commands executed during a run (sent and inside scripts): $(printf '%s\n' "${cmds[@]}" | paste -sd/ | sed 's|/| / |g'), $per per 1,000 requests"
		fi
		[ "$errs" != 0 ] && notes+="${notes:+; }$errs errors or answers not 2xx"
		echo "| ${V_LABEL[$v]} | $(fmt_int "$rps") | $p50 ms | $p99 ms | $cpu | $ratio | $extra | ${RSS0[$mode,$v]} → ${RSS1[$mode,$v]} | $rounds | $notes |"
	done
	[ "$group" = hit ] && [ -n "$RECORD_SKIPPED" ] && echo "| apiusers + record + reverse_proxy | — | — | — | — | — | — | — | — | $RECORD_SKIPPED |"
	return 0
}

if [ "$ONLY" = all ]; then
	for mode in ${GC_MODES//,/ }; do
		for group in hit miss; do
			run_group "$mode" "$group"
		done
	done
fi

# --- a sign-in flood next to the gateway -----------------------------------

# One Caddy serves the gateway and the admin API (on a copy of the file
# store). Each round runs cache-hit wrk three times: alone; while
# bench/signinflood sends BENCH_FLOOD_RATE requests a second like the
# flood's but without an email (the control: the admin API answers them
# 400 before it counts, reads or hashes anything, so what they take from
# the gateway is what handling that many requests costs); and while it
# sends BENCH_FLOOD_RATE wrong sign-ins a second for unknown emails from
# ever other loopback addresses (so that no throttle spares the hashing).
# The figure is the sign-in flood rows' req/s over the quiet rows' (target
# ≥ 0.9); the control's ratio is the most the sign-in flood could reach.
# BENCH_FLOOD_KEEPALIVE=1 has each source address's connections carry its
# next requests (by default every request has a connection of its own).
FLOOD_RATE=${BENCH_FLOOD_RATE:-200}
FLOOD_KEEPALIVE=${BENCH_FLOOD_KEEPALIVE:-0}
FLOOD_SECS=12
[[ $DURATION =~ ^([0-9]+)s$ ]] && FLOOD_SECS=$((BASH_REMATCH[1] + 2))
FLOOD_ARGS=()
FLOOD_CONNS="a connection of its own for every request"
if [ "$FLOOD_KEEPALIVE" = 1 ]; then
	FLOOD_ARGS+=(-keep-alive)
	FLOOD_CONNS="each source address's connections kept for its next requests"
fi
FLOOD_DIR=$WORK/file-store-flood
cp -a "$FILE_DIR" "$FLOOD_DIR"
free_port P
{
	global_file | sed "s|store file $FILE_DIR|store file $FLOOD_DIR|"
	printf 'http://:%s {\n\thandle_path /admin/* {\n\t\tapiusers_admin\n\t}\n\thandle %s {\n\t\tapiusers {\n\t\t\trequire listeners.invoke\n\t\t}\n\t\treverse_proxy 127.0.0.1:%s\n\t}\n}\n' \
		"$P" "$API_PATH" "$UP_PORT"
} >"$WORK/gateway-flood.Caddyfile"
caddy_start caddy-gateway-flood "$WORK/gateway-flood.Caddyfile" "$P"
FLOOD_CADDY=$CADDY_PID
[ "$(status "http://127.0.0.1:$P$API_PATH" "$FILE_KEY")" = 200 ] || die "the flood scenario's gateway refuses a seeded key"
log "warming up: the gateway of the flood scenario"
wrk -t "$THREADS" -c "$CONNECTIONS" -d "$WARMUP" -H "Authorization: Bearer $FILE_KEY" "http://127.0.0.1:$P$API_PATH" >/dev/null
# RUN[kind,r] is the wrk result of round r of kind quiet, control or flood;
# CPU[kind,r] Caddy's CPU ticks during it, CLIENT[kind,r] the flood
# client's until then (from its start, a second before wrk's), OUT[kind,r]
# how the flood's requests were answered.
declare -A RUN CPU CLIENT OUT
FLOOD_NEXT=1
# flood_round <kind> <r>: one measured wrk run, alone (quiet) or beside a
# flood of its kind; every flood's emails and source addresses are new
# (-first), so that none meets the throttle counts of the ones before.
flood_round() {
	local kind=$1 r=$2 t0 fpid= args=("${FLOOD_ARGS[@]+"${FLOOD_ARGS[@]}"}")
	if [ "$kind" != quiet ]; then
		[ "$kind" = control ] && args+=(-control)
		"$WORK/bin/signinflood" -url "http://127.0.0.1:$P/admin/login" -rate "$FLOOD_RATE" -duration "${FLOOD_SECS}s" \
			-first "$FLOOD_NEXT" "${args[@]+"${args[@]}"}" >"$WORK/logs/flood-$kind-$r.txt" 2>&1 &
		fpid=$!
		FLOOD_NEXT=$((FLOOD_NEXT + FLOOD_RATE * FLOOD_SECS))
		sleep 1
	fi
	t0=$(cpu_ticks "$FLOOD_CADDY")
	RUN[$kind,$r]=$(run_wrk "$WORK/logs/wrk-$kind-$r.txt" "http://127.0.0.1:$P$API_PATH" "$FILE_KEY")
	CPU[$kind,$r]=$(($(cpu_ticks "$FLOOD_CADDY") - t0))
	if [ -n "$fpid" ]; then
		CLIENT[$kind,$r]=$(cpu_ticks "$fpid" 2>/dev/null || echo 0)
		wait "$fpid" || die "signinflood failed: $(tail -n 3 "$WORK/logs/flood-$kind-$r.txt")"
		OUT[$kind,$r]=$(tail -n 1 "$WORK/logs/flood-$kind-$r.txt")
	fi
}
for r in $(seq "$REPEAT"); do
	log "round $r/$REPEAT: cache hits, no flood"
	flood_round quiet "$r"
	log "round $r/$REPEAT: cache hits while $FLOOD_RATE requests/s without an email (the control) reach POST /admin/login"
	flood_round control "$r"
	log "round $r/$REPEAT: cache hits while $FLOOD_RATE wrong sign-ins/s flood POST /admin/login"
	flood_round flood "$r"
done
stop "$FLOOD_CADDY"
# flood_median <kind>: the round with the median req/s.
flood_median() {
	for r in $(seq "$REPEAT"); do echo "${RUN[$1,$r]}"; done | sort -n -k1,1 | sed -n "$(((REPEAT + 1) / 2))p"
}
# flood_rounds <kind>: each round's req/s over the quiet run's, Caddy's CPU
# seconds (every thread) in the quiet run and in this one, and the client's.
flood_rounds() {
	for r in $(seq "$REPEAT"); do
		read -r q _ <<<"${RUN[quiet,$r]}"
		read -r l _ <<<"${RUN[$1,$r]}"
		awk -v l="$l" -v q="$q" -v cq="${CPU[quiet,$r]}" -v cl="${CPU[$1,$r]}" -v cc="${CLIENT[$1,$r]}" -v hz="$CLK_TCK" \
			'BEGIN {printf "%.3f; %.1f → %.1f s, client %.1f s\n", l / q, cq / hz, cl / hz, cc / hz}'
	done | paste -sd/ | sed 's|/| / |g'
}
flood_answers() { for r in $(seq "$REPEAT"); do echo "${OUT[$1,$r]}"; done | paste -sd/ | sed 's|/| / |g'; }
read -r Q_RPS Q_P50 Q_P99 _ _ <<<"$(flood_median quiet)"
read -r C_RPS C_P50 C_P99 _ _ <<<"$(flood_median control)"
read -r L_RPS L_P50 L_P99 _ _ <<<"$(flood_median flood)"
CONTROL_RATIO=$(awk -v a="$C_RPS" -v b="$Q_RPS" 'BEGIN {printf "%.3f", a / b}')
FLOOD_RATIO=$(awk -v a="$L_RPS" -v b="$Q_RPS" 'BEGIN {printf "%.3f", a / b}')
row "gateway cache hits (file store, admin API mounted), no flood" "$Q_P50 ms" "$Q_P99 ms" \
	"$(fmt_int "$Q_RPS") req/s, median of $REPEAT rounds, in turn with the two rows below on the same Caddy"
row "the same while $FLOOD_RATE requests/s without an email reach POST /admin/login (the control: 400, nothing counted, read or hashed)" "$C_P50 ms" "$C_P99 ms" \
	"$(fmt_int "$C_RPS") req/s, median of $REPEAT rounds: $CONTROL_RATIO of the quiet row, what the requests alone cost; $FLOOD_CONNS; per round (req/s ratio; Caddy's CPU quiet → control, the client's): $(flood_rounds control); answers: $(flood_answers control)"
row "the same while $FLOOD_RATE wrong sign-ins/s flood POST /admin/login" "$L_P50 ms" "$L_P99 ms" \
	"$(fmt_int "$L_RPS") req/s, median of $REPEAT rounds: **$FLOOD_RATIO of the quiet row** (target ≥ 0.9); $FLOOD_CONNS; per round (req/s ratio; Caddy's CPU quiet → flood, the client's): $(flood_rounds flood); answers: $(flood_answers flood)"

# --- revocation propagation ------------------------------------------------

# Revocation and memory (not when BENCH_ONLY=flood).
if [ "$ONLY" = all ]; then
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
	# The probe ends each round on B's first 401 for the revoked key, from one
	# address: 200 rounds are 200 failed authentications, which the failed-auth
	# throttle (100 a minute by default) would answer 429 from round 100 on.
	{
		global_redis "auth_failures off"
		fleet_site "$PA"
	} >"$WORK/fleet-a.Caddyfile"
	{
		global_redis "auth_failures off"
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
	row "revocation on A seen on B (2 instances, one Redis; $(kv "$PROP" rounds) revocations)" "$(kv "$PROP" p50_ms) ms" "$(kv "$PROP" p99_ms) ms" \
		"max $(kv "$PROP" max_ms) ms; $(kv "$PROP" failures) failed rounds; from A's answer to the revocation to B's first 401"

	# Memory: the heap a cached user costs, and Redis memory per user.

	log "measuring the memory of $(fmt_int "$USERS") cached users"
	MEM=$("$WORK/bin/cachemem" -store "$FILE_DIR" -keys "$WORK/keys-file.txt" 2>"$WORK/logs/cachemem.log") ||
		die "cachemem failed: $(tail -n 5 "$WORK/logs/cachemem.log")"
	PB_BYTES=$(kv "$MEM" principal_bytes)
	KB_BYTES=$(kv "$MEM" key_bytes)
	UB_BYTES=$(kv "$MEM" user_bytes)
	row "Go heap per cached user ($(fmt_int "$(kv "$MEM" cached)") of $(fmt_int "$(kv "$MEM" users)") users cached, file store)" — — \
		"$(fmt_int "$PB_BYTES") B per principal + $(fmt_int "$KB_BYTES") B per verified key = $(fmt_int "$UB_BYTES") B per user: $(awk -v b="$UB_BYTES" 'BEGIN {printf "%.1f", b * 100000 / 1048576}') MiB per 100,000 cached users"
	REDIS_PER_USER=$(((REDIS_MEM_AFTER - REDIS_MEM_BEFORE) / USERS))
	row "Redis used_memory per seeded user ($(fmt_int "$USERS") users)" — — \
		"$(fmt_int "$REDIS_PER_USER") B per user (the user, its name index entry, its key, 2 audit entries): $(awk -v b="$REDIS_PER_USER" 'BEGIN {printf "%.1f", b * 100000 / 1048576}') MiB per 100,000 users"
fi

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
	echo "| measurement | p50 | p99 | notes |"
	echo "|---|---:|---:|---|"
	for i in "${!R_LABEL[@]}"; do
		echo "| ${R_LABEL[$i]} | ${R_P50[$i]} | ${R_P99[$i]} | ${R_NOTES[$i]} |"
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
	echo "- wrk: $THREADS threads, $CONNECTIONS connections, $DURATION per run, GET $API_PATH over loopback"
	if [ "$ONLY" = all ]; then
		echo "- method: every variant runs in a Caddy process of its own; a group's variants are measured in turn, $REPEAT rounds, each round starting one variant further on; hit variants are started together and warmed up ($WARMUP) first, miss variants get a new process (warmed up on $(fmt_int "$WARM_KEYS") keys kept apart) every round; a row shows the median over the rounds of each column, and of the per-round ratio (req/s) and difference (CPU) to the baseline measured in the same round"
		echo "- CPU µs/req: the user + system time of the variant's Caddy process (and of redis-server for Redis variants) during the wrk run, from /proc/<pid>/stat, divided by the requests wrk counted; RSS is VmRSS before the first request and after the last"
		echo "- GC modes: default (Caddy's own settings); equalised (\`GOGC=off GOMEMLIMIT=1GiB\` for every Caddy process, so that no process collects more or less often because of its live heap)"
	fi
	echo "- upstream: \`bench/upstream\` (net/http, 12-byte JSON body), its own process; wrk, Caddy, the upstream and redis-server share the machine's CPUs"
	echo "- seeding with \`bench/seed\`: $(fmt_int "$USERS") users per store; $SEED_NOTE"
	[ -n "$NOTE" ] && echo "- note: $NOTE"
	[ "$ONLY" = flood ] && echo "- BENCH_ONLY=flood: the sign-in flood scenario alone (no wrk comparisons, revocation, memory or scale)"
	echo
	if [ "$ONLY" = all ]; then
		echo "## The wrk runs"
		echo
		echo "$TABLES"
		echo "## Revocation and memory"
	else
		echo "## The sign-in flood"
	fi
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
echo "$TABLES"
echo "$TABLE"
[ -n "$SCALE_TABLE" ] && echo && echo "$SCALE_TABLE"
echo
log "results written to $RESULTS"
