#!/bin/bash
# A single-node Slurm (munged, slurmctld, slurmd) for the slurm-labelled tests and for trying the
# jobs/ scripts on one machine, without systemd (docs/cluster.md, recipe in the shared design
# notes: Debian 12, root, 2 cores, nodes declared with 4 CPUs).
#
#   scripts/slurm.sh start    install what is missing (apt), write /etc/slurm/slurm.conf, start
#                             munged, slurmctld, slurmd by hand, wait until the node is idle;
#                             pids go to $FRESCO_SLURM_STATE (default /run/fresco-slurm)
#   scripts/slurm.sh stop     cancel all jobs, stop the three daemons by their recorded pids
#   scripts/slurm.sh stop --force   stop even while other users of this script hold it
#   scripts/slurm.sh status   exit 0 when the node answers and is usable
#
# The node has 4 CPUs and no GPU; the jobs/ scripts ask for 8 GPUs and 8 cores per rank. Submit
# them here with the documented override (docs/cluster.md, "Without GPUs"), as the tests do:
#   sbatch --gpus-per-node=0 -N 1 --ntasks-per-node=2 --cpus-per-task=1 jobs/generate.sbatch
#
# `start` exits 0 when Slurm is usable. Otherwise it exits non-zero and writes the reason to
# $FRESCO_SLURM_STATE/unavailable (the tests print it when they skip). It never touches a Slurm
# it did not start: if a foreign slurmctld already answers, it only checks the node and records
# nothing. Two `make test` at once share one Slurm: `start` on a Slurm this script started
# counts one more user, `stop` one less, and the daemons stop with the last user.
set -uo pipefail

STATE=${FRESCO_SLURM_STATE:-/run/fresco-slurm}
CONF=/etc/slurm/slurm.conf
HOST=$(hostname -s)

say() { echo "slurm.sh: $*" >&2; }
unavailable() {
  mkdir -p "$STATE" 2>/dev/null && echo "$*" > "$STATE/unavailable"
  say "Slurm not available: $*"
  exit 1
}

node_state() { sinfo -h -n "$HOST" -o %T 2>/dev/null | head -1; }

wait_idle() {
  local s
  for _ in $(seq 150); do
    s=$(node_state)
    case "$s" in idle|mixed|allocated) return 0 ;; esac
    sleep 0.2
  done
  return 1
}

install_packages() {
  local missing=()
  command -v slurmctld >/dev/null || missing+=(slurmctld)
  command -v slurmd >/dev/null || missing+=(slurmd)
  command -v sbatch >/dev/null || missing+=(slurm-client)
  command -v munged >/dev/null || missing+=(munge)
  # Slurm's pmix plugin dlopen()s the unversioned libpmix.so, which only libpmix-dev ships.
  ls /usr/lib/*/pmix2/lib/libpmix.so >/dev/null 2>&1 || missing+=(libpmix-dev)
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || unavailable "packages ${missing[*]} are missing and installing them needs root"
  command -v apt-get >/dev/null || unavailable "packages ${missing[*]} are missing and there is no apt-get"
  say "installing ${missing[*]}"
  (exec 9>&-; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
     "${missing[@]}") >"$STATE/apt.log" 2>&1 || unavailable "apt-get install ${missing[*]} failed (see $STATE/apt.log)"
}

write_config() {
  mkdir -p /etc/slurm
  cat > "$CONF" <<EOF
# Written by fresco scripts/slurm.sh: a single-node Slurm for tests (no systemd, no cgroups).
ClusterName=fresco-ci
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
# a requeued job is held cred_expire+1 s (default 120 s) before it may start again
AuthInfo=cred_expire=10
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# no cgroup binding: it cannot lay out 4 tasks on the 4 declared CPUs of a 2-core machine
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
MinJobAge=3600
MpiDefault=pmix
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
InactiveLimit=0
KillWait=10
JobRequeue=1
SchedulerParameters=bf_interval=2,sched_interval=5
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=4 Boards=1 SocketsPerBoard=1 CoresPerSocket=4 ThreadsPerCore=1 RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

users() { cat "$STATE/users" 2>/dev/null || echo 0; }

start() {
  mkdir -p "$STATE" || unavailable "cannot create $STATE"
  exec 9>"$STATE/lock"
  flock 9
  rm -f "$STATE/unavailable"
  if command -v scontrol >/dev/null && scontrol ping 2>/dev/null | grep -q UP; then
    wait_idle || unavailable "a running Slurm answers but node $HOST is not usable ($(node_state))"
    if [ -s "$STATE/slurmctld.pid" ] && kill -0 "$(cat "$STATE/slurmctld.pid")" 2>/dev/null; then
      echo $(($(users) + 1)) > "$STATE/users"
      say "Slurm already started by this script; now $(users) user(s)"
    else
      say "a Slurm is already running; using it (not stopped by 'stop')"
    fi
    return 0
  fi
  [ "$(id -u)" -eq 0 ] || unavailable "starting slurmctld/slurmd/munged needs root (running as $(id -un))"
  install_packages
  write_config

  # munged
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key >/dev/null 2>&1 ||
    unavailable "cannot create /etc/munge/munge.key"
  chown munge:munge /etc/munge/munge.key 2>/dev/null; chmod 0600 /etc/munge/munge.key
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge /var/log/munge /var/lib/munge
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    # 9>&-: the daemons must not inherit the lock (it would stay held for their lifetime)
    runuser -u munge -- /usr/sbin/munged 9>&- || unavailable "munged did not start"
    cp /run/munge/munged.pid "$STATE/munged.pid"
  fi
  munge -n | unmunge 2>/dev/null | grep -q Success || unavailable "munge authentication does not work"

  # slurmctld (drops to user slurm; cannot delete its own pid file later), then slurmd
  install -d -o slurm -g slurm /var/spool/slurmctld /var/log/slurm
  install -d /var/spool/slurmd
  rm -f /run/slurmctld.pid /run/slurmd.pid
  slurmctld -c 9>&- || unavailable "slurmctld did not start (see /var/log/slurm/slurmctld.log)"
  for _ in $(seq 50); do [ -s /run/slurmctld.pid ] && break; sleep 0.1; done
  cp /run/slurmctld.pid "$STATE/slurmctld.pid" 2>/dev/null
  slurmd -c 9>&- || unavailable "slurmd did not start (see /var/log/slurm/slurmd.log)"
  for _ in $(seq 50); do [ -s /run/slurmd.pid ] && break; sleep 0.1; done
  cp /run/slurmd.pid "$STATE/slurmd.pid" 2>/dev/null
  if ! wait_idle; then
    local why; why=$(sinfo -R -h 2>/dev/null | head -1)
    stop >/dev/null 2>&1
    mkdir -p "$STATE"
    unavailable "node $HOST did not become idle within 30 s (${why:-no reason given}; see /var/log/slurm/slurmd.log)"
  fi
  echo 1 > "$STATE/users"
  say "Slurm up: node $HOST idle, pids in $STATE"
  say "no GPU here: submit the jobs/ scripts with sbatch --gpus-per-node=0 -N 1 --ntasks-per-node=2 --cpus-per-task=1 (docs/cluster.md)"
}

stop_pid() {  # file, name
  [ -s "$1" ] || return 0
  local pid; pid=$(cat "$1")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { say "$2 ($pid) still alive after 5 s; killing"; kill -KILL "$pid"; }
  fi
  rm -f "$1"
}

stop() {
  [ -d "$STATE" ] || return 0
  exec 9>"$STATE/lock"
  flock 9
  [ -s "$STATE/slurmctld.pid" ] || [ -s "$STATE/munged.pid" ] || return 0  # not ours
  local n; n=$(users)
  if [ "${1:-}" != --force ] && [ "$n" -gt 1 ]; then
    echo $((n - 1)) > "$STATE/users"
    say "Slurm still used by $((n - 1)) other user(s); left running"
    return 0
  fi
  rm -f "$STATE/users"
  if [ -s "$STATE/slurmctld.pid" ]; then
    scancel --full --quiet --user=root 2>/dev/null
    scancel --quiet --user=root 2>/dev/null
    sleep 0.5
  fi
  stop_pid "$STATE/slurmd.pid" slurmd
  stop_pid "$STATE/slurmctld.pid" slurmctld
  rm -f /run/slurmctld.pid /run/slurmd.pid   # stale ones break the packages' prerm scripts
  stop_pid "$STATE/munged.pid" munged
  say "Slurm stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  status) [ "$(scontrol ping 2>/dev/null | grep -c UP)" -gt 0 ] && wait_idle ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
