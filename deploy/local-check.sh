#!/usr/bin/env bash
# The scale-out recipe without Docker: deploy/nginx.conf in front of two local
# `anomaly-api serve` processes (two workers each, as in compose.postgres.yaml) sharing
# one PostgreSQL database. Not run by CI: it needs nginx and a PostgreSQL server.
#
#   deploy/local-check.sh postgresql://postgres@127.0.0.1:5432/deploy_check
#
# It checks, through nginx: fits, predicts, batch, 413 at the body limit, that both
# replicas get traffic; a replica stopped (SIGTERM, as `docker stop`) is routed around
# and a fit refused by it goes to the other; a replica that hangs (SIGSTOP) makes reads
# move to the other replica but a fit is not sent again; and, holding a series' row lock
# with psql, that a fit which timed out was stored once (and twice if nginx retried it).
#
# The database must exist (the replicas create their tables). Needs nginx, curl, psql.
# Ports 18000-18002 and 18081 on 127.0.0.1 are used; everything started is stopped on exit.
set -euo pipefail

url=${1:?usage: deploy/local-check.sh postgresql://user@host:port/dbname}
here=$(cd "$(dirname "$0")" && pwd)
api=${ANOMALY_API:-$here/../.venv/bin/anomaly-api}
work=$(mktemp -d /tmp/anomaly-deploy-check.XXXXXX)
lb=http://127.0.0.1:18000
declare -A pid=()

cleanup() {
    for name in "${!pid[@]}"; do
        kill -CONT "${pid[$name]}" $(pgrep -P "${pid[$name]}") 2>/dev/null || true
        kill "${pid[$name]}" 2>/dev/null || true
    done
    if [[ -f $work/nginx.pid ]]; then kill "$(cat "$work/nginx.pid")" 2>/dev/null || true; fi
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The same file with the compose service names mapped to local ports and the log to the
# work directory. `resolve` is dropped because Debian's nginx (1.22) predates it (1.27.3).
sed -e 's/anomaly-api-1:8000 resolve/127.0.0.1:18001/' \
    -e 's/anomaly-api-2:8000 resolve/127.0.0.1:18002/' \
    -e 's/listen 8000;/listen 127.0.0.1:18000;/' \
    -e 's/127.0.0.1:8081/127.0.0.1:18081/' \
    -e "s#/var/log/nginx/access.log#$work/access.log#" \
    "$here/nginx.conf" >"$work/site.conf"
if grep -Eq '^[^#]*(anomaly-api-[12]:| resolve)' "$work/site.conf"; then
    echo "nginx.conf changed shape: update the substitutions in $0" >&2
    exit 1
fi
mkdir -p "$work/tmp"
cat >"$work/nginx.conf" <<EOF
worker_processes 2;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 1024; }
http {
    client_body_temp_path $work/tmp/body;
    proxy_temp_path $work/tmp/proxy;
    fastcgi_temp_path $work/tmp/fastcgi;
    uwsgi_temp_path $work/tmp/uwsgi;
    scgi_temp_path $work/tmp/scgi;
    include $work/site.conf;
}
EOF
chmod -R a+rwx "$work"  # nginx's workers run as nobody
nginx -t -c "$work/nginx.conf"

start_replica() {  # name port
    ANOMALY_DATABASE_URL=$url ANOMALY_WORKERS=2 "$api" serve --host 127.0.0.1 --port "$2" \
        >>"$work/$1.log" 2>&1 &
    pid[$1]=$!
}
stop_replica() {  # name
    kill "${pid[$1]}"
    wait "${pid[$1]}" 2>/dev/null || true
    unset "pid[$1]"
}
wait_healthy() {  # base-url
    for _ in $(seq 100); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "$1/healthcheck") == 200 ]] && return 0
        sleep 0.2
    done
    echo "$1 did not become healthy" >&2
    exit 1
}
call() {  # method path [body]: prints the status, keeps the answer in $work/answer
    curl -s -o "$work/answer" -w '%{http_code}' -X "$1" "$lb$2" ${3:+--data-binary "$3"}
}
tally() {  # what the access log shows since it was last cleared: request, tried, statuses
    sed -E 's/.*"([A-Z]+) ([^ ?]+)[^"]*" ([0-9]+) .* rt=([0-9]+)[.0-9]* upstream="([^"]*)" upstream_status="([^"]*)".*/\1 \2 -> \3 in \4 s, tried: \5 (\6)/' \
        "$work/access.log" | sed -E "s/$series/{id}/; s/127.0.0.1:1800([12])/r\1/g" |
        sort | uniq -c | sed 's/^/   /'
    : >"$work/access.log"
}
versions() {
    call GET "/series/$series" >/dev/null
    grep -o '"version":"[0-9]*"' "$work/answer" | grep -o '[0-9]*' | tr '\n' ' '
}

start_replica r1 18001
start_replica r2 18002
nginx -c "$work/nginx.conf"
wait_healthy http://127.0.0.1:18001
wait_healthy http://127.0.0.1:18002
wait_healthy $lb
echo "== nginx and both replicas (r1 :18001, r2 :18002) healthy"

fit='{"timestamps": [1691000000, 1691000060, 1691000120, 1691000180, 1691000240], "values": [10, 11, 9, 12, 15]}'
point='{"timestamp": "1691000300", "value": 18}'
series=deploy-check-$$
echo "fit: $(call POST "/fit/$series" "$fit") $(cat "$work/answer")"
: >"$work/access.log"
for _ in $(seq 40); do call POST "/predict/$series" "$point" >/dev/null; done
echo "predict: $(cat "$work/answer")"
echo "batch: $(call POST "/predict/$series/batch" '{"timestamps": [1691000300, 1691000360], "values": [12.5, 80]}') $(cat "$work/answer")"
echo "GET /series/{id}: $(call GET "/series/$series")"
echo "40 predicts, a batch and a GET, by replica:"
tally
head -c $((64 * 1024 * 1024)) /dev/zero | tr '\0' ' ' >"$work/body"
echo "64 MiB body (at the limit: reaches the service): $(call POST "/fit/$series" @"$work/body") $(head -c 150 "$work/answer")"
printf ' ' >>"$work/body"
echo "64 MiB + 1 byte (nginx refuses): $(call POST "/fit/$series" @"$work/body") $(cat "$work/answer")"
rm "$work/body"
: >"$work/access.log"

echo "== r1 stopped (SIGTERM, as docker stop does)"
stop_replica r1
for _ in 1 2; do call POST "/fit/$series" "$fit" >/dev/null; done
for _ in $(seq 20); do
    call POST "/predict/$series" "$point" >/dev/null
    call GET "/series/$series" >/dev/null
done
tally
echo "versions stored (1 + 2 fits sent): $(versions)"

echo "== r1 back"
start_replica r1 18001
wait_healthy http://127.0.0.1:18001
sleep 10.5  # fail_timeout: after 10 s nginx tries a replica it had marked failed again
for _ in $(seq 20); do call POST "/predict/$series" "$point" >/dev/null; done
tally

echo "== r1 hangs (SIGSTOP: connections are accepted by the kernel, nothing answers)"
echo "   (for this check only: proxy_read_timeout 60s -> 2s, so timeouts come quickly, and"
echo "   max_fails 3 -> 10, so r1 stays in the rotation for every kind of request below)"
sed -i -e 's/proxy_read_timeout 60s;/proxy_read_timeout 2s;/' -e 's/max_fails=3/max_fails=10/' "$work/site.conf"
kill -HUP "$(cat "$work/nginx.pid")"
sleep 1
before=$(versions)
: >"$work/access.log"
kill -STOP "${pid[r1]}" $(pgrep -P "${pid[r1]}")
# Two of each in a row: round robin sends one of the two to r1.
for request in "POST /fit/$series $fit" "POST /predict/$series $point" "GET /series/$series" "DELETE /series/$series/versions/1"; do
    read -r method path body <<<"$request"
    for _ in 1 2; do call "$method" "$path" "$body" >/dev/null; done
    tally
done
kill -CONT "${pid[r1]}" $(pgrep -P "${pid[r1]}")
sleep 1
echo "versions before: $before; after (2 fits sent, version 1 deleted): $(versions)"
echo "nginx error log (warnings and errors):"
sed -E 's/^[0-9\/]+ [0-9:]+ //; s/, client: .*request: / /; s/, host: .*//' "$work/error.log" |
    sort | uniq -c | sed 's/^/   /'

echo "== why a fit is not sent twice: a fit held up past the read timeout (2 s) by a lock"
echo "   on its series' counter row (held 6 s), which is what a slow database looks like"
hold_lock() {
    psql "$url" -qAt -c "BEGIN; SELECT 1 FROM anomaly_series WHERE series_id = '$series' FOR UPDATE; SELECT pg_sleep(6); COMMIT;" >/dev/null &
    lock=$!
    sleep 0.5
}
before=$(versions)
hold_lock
echo "fit: $(call POST "/fit/$series" "$fit") $(cat "$work/answer")"
wait "$lock"
sleep 0.5
echo "versions before: $before; after: $(versions)(the one fit was stored once)"
tally
echo "   the same with 'non_idempotent' added to proxy_next_upstream (NOT in nginx.conf):"
sed -i 's/^    proxy_next_upstream error timeout;/    proxy_next_upstream error timeout non_idempotent;/' "$work/site.conf"
kill -HUP "$(cat "$work/nginx.pid")"
sleep 1
before=$(versions)
hold_lock
echo "fit: $(call POST "/fit/$series" "$fit") $(cat "$work/answer")"
wait "$lock"
sleep 0.5
echo "versions before: $before; after: $(versions)(one fit request, stored twice)"
tally
echo "DELETE /series/{id}: $(call DELETE "/series/$series") $(cat "$work/answer")"
