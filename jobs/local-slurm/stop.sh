#!/usr/bin/env bash
# Stop the single-node SLURM cluster started by jobs/local-slurm/start.sh.
#
#   bash jobs/local-slurm/stop.sh
#
# Cancels all jobs (and waits for them to leave the queue), then stops slurmd, slurmctld
# and munged -- but only the daemons whose PID files start.sh keeps in the runtime dir
# ($CSST_SLURM_DIR, default /tmp/csst-slurm); a munged that was already running before
# start.sh is left alone. Idempotent: with nothing running it just says so.
# /etc/slurm/slurm.conf, the munge key, the state dir and the logs are kept.
#
# Exit codes: 0 stopped (or nothing to stop); 3 not root; 1 a daemon would not die.
set -euo pipefail

SLURM_DIR="${CSST_SLURM_DIR:-/tmp/csst-slurm}"
TIMEOUT="${CSST_SLURM_TIMEOUT:-60}"
export PATH="$PATH:/usr/sbin:/sbin"

log() { echo "csst-slurm: $*" >&2; }

# Is process $1 running? A zombie counts as gone (in some sandboxes PID 1 reaps orphaned
# zombies only after a while, so /proc/PID lingers after the daemon has exited).
running() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    [[ ${stat##*) } != [ZX]* ]]
}

# PID in file $1 if that process is running and named $2 (guards against recycled PIDs).
live_pid() {
    local pidfile=$1 name=$2 pid
    [[ -s $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] && running "$pid" || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name"* ]] || return 1
    echo "$pid"
}

# Stop the daemon in PID file $1 named $2: SIGTERM, wait, SIGKILL as a last resort.
stop_daemon() {
    local pidfile=$1 name=$2 pid
    if ! pid=$(live_pid "$pidfile" "$name"); then
        rm -f "$pidfile"
        return 0
    fi
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq $((TIMEOUT * 5))); do
        running "$pid" || break
        sleep 0.2
    done
    if running "$pid"; then
        log "$name (pid $pid) ignored SIGTERM for ${TIMEOUT}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 1
        ! running "$pid" || { log "ERROR: $name (pid $pid) will not die"; return 1; }
    fi
    rm -f "$pidfile"
}

[[ $EUID -eq 0 ]] || { log "SKIP: needs root (the daemons run as root)"; exit 3; }

ctld_pid=$(live_pid "$SLURM_DIR/run/slurmctld.pid" slurmctld || true)
slurmd_pid=$(live_pid "$SLURM_DIR/run/slurmd.pid" slurmd || true)
munged_pid=$(live_pid "$SLURM_DIR/munge/munged.pid" munged || true)
if [[ -z $ctld_pid && -z $slurmd_pid && -z $munged_pid ]]; then
    log "nothing to stop (no daemons from start.sh running; runtime dir $SLURM_DIR)"
    rm -f "$SLURM_DIR"/run/*.pid "$SLURM_DIR/munge/munged.pid"
    exit 0
fi

# 1. Cancel every job while the controller is still there, and wait for the queue to
#    drain (squeue keeps COMPLETING jobs until their processes are gone).
if [[ -n $ctld_pid ]] && scontrol ping 2>/dev/null | grep -q 'is UP'; then
    if [[ -n $(squeue -h -o %i 2>/dev/null) ]]; then
        log "cancelling jobs: $(squeue -h -o %i | tr '\n' ' ')"
        scancel --user root 2>/dev/null || true
        # shellcheck disable=SC2046  # jobs of any other user too (ids have no spaces)
        scancel $(squeue -h -o %i 2>/dev/null) 2>/dev/null || true
        deadline=$((SECONDS + TIMEOUT))
        while [[ -n $(squeue -h -o %i 2>/dev/null) ]] && ((SECONDS < deadline)); do
            sleep 0.5
        done
        [[ -z $(squeue -h -o %i 2>/dev/null) ]] \
            || log "jobs still in the queue after ${TIMEOUT}s; stopping the daemons anyway"
    fi
fi

# 2. Daemons, in reverse start order (slurmd first so the controller sees it go away).
rc=0
stop_daemon "$SLURM_DIR/run/slurmd.pid" slurmd || rc=1
stop_daemon "$SLURM_DIR/run/slurmctld.pid" slurmctld || rc=1
stop_daemon "$SLURM_DIR/munge/munged.pid" munged || rc=1
((rc == 0)) && log "stopped (config, state and logs kept in $SLURM_DIR)"
exit "$rc"
