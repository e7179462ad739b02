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
# (start: reuse DIR/data instead of a fresh one; the token is kept from DIR/token),
# LS_FILES_ROOT (the folder the server may serve images from: its local files document root;
# default DIR/files, created; a restart keeps the one recorded in DIR/files_root).
#
# Local files: the server serves files under LS_FILES_ROOT (LOCAL_FILES_SERVING_ENABLED=true,
# LOCAL_FILES_DOCUMENT_ROOT=LS_FILES_ROOT) to logged-in users of a project with a local files
# storage over their folder; `al-loop campaign init --images DIR` (DIR under that root) makes
# the storage. DIR/env exports the root as LABEL_STUDIO_FILES_ROOT.
#
# A restart (LS_KEEP_DATA=1) comes back on the port recorded in DIR/port, so the URL a
# campaign stored stays right. The port is probed with SO_REUSEADDR, as the server binds
# it, so sockets of the old server in TIME_WAIT do not make it "busy". While a process
# still listens there, the script waits up to LS_PORT_WAIT seconds (30) for it to go,
# then refuses (exit 2) instead of moving. LS_PORT=Q given on a restart moves the server
# on purpose (then: al-loop campaign set-url --db X --label-studio-url URL).
#
# Secrets never reach a command line (ps shows those): the user, password and token go to
# the server through its environment (LABEL_STUDIO_USERNAME/_PASSWORD/_USER_TOKEN). The
# server runs with umask 077; DIR/data is 0700; DIR/token, DIR/password, DIR/env are 0600.
set -euo pipefail

LS_PORT_GIVEN="${LS_PORT:-}"

LS_VERSION="${LS_VERSION:-1.23.2}"
LS_PYTHON="${LS_PYTHON:-python3}"
LS_PORT="${LS_PORT:-8085}"
LS_START_TIMEOUT="${LS_START_TIMEOUT:-180}"

die() { echo "labelstudio.sh: $*" >&2; exit 2; }

usage() { die "usage: $0 {install|start|stop|status} DIR"; }

port_busy() {
    # True when something listens on 127.0.0.1:$1 (Label Studio would silently move on).
    # SO_REUSEADDR, as the server's own socket: connections in TIME_WAIT do not count.
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
    b.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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
    # a zombie (killed, not reaped yet) does not run
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" != Z* ]] \
        && { echo "$pid"; return 0; }
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

    local data="$dir/data" restart=0
    if [[ "${LS_KEEP_DATA:-0}" != "1" ]]; then
        rm -rf "$data"
        rm -f "$dir/token" "$dir/port"
    elif [[ -d "$data" ]]; then
        restart=1
    fi
    local files_root="${LS_FILES_ROOT:-}"
    if [[ -z "$files_root" && "$restart" == 1 && -s "$dir/files_root" ]]; then
        files_root="$(cat "$dir/files_root")"
    fi
    files_root="${files_root:-$dir/files}"
    mkdir -p "$files_root" || die "cannot create LS_FILES_ROOT $files_root; choose another folder"
    files_root="$(cd "$files_root" && pwd -P)"
    echo "$files_root" > "$dir/files_root"

    umask 077  # the server's database holds the token: its files (and the log, pid, env) stay private
    mkdir -p "$data"
    chmod -R go-rwx "$data"

    local port tries=0
    if [[ "$restart" == 1 && -s "$dir/port" && -z "$LS_PORT_GIVEN" ]]; then
        # A restart comes back on its port or not at all; a listener that is going away gets LS_PORT_WAIT s.
        port="$(cat "$dir/port")"
        local port_waited=0
        while port_busy "$port"; do
            (( port_waited < ${LS_PORT_WAIT:-30} )) || die "port $port (recorded in $dir/port) is still in use after ${LS_PORT_WAIT:-30}s; stop what listens there, or move the server on purpose with LS_PORT=<port> and point campaigns at it with: al-loop campaign set-url --db X --label-studio-url URL"
            sleep 1; port_waited=$((port_waited + 1))
        done
    elif [[ "$restart" == 1 && -n "$LS_PORT_GIVEN" ]]; then
        port="$LS_PORT_GIVEN"  # a move on purpose: that port, never another
        port_busy "$port" && die "port $port (LS_PORT) is in use on 127.0.0.1; choose another LS_PORT"
    else
        port="$LS_PORT"
        while port_busy "$port"; do
            port=$((port + 1)); tries=$((tries + 1))
            (( tries < 50 )) || die "no free port in $LS_PORT..$port on 127.0.0.1; set LS_PORT to another range"
        done
    fi

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
                   --port "$port" --data-dir "$data")
    local user_token=
    if [[ "$first_start" == 1 ]]; then
        args+=(--enable-legacy-api-token)
        user_token="$token"
    fi

    # setsid: own session, so the server survives this shell and can be stopped as a group.
    # User, password and token travel in the environment, not on the command line (ps shows that).
    LABEL_STUDIO_USERNAME="$user" LABEL_STUDIO_PASSWORD="$password" LABEL_STUDIO_USER_TOKEN="$user_token" \
    XDG_CONFIG_HOME="$data/xdg-config" XDG_DATA_HOME="$data/xdg-data" XDG_CACHE_HOME="$data/xdg-cache" \
    LABEL_STUDIO_BASE_DATA_DIR="$data" LABEL_STUDIO_LATEST_VERSION_CHECK=false \
    LABEL_STUDIO_COLLECT_ANALYTICS=false LABEL_STUDIO_API_KEY= LABEL_STUDIO_URL= \
    LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT="$files_root" \
        setsid nohup "$dir/venv/bin/label-studio" "${args[@]}" > "$dir/server.log" 2>&1 < /dev/null &
    local pid=$!
    echo "$pid" > "$dir/pid"
    echo "$port" > "$dir/port"

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
    (umask 077; printf 'export LABEL_STUDIO_URL=%s LABEL_STUDIO_API_KEY=%s LABEL_STUDIO_FILES_ROOT=%q\n' \
        "$url" "$token" "$files_root" > "$dir/env")
    echo "Label Studio is up after ${waited}s (serves local files under $files_root); run: source $dir/env"
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
