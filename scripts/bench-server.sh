#!/usr/bin/env bash
# Server benchmark: each figure is a ratio to nginx serving the same bytes as static files,
# measured in the same run on loopback with wrk (Debian packages `wrk` and `nginx-light`).
#
#   scripts/bench-server.sh            # concurrency 16 and 64, 10 s per measurement
#   DURATION=5s scripts/bench-server.sh
#
# Workloads (docs/BENCHMARKS.md explains them):
#   legacy   GET /api/inverter/fota/chunk?chunk_number=N (random N of a 1 MiB image in
#            16 KiB chunks)           vs nginx serving the same JSON answers as files
#   ranged   GET /api/v2/device/blobs/SHA with Range: 16 KiB at a random chunk offset
#                                      vs nginx serving the image file with the same ranges
#   checkin  POST /api/v2/device/checkin from 10,000 provisioned devices (round robin)
#                                      vs nginx serving a small static file (one real answer)
# and the server's peak RSS (VmHWM) over the whole run.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
DEVICES=${DEVICES:-10000}
THREADS=${THREADS:-2}

need() { command -v "$1" >/dev/null || { echo "missing $1: apt-get install -y wrk nginx-light" >&2; exit 1; }; }
need wrk
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "missing nginx: apt-get install -y nginx-light" >&2; exit 1; }

cargo build --release --locked -q -p fota-cli
FOTA=target/release/fota
# the setup step is a bench target of fota-server (crates/fota-server/benches/bench_setup.rs)
cargo bench --locked -q -p fota-server --bench bench_setup --no-run

work=$(mktemp -d)
server_pid=""; nginx_started=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    [ -n "$nginx_started" ] && "$NGINX" -p "$work/nginx" -c "$work/nginx/nginx.conf" -s stop 2>/dev/null || true
    if [ -n "${KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

"$FOTA" keys init --dir "$work/keys" --no-passphrase >/dev/null 2>&1
# the poll hint does not matter here; a long flush interval keeps the batch writer out of the way
mkdir -p "$work/data"
printf '[housekeeping]\nseen_flush = "1s"\n' > "$work/data/fota.toml"
admin=$(head -c 32 /dev/urandom | base64)
FOTA_ADMIN_TOKEN=$admin FOTA_LEGACY_PSK='your-32-byte-secret-key-here!!' RUST_LOG=warn \
    "$FOTA" server --data "$work/data" --listen 127.0.0.1:0 \
    --root "$work/keys/root.bin" --status-key "$work/keys/status.key" > "$work/server.out" 2>"$work/server.err" &
server_pid=$!
for _ in $(seq 100); do grep -q listening "$work/server.out" 2>/dev/null && break; sleep 0.1; done
url=$(head -1 "$work/server.out" | sed 's/^listening on //')
echo "server $url (pid $server_pid), preparing $DEVICES devices ..."
cargo bench --locked -q -p fota-server --bench bench_setup -- "$url" "$admin" "$work/keys" "$work/out" "$DEVICES"

# nginx with the same files
mkdir -p "$work/nginx/logs" "$work/nginx/www/chunk"
cp "$work/out/chunks/"*.json "$work/nginx/www/chunk/"
cp "$work/out/image.bin" "$work/nginx/www/image.bin"
cp "$work/out/answer.bin" "$work/nginx/www/answer.bin"
# nginx workers run unprivileged: let them read the files
chmod 755 "$work" "$work/nginx"
chmod -R a+rX "$work/nginx/www"
nginx_port=$((20000 + RANDOM % 20000))
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes 2;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$nginx_port;
        root $work/nginx/www;
        location /chunk/ { default_type application/json; }
        location = /answer.bin { }
    }
}
CONF
"$NGINX" -p "$work/nginx" -c "$work/nginx/nginx.conf"
nginx_started=1
nginx="http://127.0.0.1:$nginx_port"

total=$(cat "$work/out/total_chunks")
token=$(cat "$work/out/device_token")
blob=$(cat "$work/out/blob_path")

cat > "$work/legacy.lua" <<LUA
math.randomseed(42)
request = function()
  return wrk.format("GET", "/api/inverter/fota/chunk?chunk_number=" .. math.random(0, $total - 1))
end
LUA
cat > "$work/legacy_nginx.lua" <<LUA
math.randomseed(42)
request = function()
  return wrk.format("GET", "/chunk/" .. math.random(0, $total - 1) .. ".json")
end
LUA
cat > "$work/ranged.lua" <<LUA
math.randomseed(42)
local path = "@PATH@"
request = function()
  local c = math.random(0, $total - 1)
  local a = c * 16384
  return wrk.format("GET", path, { ["Authorization"] = "Bearer $token",
    ["Range"] = "bytes=" .. a .. "-" .. (a + 16383) })
end
LUA
cat > "$work/checkin.lua" <<'LUA'
local devices = {}
local function unhex(h) return (h:gsub("..", function(x) return string.char(tonumber(x, 16)) end)) end
for line in io.lines(os.getenv("CHECKINS")) do
  local t, b = line:match("(%S+) (%S+)")
  devices[#devices + 1] = { "Bearer " .. t, unhex(b) }
end
local i = 0
request = function()
  i = i % #devices + 1
  local d = devices[i]
  return wrk.format("POST", "/api/v2/device/checkin",
    { ["Authorization"] = d[1], ["Content-Type"] = "application/octet-stream" }, d[2])
end
LUA
: > "$work/plain.lua"
# the Lua script gets the path as a literal
sed "s#@PATH@#$blob#" "$work/ranged.lua" > "$work/ranged_server.lua"
sed "s#@PATH@#/image.bin#" "$work/ranged.lua" > "$work/ranged_nginx.lua"

rps() { # URL SCRIPT CONNECTIONS -> requests/s
    local out
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "the server died:" >&2; tail -20 "$work/server.err" >&2; exit 1
    fi
    out=$(CHECKINS="$work/out/checkins.txt" wrk -t"$THREADS" -c"$3" -d"$DURATION" -s "$2" "$1" 2>&1)
    if echo "$out" | grep -q "Non-2xx"; then echo "$out" >&2; echo "non-2xx answers" >&2; exit 1; fi
    echo "$out" | awk '/Requests\/sec/ {print $2}'
}

echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "wrk -t$THREADS -d$DURATION; nginx $("$NGINX" -v 2>&1 | sed 's/.*\///')"
printf '\n| workload | connections | fota req/s | nginx req/s | ratio |\n|---|---|---|---|---|\n'
for c in 16 64; do
    for w in legacy ranged checkin; do
        case $w in
            legacy) s=$(rps "$url" "$work/legacy.lua" $c); n=$(rps "$nginx" "$work/legacy_nginx.lua" $c) ;;
            ranged) s=$(rps "$url" "$work/ranged_server.lua" $c); n=$(rps "$nginx" "$work/ranged_nginx.lua" $c) ;;
            checkin) s=$(rps "$url" "$work/checkin.lua" $c); n=$(rps "$nginx/answer.bin" "$work/plain.lua" $c) ;;
        esac
        printf '| %s | %s | %.0f | %.0f | %.2f |\n' "$w" "$c" "$s" "$n" "$(echo "$s / $n" | bc -l)"
    done
done
rss=$(awk '/VmHWM/ {print $2}' /proc/$server_pid/status)
printf '\nserver peak RSS (VmHWM): %.1f MiB\n' "$(echo "$rss / 1024" | bc -l)"
