#!/usr/bin/env bash
# Run a private, offline Label Studio server for al-loop campaigns and tests.
#
#   scripts/labelstudio.sh install DIR   create DIR/venv with label-studio==$LS_VERSION (once)
#   scripts/labelstudio.sh start DIR     fresh data dir, free loopback port, legacy token;
#                                        writes DIR/env (source it) and DIR/pid
#   scripts/labelstudio.sh stop DIR      stop the server started from DIR
#   scripts/labelstudio.sh status DIR    say whether it runs and where
#
# The server binds 127.0.0.1 only, never checks for updates, never sends analytics.
# Environment: LS_VERSION (1.23.2), LS_PORT (first port tried, 8085), LS_PYTHON
# (interpreter for the venv, python3), LS_START_TIMEOUT (seconds, 180), LS_KEEP_DATA=1
# (start: reuse DIR/data instead of a fresh one; the token is kept from DIR/token).
set -euo pipefail

LS_VERSION="${LS_VERSION:-1.23.2}"
LS_PYTHON="${LS_PYTHON:-python3}"
LS_PORT="${LS_PORT:-8085}"
LS_START_TIMEOUT="${LS_START_TIMEOUT:-180}"

die() { echo "labelstudio.sh: $*" >&2; exit 2; }

usage() { die "usage: $0 {install|start|stop|status} DIR"; }

port_busy() {
    # True when something already listens on 127.0.0.1:$1 (Label Studio would silently move on).
    "$LS_PYTHON" - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.settimeout(0.5)
try:
    busy = s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0
finally:
    s.close()
try:
    b = socket.socket()
    b.bind(("127.0.0.1", int(sys.argv[1])))
    b.close()
except OSError:
    busy = True
sys.exit(0 if busy else 1)
EOF
}

running_pid() {
    # Print the pid recorded in DIR/pid when that process is alive.
    local dir="$1"
    [[ -f "$dir/pid" ]] || return 1
    local pid
    pid="$(cat "$dir/pid")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && { echo "$pid"; return 0; }
    return 1
}

cmd_install() {
    local dir="$1"
    mkdir -p "$dir"
    if [[ -x "$dir/venv/bin/label-studio" ]] \
        && "$dir/venv/bin/python" -c "import importlib.metadata as m,sys; sys.exit(m.version('label-studio')!='$LS_VERSION')" 2>/dev/null; then
        echo "label-studio $LS_VERSION already installed in $dir/venv"
        return 0
    fi
    "$LS_PYTHON" -m venv "$dir/venv"
    "$dir/venv/bin/python" -m pip install --quiet --upgrade pip
    "$dir/venv/bin/python" -m pip install --quiet "label-studio==$LS_VERSION"
    echo "installed label-studio $LS_VERSION in $dir/venv"
}

cmd_start() {
    local dir
    dir="$(cd "$1" && pwd)"
    [[ -x "$dir/venv/bin/label-studio" ]] || die "no Label Studio in $dir/venv; run: $0 install $dir"
    if pid="$(running_pid "$dir")"; then
        die "a server from $dir already runs (pid $pid); run: $0 stop $dir"
    fi

    local data="$dir/data"
    if [[ "${LS_KEEP_DATA:-0}" != "1" ]]; then
        rm -rf "$data"
        rm -f "$dir/token"
    fi
    mkdir -p "$data"

    local port="$LS_PORT" tries=0
    while port_busy "$port"; do
        port=$((port + 1)); tries=$((tries + 1))
        (( tries < 50 )) || die "no free port in $LS_PORT..$port on 127.0.0.1; set LS_PORT to another range"
    done

    local token first_start=1
    if [[ -s "$dir/token" ]]; then
        token="$(cat "$dir/token")"; first_start=0
    else
        token="$("$LS_PYTHON" -c 'import secrets; print(secrets.token_hex(20))')"
        (umask 077; printf '%s\n' "$token" > "$dir/token")
    fi
    local user="al-loop@localhost" password
    password="$("$LS_PYTHON" -c 'import secrets; print(secrets.token_hex(16))')"
    [[ -s "$dir/password" && "$first_start" == 0 ]] && password="$(cat "$dir/password")"
    (umask 077; printf '%s\n' "$password" > "$dir/password")

    local -a args=(start --no-browser --internal-host 127.0.0.1 --host "http://127.0.0.1:$port"
                   --port "$port" --data-dir "$data" --username "$user" "--password=$password")
    if [[ "$first_start" == 1 ]]; then
        args+=(--user-token "$token" --enable-legacy-api-token)
    fi

    # setsid: own session, so the server survives this shell and can be stopped as a group.
    XDG_CONFIG_HOME="$data/xdg-config" XDG_DATA_HOME="$data/xdg-data" XDG_CACHE_HOME="$data/xdg-cache" \
    LABEL_STUDIO_BASE_DATA_DIR="$data" LABEL_STUDIO_LATEST_VERSION_CHECK=false \
    LABEL_STUDIO_COLLECT_ANALYTICS=false LABEL_STUDIO_API_KEY= LABEL_STUDIO_URL= \
        setsid nohup "$dir/venv/bin/label-studio" "${args[@]}" > "$dir/server.log" 2>&1 < /dev/null &
    local pid=$!
    echo "$pid" > "$dir/pid"

    local url="http://127.0.0.1:$port" waited=0
    echo "starting Label Studio (pid $pid) on $url; log: $dir/server.log"
    until curl -fsS -o /dev/null -m 2 "$url/health" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$dir/pid"
            tail -n 20 "$dir/server.log" >&2 || true
            die "the server exited during start; see $dir/server.log"
        fi
        if (( waited >= LS_START_TIMEOUT )); then
            cmd_stop "$dir" >/dev/null 2>&1 || true
            die "the server was not healthy after ${LS_START_TIMEOUT}s; see $dir/server.log or raise LS_START_TIMEOUT"
        fi
        sleep 1; waited=$((waited + 1))
    done
    # /health answers before the token works on a first start: wait until it authenticates.
    until curl -fsS -o /dev/null -m 5 -H "Authorization: Token $token" "$url/api/projects?page_size=1" 2>/dev/null; do
        (( waited < LS_START_TIMEOUT )) || die "the server rejects the API token after ${LS_START_TIMEOUT}s; see $dir/server.log"
        sleep 1; waited=$((waited + 1))
    done
    (umask 077; printf 'export LABEL_STUDIO_URL=%s LABEL_STUDIO_API_KEY=%s\n' "$url" "$token" > "$dir/env")
    echo "Label Studio is up after ${waited}s; run: source $dir/env"
}

cmd_stop() {
    local dir="$1" pid
    if ! pid="$(running_pid "$dir")"; then
        rm -f "$dir/pid"
        echo "no server running from $dir"
        return 0
    fi
    # The server leads its own process group (setsid): signal the group, then wait.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local i
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/pid"
    echo "stopped Label Studio (pid $pid)"
}

cmd_status() {
    local dir="$1" pid
    if pid="$(running_pid "$dir")"; then
        echo "running (pid $pid); $(sed 's/LABEL_STUDIO_API_KEY=.*/LABEL_STUDIO_API_KEY=.../' "$dir/env" 2>/dev/null)"
    else
        echo "not running"
        return 1
    fi
}

[[ $# -eq 2 ]] || usage
case "$1" in
    install) cmd_install "$2" ;;
    start) [[ -d "$2" ]] || die "no directory $2; run: $0 install $2"; cmd_start "$2" ;;
    stop) cmd_stop "$2" ;;
    status) cmd_status "$2" ;;
    *) usage ;;
esac
