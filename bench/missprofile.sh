#!/usr/bin/env bash
# missprofile.sh: where the CPU of a gateway cache miss (or hit) goes, in
# one Caddy.
#
#   bench/missprofile.sh <file|redis|hit> [users] [out dir]
#
# hit is the file store with one key used by every request: cache hits.
# One Caddy process serves plain reverse_proxy on one port and the gateway
# (apiusers + reverse_proxy) on another, both before bench/upstream, both
# driven at once by wrk with bench/keys.lua over the same seeded keys (so
# every gateway request is a key's first use: a miss), GOGC=off
# GOMEMLIMIT=1GiB. A 15 s CPU profile from Caddy's admin endpoint covers
# both routes; each sample goes in one bucket by its stack (go tool pprof
# -traces), and a bucket's time is divided by the requests of its route in
# the profile's window. Buckets of the gateway (key verification, the store
# read, decoding, cache admission, the rest of its handler, the
# last_used_at writer, the Redis client's senders, reverse_proxy behind the
# gateway) against plain reverse_proxy's; what runs outside any handler
# (connections, the runtime) is shared and shown per request of both.
# redis-server's CPU (from /proc/<pid>/stat over the whole wrk run) is
# given per gateway request. reverse_proxy's eager request log (it encodes
# the whole request, every header, into a logger on every round trip,
# whatever the log level: zap's Logger.With in reverseProxy) is shown
# apart, behind the gateway and plain. users: how many to seed (default 80000, or 4,000
# a second of the wrk run when that is more). PROFILE_SECONDS (15) sets how long the
# profile runs (wrk runs 3 s longer): the profile samples at 100 Hz, so a
# part of a few µs needs a minute or more to be read to ±10%.
# NO_PROXY_LOG=1 leaves reverse_proxy out of Caddy's default log (`log
# default { exclude http.handlers.reverse_proxy }`), which takes its eager
# request log away. The profile, the binary and wrk's
# output are kept in out dir when one is given.
#
# Needs go, wrk, curl, and redis-server for the Redis store.
set -euo pipefail
STORE=${1:?usage: bench/missprofile.sh <file|redis|hit> [users] [out dir]}
OUT=${3:-}
WHAT=miss
PS=${PROFILE_SECONDS:-15}
# Enough keys for the whole wrk run (PS + 3 s) at 4,000 misses a second.
USERS=${2:-$(( (PS + 3) * 4000 > 80000 ? (PS + 3) * 4000 : 80000 ))}
PROXYLOG=
[ -n "${NO_PROXY_LOG:-}" ] && PROXYLOG=$'\tlog default {\n\t\texclude http.handlers.reverse_proxy\n\t}'
case "$STORE" in
file | redis) ;;
hit) STORE=file WHAT=hit USERS=${2:-1000} ;;
*) echo "the first argument must be file, redis or hit" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
W=$(mktemp -d "${TMPDIR:-/tmp}/apiusers-missprofile.XXXXXX")
[ -d /dev/shm ] && W2=$(mktemp -d /dev/shm/apiusers-missprofile.XXXXXX) || W2=$W
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$W" "$W2"
}
trap cleanup EXIT INT TERM
go build -o "$W/caddy" ./cmd/caddy
go build -o "$W/seed" ./bench/seed
go build -o "$W/upstream" ./bench/upstream
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])' 2>/dev/null ||
	echo $((20000 + RANDOM % 20000)); }
UP=$(free_port) P=$(free_port) G=$(free_port) A=$(free_port)
"$W/upstream" -addr "127.0.0.1:$UP" & PIDS+=($!)
APIUSERS_BENCH_SIGNING_KEY=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
export APIUSERS_BENCH_SIGNING_KEY
RPID=
if [ "$STORE" = redis ]; then
	RP=$(free_port)
	redis-server --port "$RP" --bind 127.0.0.1 --dir "$W" --save '' --appendonly no >/dev/null & RPID=$!
	PIDS+=($RPID)
	sleep 0.5
	STORELINE="store redis redis://127.0.0.1:$RP
		signing_key {env.APIUSERS_BENCH_SIGNING_KEY}"
else
	STORELINE="store file $W2/store"
fi
printf '{\n\tadmin off\n\tapiusers {\n\t\t%s\n\t}\n}\n' "$STORELINE" >"$W/seed.Caddyfile"
echo "seeding $USERS users ($STORE store)" >&2
"$W/seed" --config "$W/seed.Caddyfile" --adapter caddyfile --workspace bench --users "$USERS" \
	--prefix load --keys-out "$W/keys.txt" 2>"$W/seed.log"
if [ "$WHAT" = hit ]; then
	head -n 1 "$W/keys.txt" >"$W/warm.txt"
	cp "$W/warm.txt" "$W/measured.txt"
else
	head -n 500 "$W/keys.txt" >"$W/warm.txt"
	tail -n +501 "$W/keys.txt" >"$W/measured.txt"
fi
cat >"$W/Caddyfile" <<CF
{
	admin 127.0.0.1:$A
	default_bind 127.0.0.1
$PROXYLOG
	apiusers {
		$STORELINE
	}
}
http://:$P {
	reverse_proxy 127.0.0.1:$UP
}
http://:$G {
	apiusers {
		require listeners.invoke
	}
	reverse_proxy 127.0.0.1:$UP
}
CF
GOGC=off GOMEMLIMIT=1GiB "$W/caddy" run --config "$W/Caddyfile" --adapter caddyfile >"$W/caddy.log" 2>&1 &
CPID=$!
PIDS+=($CPID)
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$P/" && break; sleep 0.2; done
wrk -t1 -c8 -d3s -s bench/keys.lua "http://127.0.0.1:$G/api/ping" -- "$W/warm.txt" 1 >/dev/null
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
R0=0
if [ -n "$RPID" ]; then
	R0=$(ticks "$RPID")
	redis-cli -p "$RP" CONFIG RESETSTAT >/dev/null
fi
wrk -t1 -c32 -d"$((PS + 3))s" -s bench/keys.lua "http://127.0.0.1:$P/api/ping" -- "$W/measured.txt" 1 >"$W/wrk-proxy.txt" &
WP=$!
wrk -t1 -c32 -d"$((PS + 3))s" -s bench/keys.lua "http://127.0.0.1:$G/api/ping" -- "$W/measured.txt" 1 >"$W/wrk-gateway.txt" &
WG=$!
sleep 1
curl -s -o "$W/cpu.pprof" "http://127.0.0.1:$A/debug/pprof/profile?seconds=$PS"
wait "$WP" "$WG"
R1=0
if [ -n "$RPID" ]; then
	R1=$(ticks "$RPID")
	redis-cli -p "$RP" INFO commandstats | tr -d '\r' >"$W/commandstats.txt"
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
requests() { awk '/requests in/ {print $1}' "$1"; }
RQP=$(requests "$W/wrk-proxy.txt") RQG=$(requests "$W/wrk-gateway.txt")
[ "${RQP:-0}" -gt 0 ] && [ "${RQG:-0}" -gt 0 ] || { echo "wrk made no requests:" >&2; cat "$W/wrk-proxy.txt" "$W/wrk-gateway.txt" >&2; exit 1; }
grep -q 'Non-2xx' "$W/wrk-gateway.txt" && { echo "the gateway refused requests:" >&2; cat "$W/wrk-gateway.txt" >&2; exit 1; }
[ "$WHAT" = hit ] || [ "$(wc -l <"$W/measured.txt")" -gt "$RQG" ] || echo "warning: the keys ran out; raise users" >&2
echo "$WHAT, store $STORE; requests: plain $RQP, gateway $RQG in $((PS + 3)) s; load average $LOAD_BEFORE before, $LOAD_AFTER after"
go tool pprof -traces "$W/caddy" "$W/cpu.pprof" 2>/dev/null | awk -v ps="$PS" -v rp="$RQP" -v rg="$RQG" -v rt="$((R1 - R0))" -v what="$WHAT" '
function ms(v) {
	if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
	if (v ~ /(us|µs)$/) { sub(/(us|µs)$/, "", v); return v / 1000 }
	if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
	return v + 0
}
function has(x) { return index(st, x) > 0 }
function flush() {
	if (t == 0) return
	if (has("authz.(*Service).writeTouches") || has("authz.(*Service).startTouches")) b["gw: last_used_at writes (writer goroutine)"] += t
	else if (has("module.(*Gateway).ServeHTTP")) {
		if (has("reverseproxy.(*Handler).ServeHTTP")) {
			b["gw: reverse_proxy behind the gateway"] += t
			if (has("zap.(*Logger).With")) r["gw"] += t
		}
		else if (has("authz.(*Signer).Verify")) b["gw: key verification (Signer.Verify)"] += t
		else if (has("LoadPrincipal")) b["gw: store read (LoadPrincipal)"] += t
		else if (has("authz.BuildPrincipal")) b["gw: decoding (BuildPrincipal)"] += t
		else if (has("(*Cache).setVerified") || has("(*Cache).link") || has("(*Cache).store")) b["gw: cache admission"] += t
		else b["gw: the rest of the handler"] += t
	} else if (has("reverseproxy.(*Handler).ServeHTTP")) {
		b["plain: reverse_proxy"] += t
		if (has("zap.(*Logger).With")) r["plain"] += t
	}
	else if (has("redisstore.(*Store).sendLoads")) b["gw: the Redis store sending loads (its senders)"] += t
	else b["shared: outside any handler"] += t
	t = 0; st = ""
}
/^-+\+-+$/ { flush(); next }
/^ +[0-9.]+(ms|s|us|µs) / { flush(); t = ms($1); $1 = ""; st = $0; next }
t > 0 { st = st "\n" $0 }
END {
	flush()
	w = ps / (ps + 3) # the profile covers ps of the ps + 3 s wrk runs
	for (k in b) {
		n = (k ~ /^gw/) ? rg * w : (k ~ /^plain/) ? rp * w : (rp + rg) * w
		printf "%-52s %8.0f ms %8.2f µs/request\n", k, b[k], b[k] * 1000 / n | "sort"
		if (k ~ /^gw/ && k !~ /reverse_proxy/) extra += b[k] * 1000 / (rg * w)
	}
	close("sort")
	over = b["gw: reverse_proxy behind the gateway"] * 1000 / (rg * w) - b["plain: reverse_proxy"] * 1000 / (rp * w)
	printf "reverse_proxy behind the gateway over plain: %+.2f µs/request\n", over
	printf "  of which its request log (Logger.With): %.2f behind the gateway, %.2f plain: %+.2f µs/request\n", r["gw"] * 1000 / (rg * w), r["plain"] * 1000 / (rp * w), r["gw"] * 1000 / (rg * w) - r["plain"] * 1000 / (rp * w)
	if (rt > 0) printf "redis-server: %.1f µs per gateway request\n", rt * 10000 / rg
	printf "extra CPU per %s: %.1f µs in Caddy", what, extra + over
	if (rt > 0) printf ", %.1f µs with redis-server", extra + over + rt * 10000 / rg
	printf "\n"
}'
if [ -n "$RPID" ]; then
	# What redis-server spent inside each command (its own accounting,
	# without the event loop and the system calls around it), per gateway
	# request; a script's inner commands are counted in their own rows too.
	echo "redis-server's commands, per gateway request (INFO commandstats):"
	awk -F'[:,=]' -v rg="$RQG" '/^cmdstat_/ {
		sub(/^cmdstat_/, "", $1)
		printf "  %-16s %8.3f calls %8.2f µs inside (%.2f µs a call)\n", $1, $3 / rg, $5 / rg, $7
	}' "$W/commandstats.txt"
fi
if [ -n "$OUT" ]; then
	mkdir -p "$OUT"
	cp "$W/caddy" "$W/cpu.pprof" "$W/wrk-proxy.txt" "$W/wrk-gateway.txt" "$OUT/"
fi
