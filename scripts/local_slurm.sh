#!/usr/bin/env bash
# A single-node SLURM cluster on loopback, to try `snakemake --profile slurm` without a cluster (and for CI).
#
#   sudo bash scripts/local_slurm.sh up     # install (Debian/Ubuntu: munge, slurm-wlm), configure, start, test
#   sudo bash scripts/local_slurm.sh down   # stop exactly the daemons `up` started (by their PID files)
#
# The node offers the partitions the profile names (`cpu`, `gpu`) and two fake GPUs (GRES backed by
# /dev/null and /dev/zero: jobs asking for --gpus=1 are scheduled, but there is no CUDA device). It
# advertises 16 CPUs and 64 GB (SlurmdParameters=config_overrides) so that the profile's requests fit as
# written; jobs really share this machine's cores. There is no accounting database, so Snakemake must poll
# job states with squeue: add `--slurm-status-command squeue` (see docs/pipeline.md, "SLURM on one machine").
# Every daemon listens on 127.0.0.1 only. Needs root; no systemd (daemons are started directly).
set -euo pipefail

NODE=$(hostname -s)
CONF=/etc/slurm
STATE=/var/spool/rsmooth-slurm
LOGS=/var/log/rsmooth-slurm
PIDS="/run/munge/munged.pid /run/rsmooth-slurmctld.pid /run/rsmooth-slurmd.pid"

say() { echo "[local_slurm] $*"; }

until_true() { # until_true SECONDS COMMAND...: retry COMMAND every 0.2 s
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "[local_slurm] timed out waiting for: $*" >&2
      return 1
    fi
    sleep 0.2
  done
}

stop() { # stop the process whose PID is in file $1, if it is alive
  local pid
  [ -s "$1" ] || return 0
  pid=$(cat "$1")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    until_true 20 bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}

down() {
  local f
  for f in $PIDS; do stop "$f"; done
  # Without a configuration the SLURM tools fail at once; with one whose controller is gone, `scontrol show
  # config` waits 9 s, and the SLURM executor plugin runs it whenever Snakemake starts. Only our own file.
  if [ -e "$CONF/slurm.conf" ] && grep -q "Written by rsmooth scripts/local_slurm.sh" "$CONF/slurm.conf"; then
    rm -f "$CONF/slurm.conf"
  fi
  say "stopped slurmd, slurmctld and munged"
}

install_packages() {
  if ! dpkg -s munge slurm-wlm >/dev/null 2>&1; then
    say "installing munge and slurm-wlm"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq munge slurm-wlm >/dev/null
  fi
}

write_config() {
  # Never overwrite a real cluster's configuration.
  if [ -e "$CONF/slurm.conf" ] && ! grep -q "Written by rsmooth scripts/local_slurm.sh" "$CONF/slurm.conf"; then
    echo "[local_slurm] $CONF/slurm.conf exists and was not written by this script; refusing to replace it" >&2
    exit 1
  fi
  mkdir -p "$CONF" "$STATE/ctld" "$STATE/d" "$LOGS"
  cat >"$CONF/slurm.conf" <<EOF
# Written by rsmooth scripts/local_slurm.sh: one node on 127.0.0.1.
ClusterName=rsmooth-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
# Bind to the address the node name resolves to (127.0.0.1), never to 0.0.0.0.
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=/run/rsmooth-slurmctld.pid
SlurmdPidFile=/run/rsmooth-slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
# A job without --mem must not take the whole node.
DefMemPerCPU=1000
# squeue must still list finished jobs when Snakemake polls.
MinJobAge=600
# Time limits are enforced promptly (the fault tests rely on it).
KillWait=5
OverTimeLimit=0
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
GresTypes=gpu
# Advertise the configured CPUs/memory rather than the machine's, so that the profile's GPU requests fit.
SlurmdParameters=config_overrides
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=16 RealMemory=64000 Gres=gpu:2 State=UNKNOWN
PartitionName=gpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=cpu Nodes=ALL MaxTime=INFINITE State=UP
EOF
  # A GRES needs device files; any two character devices will do for a fake GPU.
  cat >"$CONF/gres.conf" <<EOF
AutoDetect=off
NodeName=$NODE Name=gpu File=/dev/null
NodeName=$NODE Name=gpu File=/dev/zero
EOF
}

up() {
  install_packages
  if ! getent hosts "$NODE" | grep -q '^127\.'; then
    if getent hosts "$NODE" >/dev/null; then
      echo "[local_slurm] $NODE resolves to a non-loopback address; refusing to start" >&2
      exit 1
    fi
    echo "127.0.0.1 $NODE" >>/etc/hosts
  fi
  down >/dev/null # idempotent: whatever an earlier run left behind goes first
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile /etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
  install -d -o munge -g munge -m 0755 /run/munge
  runuser -u munge -- /usr/sbin/munged
  until_true 10 bash -c 'munge -n | unmunge'
  write_config
  /usr/sbin/slurmctld -c # -c: ignore saved state, so no drained node or stale job survives a restart
  /usr/sbin/slurmd
  until_true 30 bash -c "sinfo -h -N -o %T | grep -qx idle"
  srun -p gpu -t 1 --gpus=1 true
  say "up: $(sinfo -h -N -o '%N %P %T %c CPUs %m MB %G' | tr '\n' ' ')"
}

case "${1:-}" in
up) up ;;
down) down ;;
*)
  echo "usage: $0 up|down" >&2
  exit 2
  ;;
esac
