#!/usr/bin/env bash
# Real services for the test suites: MariaDB, the Docker engine (plus a locally
# built busybox image: no registry is reachable), an S3 server (s3rver) and
# Chromium. Idempotent: `up` installs what is missing (apt, as root) and starts
# what is not running; `down` stops only what `up` started (by pid file);
# `status` tells what is reachable. `up` writes the variables the tests read to
# .services.env (vitest loads it) and prints them.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.services"
ENV_FILE="$ROOT/.services.env"
NODE="$ROOT/node_modules/.bin/node"

MYSQL_PORT="${ORCH_SERVICES_MYSQL_PORT:-3306}"
MYSQL_USER=orch
MYSQL_PASSWORD=orch
MYSQL_DATABASE=orch_test
S3_PORT="${ORCH_SERVICES_S3_PORT:-4569}"
S3_BUCKET=orch-test
DOCKER_IMAGE=orchestrator/busybox:test
NODE_IMAGE=orchestrator/node-app:1 # the demo template's image

log() { echo "services: $*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root for: $* (run as root or install sudo)"
  fi
}

APT_UPDATED=0
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]} (apt)"
  if [ $APT_UPDATED = 0 ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local seconds=$1 what=$2; shift 2
  for _ in $(seq 1 $((seconds * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  die "$what did not come up within ${seconds}s"
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# --- MariaDB -----------------------------------------------------------------
mysql_ping() { mariadb-admin --protocol=tcp -h127.0.0.1 -P"$MYSQL_PORT" -u"$MYSQL_USER" -p"$MYSQL_PASSWORD" ping; }
mysql_up() {
  apt_install mariadb-server mariadb-client
  if ! mariadb-admin ping >/dev/null 2>&1 && ! mysql_ping >/dev/null 2>&1; then
    log "starting MariaDB on 127.0.0.1:$MYSQL_PORT"
    as_root install -d -o mysql -g mysql /run/mysqld /var/log/mysql
    [ -d /var/lib/mysql/mysql ] || as_root mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    as_root start-stop-daemon --start --background --make-pidfile --pidfile "$STATE/mariadb.pid" \
      --chuid mysql --exec /usr/sbin/mariadbd -- --datadir=/var/lib/mysql \
      --socket=/run/mysqld/mysqld.sock --bind-address=127.0.0.1 --port="$MYSQL_PORT" \
      --log-error=/var/log/mysql/error.log
    wait_for 30 MariaDB as_root mariadb-admin --socket=/run/mysqld/mysqld.sock ping
  fi
  # The app user may create and drop its own databases (each test suite takes a fresh one).
  as_root mariadb --socket=/run/mysqld/mysqld.sock <<SQL
CREATE USER IF NOT EXISTS '$MYSQL_USER'@'127.0.0.1' IDENTIFIED BY '$MYSQL_PASSWORD';
CREATE USER IF NOT EXISTS '$MYSQL_USER'@'localhost' IDENTIFIED BY '$MYSQL_PASSWORD';
CREATE DATABASE IF NOT EXISTS $MYSQL_DATABASE;
GRANT ALL PRIVILEGES ON \`orch\_%\`.* TO '$MYSQL_USER'@'127.0.0.1';
GRANT ALL PRIVILEGES ON \`orch\_%\`.* TO '$MYSQL_USER'@'localhost';
FLUSH PRIVILEGES;
SQL
  wait_for 10 "MariaDB (app user over TCP)" mysql_ping
  echo "ORCH_TEST_MYSQL_URL=mysql://$MYSQL_USER:$MYSQL_PASSWORD@127.0.0.1:$MYSQL_PORT/$MYSQL_DATABASE" >>"$ENV_FILE.tmp"
}

# --- Docker ------------------------------------------------------------------
docker_up() {
  apt_install docker.io busybox-static
  if ! docker info >/dev/null 2>&1; then
    log "starting dockerd"
    # setsid: its own session, so ending the job that ran `up` does not take it down.
    as_root bash -c "setsid nohup /usr/sbin/dockerd >'$STATE/dockerd.log' 2>&1 & echo \$! >'$STATE/dockerd.pid'"
    wait_for 60 dockerd docker info
  fi
  if ! docker image inspect "$DOCKER_IMAGE" >/dev/null 2>&1; then
    log "building $DOCKER_IMAGE from busybox-static (no registry here)"
    local rootfs
    rootfs="$(mktemp -d)"
    mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/data"
    cp /bin/busybox "$rootfs/bin/busybox"
    for applet in $("$rootfs/bin/busybox" --list); do
      [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
    done
    tar -C "$rootfs" -c . | docker import -c 'ENV PATH=/bin' -c 'CMD ["sh"]' - "$DOCKER_IMAGE" >/dev/null
    rm -rf "$rootfs"
  fi
  if ! docker image inspect "$NODE_IMAGE" >/dev/null 2>&1; then
    # The demo template's Docker flavour: busybox + the project's Node binary
    # and the shared libraries it links (no registry to pull node:24 from).
    log "building $NODE_IMAGE from busybox-static and node_modules/.bin/node"
    [ -x "$NODE" ] || die "run npm install first (the image takes Node from node_modules)"
    local rootfs node_bin
    rootfs="$(mktemp -d)"
    node_bin="$(readlink -f "$NODE")"
    mkdir -p "$rootfs/bin" "$rootfs/usr/local/bin" "$rootfs/tmp" "$rootfs/data"
    cp /bin/busybox "$rootfs/bin/busybox"
    for applet in $("$rootfs/bin/busybox" --list); do
      [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
    done
    cp "$node_bin" "$rootfs/usr/local/bin/node"
    for lib in $(ldd "$node_bin" | grep -o '/[^ ]*'); do
      mkdir -p "$rootfs$(dirname "$lib")"
      cp -L "$lib" "$rootfs$lib"
    done
    tar -C "$rootfs" -c . | docker import -c 'ENV PATH=/usr/local/bin:/bin' -c 'CMD ["node"]' - "$NODE_IMAGE" >/dev/null
    rm -rf "$rootfs"
  fi
  echo "ORCH_TEST_DOCKER=${DOCKER_HOST:-unix:///var/run/docker.sock}" >>"$ENV_FILE.tmp"
  echo "ORCH_TEST_NODE_IMAGE=$NODE_IMAGE" >>"$ENV_FILE.tmp"
  echo "ORCH_TEST_DOCKER_IMAGE=$DOCKER_IMAGE" >>"$ENV_FILE.tmp"
}

# --- S3 (s3rver) -------------------------------------------------------------
s3_ping() { curl -fsS "http://127.0.0.1:$S3_PORT/" -o /dev/null; }
s3_up() {
  [ -x "$NODE" ] && [ -f "$ROOT/node_modules/s3rver/bin/s3rver.js" ] || die "run npm install first (s3rver comes from npm)"
  if ! s3_ping 2>/dev/null; then
    log "starting s3rver on 127.0.0.1:$S3_PORT"
    mkdir -p "$STATE/s3"
    # --openssl-legacy-provider: without it s3rver answers 500 to paginated listings.
    setsid nohup "$NODE" --openssl-legacy-provider "$ROOT/node_modules/s3rver/bin/s3rver.js" \
      -d "$STATE/s3" -a 127.0.0.1 -p "$S3_PORT" --silent --configure-bucket "$S3_BUCKET" \
      >"$STATE/s3rver.log" 2>&1 &
    echo $! >"$STATE/s3rver.pid"
    wait_for 30 s3rver s3_ping
  fi
  {
    echo "ORCH_TEST_S3_ENDPOINT=http://127.0.0.1:$S3_PORT"
    echo "ORCH_TEST_S3_BUCKET=$S3_BUCKET"
    echo "ORCH_TEST_S3_ACCESS_KEY=S3RVER"
    echo "ORCH_TEST_S3_SECRET_KEY=S3RVER"
    echo "ORCH_TEST_S3_REGION=us-east-1"
  } >>"$ENV_FILE.tmp"
}

# --- Chromium and bench tools -------------------------------------------------
chromium_up() {
  apt_install chromium fonts-liberation
  echo "ORCH_TEST_CHROMIUM=$(command -v chromium)" >>"$ENV_FILE.tmp"
}
tools_up() { apt_install curl gettext-base; } # envsubst: a baseline in npm run bench

up() {
  mkdir -p "$STATE"
  : >"$ENV_FILE.tmp"
  tools_up
  mysql_up
  docker_up
  s3_up
  chromium_up
  mv "$ENV_FILE.tmp" "$ENV_FILE"
  cat "$ENV_FILE"
}

stop_pidfile() { # stop_pidfile NAME
  local file="$STATE/$1.pid"
  if pid_alive "$file"; then
    log "stopping $1 (pid $(cat "$file"))"
    as_root kill "$(cat "$file")" || true
    for _ in $(seq 1 50); do pid_alive "$file" || break; sleep 0.2; done
  fi
  rm -f "$file"
}

down() {
  stop_pidfile s3rver
  stop_pidfile dockerd
  stop_pidfile mariadb
  rm -f "$ENV_FILE"
}

status() {
  local rc=0
  if mysql_ping >/dev/null 2>&1; then echo "mysql: up"; else echo "mysql: down"; rc=1; fi
  if docker info >/dev/null 2>&1; then echo "docker: up"; else echo "docker: down"; rc=1; fi
  if s3_ping >/dev/null 2>&1; then echo "s3: up"; else echo "s3: down"; rc=1; fi
  if command -v chromium >/dev/null; then echo "chromium: installed"; else echo "chromium: missing"; rc=1; fi
  return $rc
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
