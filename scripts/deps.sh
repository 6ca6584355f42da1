#!/usr/bin/env bash
# deps.sh - install, start, health-check and stop the CDP's backing services
# (OpenSearch, Kafka, Redis) natively on this machine, without Docker.
# (With Docker, use docker-compose.yml at the repository root instead.)
#
# Usage:
#   scripts/deps.sh up     [opensearch|kafka|redis ...]  install if needed, start, wait until healthy
#   scripts/deps.sh down   [opensearch|kafka|redis ...]  stop what this script started
#   scripts/deps.sh status [opensearch|kafka|redis ...]  show up/down with pid and port
# Without service names the command applies to all three.
#
# `up` is idempotent: a service that already answers on its port is reused.
# It prints the cold-start time of each service (start command -> healthy).
# Everything listens on 127.0.0.1 only:
#   OpenSearch http://127.0.0.1:9200   Kafka 127.0.0.1:9092   Redis 127.0.0.1:6379
#
# Layout under $CDP_CACHE_DIR: downloads/ (zip files), opt/ (installs),
# run/<service>/{data/<version>,logs,pid} (data per version: no accidental downgrades).
#
# Environment (all optional):
#   CDP_CACHE_DIR            cache and state directory       (default: <repo>/.cache)
#   CDP_JAVA_HOME            JDK for OpenSearch and Kafka. Default: searched in $JAVA_HOME,
#                            `java` on PATH and /usr/lib/jvm/*; OpenSearch takes the newest,
#                            Kafka the newest of 17..21 (its fully supported range)
#   CDP_OPENSEARCH_VERSION   default 3.6.0 when a JDK >= 21 exists, else 2.19.6
#   CDP_KAFKA_VERSION        default: <kafka.version> in deps/kafka/pom.xml
#   CDP_OPENSEARCH_PORT      9200  (transport: CDP_OPENSEARCH_TRANSPORT_PORT, 9300)
#   CDP_KAFKA_PORT           9092  (KRaft controller: CDP_KAFKA_CONTROLLER_PORT, 9093)
#   CDP_REDIS_PORT           6379
#   CDP_START_TIMEOUT        seconds to wait for a service to become healthy (180)
#   CDP_STOP_TIMEOUT         seconds between SIGTERM and SIGKILL on `down` (60)
#   CDP_MAVEN_REPO           repository URL for the OpenSearch downloads
#                            (https://repo.maven.apache.org/maven2; mvn uses its own settings)
#
# `up` (whatever services it names) also makes sure of Debian's chromium and a
# CJK font (fonts-wqy-microhei): the console's browser tests (package console)
# drive it headless, and its screenshots show Chinese text.
#
# Run as root (CI), OpenSearch runs as the system user cdp-opensearch (created
# on demand) because it refuses to run as root; missing tools (redis-server,
# unzip, curl, maven, a JDK) are installed with apt-get. Run as another user,
# everything runs as that user and missing tools are reported.
# Exit status is non-zero when anything fails; the reason goes to stderr.
#
# Kafka's command-line classes are in the libs dir, e.g.:
#   java -cp '.cache/opt/kafka-4.3.1/libs/*' org.apache.kafka.tools.TopicCommand \
#     --bootstrap-server 127.0.0.1:9092 --list
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly CACHE_DIR="${CDP_CACHE_DIR:-$REPO_ROOT/.cache}"
readonly DL_DIR="$CACHE_DIR/downloads"
readonly OPT_DIR="$CACHE_DIR/opt"
readonly RUN_DIR="$CACHE_DIR/run"
readonly MAVEN_REPO="${CDP_MAVEN_REPO:-https://repo.maven.apache.org/maven2}"
readonly KAFKA_POM="$REPO_ROOT/deps/kafka/pom.xml"

readonly OPENSEARCH_PORT="${CDP_OPENSEARCH_PORT:-9200}"
readonly OPENSEARCH_TRANSPORT_PORT="${CDP_OPENSEARCH_TRANSPORT_PORT:-9300}"
readonly KAFKA_PORT="${CDP_KAFKA_PORT:-9092}"
readonly KAFKA_CONTROLLER_PORT="${CDP_KAFKA_CONTROLLER_PORT:-9093}"
readonly REDIS_PORT="${CDP_REDIS_PORT:-6379}"
readonly START_TIMEOUT="${CDP_START_TIMEOUT:-180}"
readonly STOP_TIMEOUT="${CDP_STOP_TIMEOUT:-60}"

readonly OPENSEARCH_USER=cdp-opensearch
readonly ALL_SERVICES=(redis kafka opensearch) # start order; stopped in reverse

# ---------------------------------------------------------------- helpers ----

say() { printf '[deps] %s\n' "$*"; }
warn() { printf '[deps] %s\n' "$*" >&2; }
die() {
  warn "ERROR: $*"
  exit 1
}
is_root() { [[ $EUID -eq 0 ]]; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# logged LOGFILE CMD...: run CMD with its output appended to LOGFILE; on
# failure show the end of LOGFILE on stderr and return CMD's exit status.
logged() {
  local log=$1 rc=0
  shift
  mkdir -p "$(dirname "$log")"
  "$@" >>"$log" 2>&1 || rc=$?
  if ((rc != 0)); then
    warn "---- '$*' failed (exit $rc); last lines of $log ----"
    tail -n 30 "$log" >&2
  fi
  return "$rc"
}

# apt_install PKG...: install Debian packages (root only) without letting their
# maintainer scripts start system services; we run our own instances.
APT_UPDATED=''
apt_install() {
  is_root || die "missing package(s): $*; install them (sudo apt-get install $*) or run as root"
  command -v apt-get >/dev/null || die "missing package(s): $* and no apt-get to install them"
  export DEBIAN_FRONTEND=noninteractive
  if [[ -z $APT_UPDATED ]]; then
    say "apt-get update"
    logged "$RUN_DIR/apt.log" apt-get update || die "apt-get update failed"
    APT_UPDATED=1
  fi
  local guard=/usr/sbin/policy-rc.d created='' ok=1 t0
  if [[ ! -e $guard ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$guard" && chmod +x "$guard" && created=1
  fi
  say "apt-get install $*"
  t0=$(now)
  logged "$RUN_DIR/apt.log" apt-get install -y --no-install-recommends "$@" || ok=''
  [[ -z $created ]] || rm -f "$guard"
  [[ -n $ok ]] || die "apt-get install $* failed"
  say "installed $* in $(since "$t0") s"
}

# need_cmd CMD [PKG]: make sure CMD exists, installing PKG with apt if needed.
need_cmd() {
  command -v "$1" >/dev/null || apt_install "${2:-$1}"
  command -v "$1" >/dev/null || die "$1 not found even after installing ${2:-$1}"
}

# download URL DEST: cached download. The file is fetched to DEST.part, checked
# against the .sha1 that Maven Central publishes, then renamed, so an existing
# DEST is always complete.
download() {
  local url=$1 dest=$2 part="$2.part" sha1 t0
  [[ -s $dest ]] && return 0
  need_cmd curl
  mkdir -p "$(dirname "$dest")"
  say "downloading $url"
  t0=$(now)
  curl -fsSL --retry 3 --retry-delay 2 --connect-timeout 20 -o "$part" "$url" ||
    { rm -f "$part"; die "download failed: $url"; }
  if sha1=$(curl -fsSL --retry 3 "$url.sha1"); then
    sha1=${sha1%% *}
    [[ $(sha1sum "$part" | cut -d' ' -f1) == "$sha1" ]] ||
      { rm -f "$part"; die "download corrupt (sha1 mismatch): $url"; }
  fi
  mv "$part" "$dest"
  say "downloaded $(basename "$dest") ($(du -m "$dest" | cut -f1) MiB) in $(since "$t0") s"
}

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ------------------------------------------------------------------- JDKs ----

# jdk_major HOME: feature version of the JDK at HOME (8, 11, 17, 21, 25, ...).
jdk_major() {
  local v
  v=$("$1/bin/java" -XshowSettings:properties -version 2>&1 |
    sed -n 's/^ *java\.specification\.version = //p') || true
  [[ $v == 1.* ]] && v=${v#1.}
  [[ $v =~ ^[0-9]+$ ]] && echo "$v"
}

# jdk_candidates: JDK homes from $JAVA_HOME, `java` on PATH and /usr/lib/jvm,
# symlinks resolved, without duplicates.
jdk_candidates() {
  local java d
  {
    [[ -z ${JAVA_HOME:-} ]] || echo "$JAVA_HOME"
    if java=$(command -v java); then dirname "$(dirname "$(readlink -f "$java")")"; fi
    for d in /usr/lib/jvm/*/; do echo "${d%/}"; done
  } | while read -r d; do readlink -f "$d" || true; done | awk '!seen[$0]++'
}

# find_jdk MIN [MAX]: print the home of the newest JDK with MIN <= version <= MAX,
# or, when there is none up to MAX, of the newest one >= MIN. Only
# CDP_JAVA_HOME is considered when it is set. Fails when nothing fits.
find_jdk() {
  local min=$1 max=${2:-999} home major best='' rank best_rank=0
  if [[ -n ${CDP_JAVA_HOME:-} ]]; then
    major=$(jdk_major "$CDP_JAVA_HOME") || die "CDP_JAVA_HOME=$CDP_JAVA_HOME is not a working JDK"
    ((major >= min)) || return 1
    echo "$CDP_JAVA_HOME"
    return 0
  fi
  while read -r home; do
    [[ -x $home/bin/java ]] || continue
    major=$(jdk_major "$home") || continue
    ((major >= min)) || continue
    rank=$((major <= max ? 1000 + major : major)) # in-range JDKs win
    if ((rank > best_rank)); then
      best=$home best_rank=$rank
    fi
  done < <(jdk_candidates)
  [[ -n $best ]] && echo "$best"
}

# require_jdk MIN MAX WHAT: like find_jdk, but installs Debian's JDK 17 when root
# and nothing suitable exists, and dies with a clear message otherwise.
require_jdk() {
  local min=$1 max=$2 what=$3 home
  if home=$(find_jdk "$min" "$max"); then
    echo "$home"
    return 0
  fi
  if [[ -z ${CDP_JAVA_HOME:-} ]] && ((min <= 17)) && is_root; then
    apt_install openjdk-17-jdk-headless >&2
    home=$(find_jdk "$min" "$max") && { echo "$home"; return 0; }
  fi
  die "no suitable JDK for $what: needs Java $min+ (${CDP_JAVA_HOME:+CDP_JAVA_HOME=$CDP_JAVA_HOME, }searched JAVA_HOME, PATH, /usr/lib/jvm)"
}

# -------------------------------------------------------------- processes ----

pid_file() { echo "$RUN_DIR/$1/pid"; }
port_file() { echo "$RUN_DIR/$1/port"; } # the port the recorded pid serves

# alive PID: the process exists and is not a zombie.
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# running_pid SERVICE: print the pid from SERVICE's pid file if it is alive.
running_pid() {
  local file pid
  file=$(pid_file "$1")
  [[ -f $file ]] || return 1
  pid=$(<"$file")
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" && echo "$pid"
}

# spawn SERVICE WORKDIR LOGFILE CMD...: start CMD in WORKDIR, detached in its own
# session (so it survives this shell and CI job control), stdout/stderr to
# LOGFILE (truncated), and record its pid. CMD must exec its server so the pid stays valid.
spawn() {
  local service=$1 workdir=$2 log=$3
  shift 3
  (
    cd "$workdir"
    ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
    exec setsid nohup "$@" </dev/null >"$log" 2>&1
  ) &
  echo $! >"$(pid_file "$service")"
}

# show_logs SERVICE: the last lines of each of SERVICE_logs, on stderr.
show_logs() {
  local f
  while read -r f; do
    [[ -s $f ]] || continue
    warn "---- last lines of $f ----"
    tail -n 40 "$f" >&2
  done < <("${1}_logs")
}

# wait_healthy SERVICE: poll SERVICE_healthy until it succeeds, the process
# dies or START_TIMEOUT passes; on failure print SERVICE_logs and fail.
wait_healthy() {
  local service=$1 t0=$SECONDS
  until "${service}_healthy"; do
    if ! running_pid "$service" >/dev/null; then
      warn "ERROR: $service exited during startup"
      show_logs "$service"
      return 1
    fi
    if ((SECONDS - t0 >= START_TIMEOUT)); then
      warn "ERROR: $service not healthy after ${START_TIMEOUT}s (CDP_START_TIMEOUT)"
      show_logs "$service"
      return 1
    fi
    sleep 0.25
  done
}

# service_up SERVICE PORT [OTHER_PORT...]: the shared, idempotent `up` flow.
# Each service provides SERVICE_install, SERVICE_start, SERVICE_healthy and
# SERVICE_logs.
service_up() {
  local service=$1 port=$2 pid t0 p
  mkdir -p "$RUN_DIR/$service"
  "${service}_install"

  if pid=$(running_pid "$service"); then
    p=$(cat "$(port_file "$service")" 2>/dev/null || echo "?")
    [[ $p == "$port" ]] || die "$service is already running from $CACHE_DIR on port $p (pid $pid); run '$0 down $service' first"
    if ! "${service}_healthy"; then
      say "$service: pid $pid is running but not healthy yet, waiting"
      wait_healthy "$service" || die "$service (pid $pid) did not become healthy"
    fi
    say "$service: reusing running instance (pid $pid, port $port)"
    return 0
  fi
  rm -f "$(pid_file "$service")"
  if "${service}_healthy"; then
    say "$service: reusing healthy service already listening on 127.0.0.1:$port (not started by this script)"
    return 0
  fi
  shift
  for p in "$@"; do
    ! port_open "$p" || die "$service: port $p is taken by something that is not a healthy $service; free it or choose another port (CDP_*_PORT)"
  done

  t0=$(now)
  echo "$port" >"$(port_file "$service")"
  "${service}_start"
  if ! wait_healthy "$service"; then
    service_down "$service" >/dev/null 2>&1 || true
    die "$service failed to start"
  fi
  say "$service: healthy on 127.0.0.1:$port (pid $(running_pid "$service")), cold start $(since "$t0") s"
}

# service_down SERVICE: SIGTERM the recorded pid, SIGKILL after STOP_TIMEOUT.
service_down() {
  local service=$1 pid t0=$SECONDS
  if ! pid=$(running_pid "$service"); then
    rm -f "$(pid_file "$service")"
    say "$service: not running (nothing started by this script)"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  while alive "$pid" && ((SECONDS - t0 < STOP_TIMEOUT)); do sleep 0.5; done
  if alive "$pid"; then
    warn "$service: pid $pid still alive after ${STOP_TIMEOUT}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while alive "$pid"; do sleep 0.2; done
  fi
  rm -f "$(pid_file "$service")" "$(port_file "$service")"
  say "$service: stopped (pid $pid, $((SECONDS - t0)) s)"
}

service_status() {
  local service=$1 port pid state
  port=$("${service}_port")
  if pid=$(running_pid "$service"); then
    port=$(cat "$(port_file "$service")" 2>/dev/null || echo "$port")
    state="up   pid $pid"
  elif port_open "$port"; then
    state="up   (not started by this script)"
  else
    printf '%-11s down  port %s\n' "$service" "$port"
    return 0
  fi
  "${service}_healthy" 2>/dev/null || state+=", NOT answering health check"
  printf '%-11s %s  port %s\n' "$service" "$state" "$port"
}

# ------------------------------------------------------------- OpenSearch ----

OS_VERSION='' OS_JAVA='' OS_HOME='' OS_DATA=''
readonly OS_RUN="$RUN_DIR/opensearch"

# opensearch_select: pick the version and JDK (3.x needs Java 21+, 2.x Java 11+).
opensearch_select() {
  [[ -z $OS_VERSION ]] || return 0
  if [[ -n ${CDP_OPENSEARCH_VERSION:-} ]]; then
    OS_VERSION=$CDP_OPENSEARCH_VERSION
    OS_JAVA=$(require_jdk "$(opensearch_min_java)" 999 "OpenSearch $OS_VERSION")
  elif OS_JAVA=$(find_jdk 21); then
    OS_VERSION=3.6.0
  else
    OS_VERSION=2.19.6
    OS_JAVA=$(require_jdk 11 999 "OpenSearch $OS_VERSION")
  fi
  OS_HOME="$OPT_DIR/opensearch-$OS_VERSION"
  OS_DATA="$OS_RUN/data/$OS_VERSION" # per version: an older node cannot read newer data
}

opensearch_min_java() { if ((${OS_VERSION%%.*} >= 3)); then echo 21; else echo 11; fi; }

opensearch_port() { echo "$OPENSEARCH_PORT"; }
opensearch_logs() { printf '%s\n' "$OS_RUN/logs/cdp-local.log" "$OS_RUN/logs/console.log"; }

opensearch_healthy() {
  curl -fsS -m 5 -o /dev/null \
    "http://127.0.0.1:$OPENSEARCH_PORT/_cluster/health?wait_for_status=yellow&timeout=1s" 2>/dev/null
}

# OpenSearch refuses to run as root: commands are prefixed with this to drop to
# $OPENSEARCH_USER (setpriv execs, so pids stay valid); empty when not root.
OS_AS_USER=()
is_root && OS_AS_USER=(setpriv --reuid="$OPENSEARCH_USER" --regid="$OPENSEARCH_USER" --init-groups)

opensearch_install() {
  opensearch_select
  need_cmd curl
  say "opensearch: version $OS_VERSION on JDK $OS_JAVA (Java $(jdk_major "$OS_JAVA"))"
  [[ -x $OS_HOME/bin/opensearch ]] || opensearch_unpack
  mkdir -p "$OS_DATA" "$OS_RUN"/{logs,tmp}
  cat >"$OS_HOME/config/opensearch.yml" <<EOF
# Written by scripts/deps.sh on every start; edit the script, not this file.
cluster.name: cdp-local
node.name: node-1
path.data: $OS_DATA
path.logs: $OS_RUN/logs
network.host: 127.0.0.1
http.port: $OPENSEARCH_PORT
transport.port: $OPENSEARCH_TRANSPORT_PORT
discovery.type: single-node
# Small CI disks must not push shards into read-only mode.
cluster.routing.allocation.disk.threshold_enabled: false
EOF
  printf '%s\n' -Xms1g -Xmx1g >"$OS_HOME/config/jvm.options.d/cdp-heap.options"

  if is_root; then
    id -u "$OPENSEARCH_USER" >/dev/null 2>&1 ||
      useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin "$OPENSEARCH_USER" || die "cannot create user $OPENSEARCH_USER"
    chown -R "$OPENSEARCH_USER:" "$OS_HOME" "$OS_RUN"
    "${OS_AS_USER[@]}" test -x "$OS_HOME/bin/opensearch" -a -w "$OS_DATA" ||
      die "user $OPENSEARCH_USER cannot reach $CACHE_DIR (a parent directory is not world-executable); set CDP_CACHE_DIR elsewhere"
  fi
}

opensearch_start() {
  # No -d: the launcher execs java in the foreground, so spawn's pid is the JVM.
  # -q keeps the console quiet; the log goes to path.logs.
  spawn opensearch "$OS_RUN" "$OS_RUN/logs/console.log" \
    "${OS_AS_USER[@]}" env HOME="$OS_RUN" OPENSEARCH_JAVA_HOME="$OS_JAVA" \
    OPENSEARCH_TMPDIR="$OS_RUN/tmp" "$OS_HOME/bin/opensearch" -q
}

# opensearch_unpack: download and unpack the integ-test zip into OS_HOME.
opensearch_unpack() {
  local zip="$DL_DIR/opensearch-$OS_VERSION.zip" tmp="$OPT_DIR/.opensearch-$OS_VERSION.tmp" t0
  download "$MAVEN_REPO/org/opensearch/distribution/integ-test-zip/opensearch/$OS_VERSION/opensearch-$OS_VERSION.zip" "$zip"
  need_cmd unzip
  t0=$(now)
  rm -rf "$tmp" && mkdir -p "$tmp"
  unzip -q "$zip" -d "$tmp" || die "cannot unpack $zip (delete it to download again)"
  opensearch_add_analysis_common "$tmp/opensearch-$OS_VERSION"
  mv "$tmp/opensearch-$OS_VERSION" "$OS_HOME"
  rm -rf "$tmp"
  say "opensearch: unpacked to $OS_HOME in $(since "$t0") s"
}

# opensearch_add_analysis_common HOME: the 2.x integ-test zips ship only the
# transport module; add analysis-common (cjk and the other built-in analyzers)
# from its Maven Central jar. The 3.x zips already contain it.
opensearch_add_analysis_common() {
  local dir="$1/modules/analysis-common" jar="$DL_DIR/analysis-common-$OS_VERSION.jar" class
  [[ -d $dir ]] && return 0
  download "$MAVEN_REPO/org/opensearch/plugin/analysis-common/$OS_VERSION/analysis-common-$OS_VERSION.jar" "$jar"
  class=$(unzip -Z1 "$jar" | sed -n 's:^\(org/opensearch/analysis/common/CommonAnalysis[A-Za-z]*Plugin\)\.class$:\1:p' | tr / .)
  [[ -n $class ]] || die "no plugin class in $jar"
  mkdir -p "$dir"
  cp "$jar" "$dir/"
  # No extended.plugins=lang-painless: painless is not in these zips either.
  cat >"$dir/plugin-descriptor.properties" <<EOF
description=Adds "built in" analyzers to OpenSearch (added by scripts/deps.sh).
version=$OS_VERSION
name=analysis-common
classname=$class
java.version=$(opensearch_min_java)
opensearch.version=$OS_VERSION
custom.foldername=
extended.plugins=
has.native.controller=false
EOF
}

# The CJK bigram analyzer comes from the analysis-common module; the app needs it.
opensearch_check_cjk() {
  local out
  out=$(curl -fsS -m 10 -H 'Content-Type: application/json' -X POST \
    "http://127.0.0.1:$OPENSEARCH_PORT/_analyze" -d '{"analyzer":"cjk","text":"张三丰"}') ||
    die "opensearch: the cjk analyzer is not available"
  [[ $out == *'"张三"'* ]] || die "opensearch: unexpected cjk analyzer output: $out"
  say "opensearch: cjk analyzer ok"
}

opensearch_up() {
  service_up opensearch "$OPENSEARCH_PORT" "$OPENSEARCH_PORT" "$OPENSEARCH_TRANSPORT_PORT"
  opensearch_check_cjk
}

# ------------------------------------------------------------------ Kafka ----

KAFKA_VERSION='' KAFKA_JAVA='' KAFKA_LIBS='' KAFKA_DATA=''
readonly KAFKA_RUN="$RUN_DIR/kafka"

# kafka_select: the version (from the pom) and where its jars go.
kafka_select() {
  KAFKA_VERSION=${CDP_KAFKA_VERSION:-$(sed -n 's:.*<kafka\.version>\(.*\)</kafka\.version>.*:\1:p' "$KAFKA_POM")}
  [[ -n $KAFKA_VERSION ]] || die "cannot read kafka.version from $KAFKA_POM"
  KAFKA_LIBS="$OPT_DIR/kafka-$KAFKA_VERSION/libs"
  KAFKA_DATA="$KAFKA_RUN/data/$KAFKA_VERSION" # per version, like OpenSearch
}

kafka_port() { echo "$KAFKA_PORT"; }
kafka_logs() { printf '%s\n' "$KAFKA_RUN/logs/server.log" "$KAFKA_RUN/logs/console.log"; }

# kafka_install: resolve the jars with Maven (again whenever the pom changes).
kafka_install() {
  kafka_select
  # Kafka 4 brokers need Java 17+; 17 and 21 are fully supported, newer best-effort.
  KAFKA_JAVA=$(require_jdk 17 21 "Kafka $KAFKA_VERSION")
  say "kafka: version $KAFKA_VERSION on JDK $KAFKA_JAVA (Java $(jdk_major "$KAFKA_JAVA"))"
  local stamp="$KAFKA_LIBS/.pom.sha1" want tmp="$KAFKA_LIBS.tmp" t0
  want="$KAFKA_VERSION $(sha1sum <"$KAFKA_POM" | cut -d' ' -f1)"
  if [[ ! -f $stamp || $(<"$stamp") != "$want" ]]; then
    need_cmd mvn maven
    say "kafka: resolving jars with Maven"
    t0=$(now)
    rm -rf "$tmp"
    JAVA_HOME="$KAFKA_JAVA" logged "$KAFKA_RUN/logs/mvn.log" mvn -B -Dstyle.color=never -f "$KAFKA_POM" \
      -Dkafka.version="$KAFKA_VERSION" -DoutputDirectory="$tmp" dependency:copy-dependencies ||
      die "mvn failed to fetch the Kafka $KAFKA_VERSION jars"
    rm -rf "$KAFKA_LIBS"
    mv "$tmp" "$KAFKA_LIBS"
    echo "$want" >"$stamp"
    say "kafka: fetched $(find "$KAFKA_LIBS" -name "*.jar" | wc -l) jars ($(du -sm "$KAFKA_LIBS" | cut -f1) MiB) in $(since "$t0") s"
  fi
  mkdir -p "$KAFKA_DATA" "$KAFKA_RUN/logs"
  kafka_write_config
}

kafka_write_config() {
  cat >"$KAFKA_RUN/server.properties" <<EOF
# Written by scripts/deps.sh on every start: one KRaft node, broker + controller.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA
num.partitions=4
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  # Broker: INFO to logs/server.log. Command-line tools: warnings to stderr.
  cat >"$KAFKA_RUN/log4j2.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="warn">
  <Appenders>
    <RollingFile name="server" fileName="${sys:kafka.logs.dir}/server.log"
                 filePattern="${sys:kafka.logs.dir}/server.log.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <SizeBasedTriggeringPolicy size="50 MB"/>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="server"/></Root>
  </Loggers>
</Configuration>
EOF
  cat >"$KAFKA_RUN/tools-log4j2.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="warn">
  <Appenders>
    <Console name="stderr" target="SYSTEM_ERR"><PatternLayout pattern="[%d] %p %m (%c)%n"/></Console>
  </Appenders>
  <Loggers>
    <Root level="WARN"><AppenderRef ref="stderr"/></Root>
  </Loggers>
</Configuration>
EOF
  printf '%s\n' request.timeout.ms=5000 default.api.timeout.ms=10000 >"$KAFKA_RUN/tools.properties"
}

# kafka_tool CLASS ARGS...: run a Kafka command-line class from the libs dir.
kafka_tool() {
  timeout 120 "$KAFKA_JAVA/bin/java" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$KAFKA_RUN/tools-log4j2.xml" -cp "$KAFKA_LIBS/*" "$@"
}

kafka_healthy() {
  port_open "$KAFKA_PORT" && [[ -x $KAFKA_JAVA/bin/java && -d $KAFKA_LIBS ]] &&
    kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" \
      --command-config "$KAFKA_RUN/tools.properties" --list >/dev/null 2>&1
}

kafka_start() {
  if [[ ! -f $KAFKA_DATA/meta.properties ]]; then
    local cluster_id
    cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
    say "kafka: formatting storage (cluster id $cluster_id)"
    logged "$KAFKA_RUN/logs/format.log" kafka_tool kafka.tools.StorageTool format --ignore-formatted \
      --cluster-id "$cluster_id" --config "$KAFKA_RUN/server.properties" ||
      die "kafka: formatting the storage failed"
  fi
  spawn kafka "$KAFKA_RUN" "$KAFKA_RUN/logs/console.log" \
    "$KAFKA_JAVA/bin/java" -Xms512m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    -Dkafka.logs.dir="$KAFKA_RUN/logs" -Dlog4j2.configurationFile="$KAFKA_RUN/log4j2.xml" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_RUN/server.properties"
}

kafka_up() { service_up kafka "$KAFKA_PORT" "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; }

# ------------------------------------------------------------------ Redis ----

readonly REDIS_RUN="$RUN_DIR/redis"

redis_port() { echo "$REDIS_PORT"; }
redis_logs() { printf '%s\n' "$REDIS_RUN/logs/redis.log" "$REDIS_RUN/logs/console.log"; }

redis_healthy() {
  local reply
  reply=$(
    exec 2>/dev/null 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT" || exit 1
    printf 'PING\r\n' >&3
    IFS= read -r -t 2 line <&3 && printf '%s' "$line"
  ) || return 1
  [[ $reply == +PONG* ]]
}

redis_install() {
  command -v redis-server >/dev/null && return 0
  apt_install redis-server
  # Some init systems ignore policy-rc.d for enabling: keep the system instance off.
  if [[ -d /run/systemd/system ]]; then
    systemctl disable --now redis-server >/dev/null 2>&1 || true
  fi
  command -v redis-server >/dev/null || die "redis-server not found after apt-get install"
}

redis_start() {
  mkdir -p "$REDIS_RUN"/{data,logs}
  spawn redis "$REDIS_RUN" "$REDIS_RUN/logs/console.log" \
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize no --dir "$REDIS_RUN/data" \
    --save '' --appendonly no --logfile "$REDIS_RUN/logs/redis.log"
}

redis_up() { service_up redis "$REDIS_PORT" "$REDIS_PORT"; }

# browser_install: the headless browser of the console's tests, and a font
# with Chinese glyphs for its pages. Not a service: nothing is started.
browser_install() {
  local missing=()
  command -v chromium >/dev/null || missing+=(chromium)
  if command -v fc-list >/dev/null && [[ -z $(fc-list :lang=zh 2>/dev/null | head -n 1) ]]; then
    missing+=(fonts-wqy-microhei)
  fi
  ((${#missing[@]})) || return 0
  if is_root && command -v apt-get >/dev/null; then
    apt_install "${missing[@]}"
  else
    warn "missing ${missing[*]}: the console's browser tests need chromium (apt-get install ${missing[*]})"
  fi
}

# ------------------------------------------------------------------- main ----

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
  exit 2
}

main() {
  (($# >= 1)) || usage
  local cmd=$1 service t0 i
  shift
  local services=("$@")
  ((${#services[@]})) || services=("${ALL_SERVICES[@]}")
  for service in "${services[@]}"; do
    [[ " ${ALL_SERVICES[*]} " == *" $service "* ]] || { warn "unknown service: $service"; usage; }
  done

  # Services are always handled in ALL_SERVICES order (reversed for down).
  local ordered=()
  for service in "${ALL_SERVICES[@]}"; do
    if [[ " ${services[*]} " == *" $service "* ]]; then ordered+=("$service"); fi
  done

  case $cmd in
  up)
    t0=$(now)
    mkdir -p "$DL_DIR" "$OPT_DIR" "$RUN_DIR"
    for service in "${ordered[@]}"; do "${service}_up"; done
    browser_install
    say "up: ${ordered[*]} ready in $(since "$t0") s"
    ;;
  down)
    for ((i = ${#ordered[@]} - 1; i >= 0; i--)); do service_down "${ordered[i]}"; done
    ;;
  status)
    kafka_select
    KAFKA_JAVA=$(find_jdk 17 21) || true
    for service in "${ordered[@]}"; do service_status "$service"; done
    ;;
  *) usage ;;
  esac
}

main "$@"
