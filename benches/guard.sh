#!/usr/bin/env bash
# What the kernel guard and padded programs cost.
#
#   ./x bench guard     (root; ~3 minutes)
#
# 1. The guard's exec tracepoint on programs from a watched filesystem: posix_spawn of
#    /usr/bin/true in a chroot on a tmpfs the agent watches (benches/agent_workload.c), with
#    Portcullis in Secured mode with the guard, and with --no-guard, alternating, each agent
#    started afresh; the same run's no-agent time as a floor.
# 2. A permitted program padded to 1 GiB and to 4 GiB (sparse, as `truncate -s` makes it: the
#    evasion of ATT&CK T1027.001): the time from starting it until it has run, with a fresh
#    agent (nothing cached, so the agent hashes the whole file before answering), against
#    `sha256sum` and `openssl dgst -sha256` of the same file in the same run.
# Medians over the repetitions. Results go to benches/guard.md and the "Kernel guard" section
# of BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
REPS=${PORTCULLIS_GUARD_BENCH_REPS:-5}
SPAWNS=${PORTCULLIS_GUARD_BENCH_SPAWNS:-2000}
W=/tmp/portcullis-guard-bench
FS=$W/root

cleanup() {
    [ -n "${AGENT_PID:-}" ] && kill -KILL "$AGENT_PID" 2>/dev/null || true
    mountpoint -q "$FS" && umount -l "$FS" || true
}
trap cleanup EXIT

cargo build --release --quiet -p portcullis
P=$ROOT/target/release/portcullis
rm -rf "$W"; mkdir -p "$FS"
mount -t tmpfs -o size=256m tmpfs "$FS"
gcc -O2 -o "$W/agent_workload" benches/agent_workload.c
# The chroot: true, its interpreter and libraries, copied with their paths.
for f in /usr/bin/true $(ldd /usr/bin/true | grep -o '/[^ ]*'); do
    mkdir -p "$FS$(dirname "$f")"
    cp "$(readlink -f "$f")" "$FS$f"
done
# Padded copies of true: run from the tmpfs (watched), its libraries from the host.
for size in 1 4; do
    cp /usr/bin/true "$FS/true-${size}g"
    truncate -s "${size}G" "$FS/true-${size}g"
done

{
    echo '[organization]'
    echo 'name = "Guard benchmark"'
    echo 'mode = "secured"'
    echo
    echo '[[applications]]'
    echo 'name = "The chroot and the padded programs"'
    printf 'rules = [{ sha256 = ['
    find "$FS" -type f -print0 | xargs -0 sha256sum | awk '{print "\"" $1 "\""}' | sort -u | paste -sd, -
    echo '] }]'
    echo
    echo '[[policies]]'
    echo 'name = "Permit them"'
    echo 'position = 100'
    echo 'applications = ["The chroot and the padded programs"]'
    echo 'action = "permit"'
} >"$W/policy.toml"

start_portcullis() { # extra args...
    rm -f "$W/ready"; rm -rf "$W/spool"
    # The deadline is far away: this measures hashing, not the overload verdict.
    "$P" agent --policy "$W/policy.toml" --mark-under "$FS" --spool "$W/spool" --ready-file "$W/ready" \
        --no-protect --exit-after 900 --answer-timeout-ms 120000 --log warn "$@" 2>>"$W/agent.log" &
    AGENT_PID=$!
    for _ in $(seq 600); do [ -f "$W/ready" ] && break; sleep 0.01; done
    [ -f "$W/ready" ] || { cat "$W/agent.log" >&2; exit 1; }
}

stop_portcullis() {
    kill -TERM "$AGENT_PID"
    wait "$AGENT_PID"
    AGENT_PID=
}

seconds() { # command... : wall time of one run
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null
    t1=$(date +%s%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f\n", (b - a) / 1e9 }'
}

: >"$W/results.txt"
for rep in $(seq "$REPS"); do
    echo "repetition $rep/$REPS" >&2
    echo "none spawn $("$W/agent_workload" "$FS" spawn "$SPAWNS" | awk '{print $2}')" >>"$W/results.txt"
    start_portcullis
    echo "guard spawn $("$W/agent_workload" "$FS" spawn "$SPAWNS" | awk '{print $2}')" >>"$W/results.txt"
    stop_portcullis
    start_portcullis --no-guard
    echo "noguard spawn $("$W/agent_workload" "$FS" spawn "$SPAWNS" | awk '{print $2}')" >>"$W/results.txt"
    stop_portcullis
    for size in 1 4; do
        # Page cache warm for everyone: the first run of each reads the file once.
        cat "$FS/true-${size}g" >/dev/null
        echo "sha256sum pad$size $(seconds sha256sum "$FS/true-${size}g")" >>"$W/results.txt"
        echo "openssl pad$size $(seconds openssl dgst -sha256 "$FS/true-${size}g")" >>"$W/results.txt"
        start_portcullis
        echo "portcullis pad$size $(seconds "$FS/true-${size}g")" >>"$W/results.txt"
        echo "portcullis-again pad$size $(seconds "$FS/true-${size}g")" >>"$W/results.txt"
        stop_portcullis
    done
done
if grep -q "the kernel guard cannot load" "$W/agent.log"; then
    echo "the guard did not load: the comparison would measure nothing" >&2
    cat "$W/agent.log" >&2
    exit 1
fi

python3 - "$W/results.txt" "$REPS" "$SPAWNS" <<'PY'
import datetime, os, platform, re, statistics, sys
results, reps, spawns = sys.argv[1:]
t = {}
for line in open(results):
    who, what, secs = line.split()
    t.setdefault((who, what), []).append(float(secs))
med = {k: statistics.median(v) for k, v in t.items()}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
us = lambda who: med[(who, "spawn")] * 1e6 / int(spawns)
md = ["## Kernel guard and padded programs", "",
      f"Latest run: {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC on {platform.node()}: {cpu}, {os.cpu_count()} vCPU, Linux {platform.release()}.",
      f"Command: `./x bench guard` (benches/guard.sh); median of {reps} repetitions, each agent started afresh.", "",
      "The exec backstop on programs from a watched filesystem (the common case): posix_spawn of /usr/bin/true in a chroot on a tmpfs the agent watches, Portcullis in Secured mode with and without the guard. Ratio = without / with (1.00: nothing measurable).", "",
      "| Workload | No agent | Portcullis --no-guard | Portcullis with the guard | Ratio | Target |",
      "|---|---|---|---|---|---|",
      f"| posix_spawn of /usr/bin/true ×{spawns} | {us('none'):.2f} µs/exec | {us('noguard'):.2f} µs/exec | {us('guard'):.2f} µs/exec | {us('noguard')/us('guard'):.2f} | >= 0.95 |",
      "",
      "A permitted program padded to 1 and 4 GiB (sparse: `truncate -s`), first start with a fresh agent: the agent reads and hashes the whole file before it answers. Reference: hashing the same file with the usual tools, same run (page cache warm). Ratio = reference / Portcullis (above 1: Portcullis faster).", "",
      "| Program | `sha256sum` | `openssl dgst -sha256` | Portcullis, first start | Ratio to openssl | Second start |",
      "|---|---|---|---|---|---|"]
for size in (1, 4):
    k = f"pad{size}"
    s, o, p, again = (med[(w, k)] for w in ("sha256sum", "openssl", "portcullis", "portcullis-again"))
    md.append(f"| /usr/bin/true + {size} GiB of holes | {s:.2f} s ({size*1024/s:.0f} MB/s) | {o:.2f} s ({size*1024/o:.0f} MB/s) | {p:.2f} s ({size*1024/p:.0f} MB/s) | {o/p:.2f} | {again*1000:.0f} ms |")
md += ["",
       "Notes:",
       "- With the default 5 s answer deadline, a program that takes longer to hash is denied in Secured mode (code fails closed) and the hash finishes in the background: the next start is judged by the policy.",
       "- The agent computes only the hashes the policy uses (SHA-256 alone unless a policy lists SHA-1 or MD5), in one pass, with the CPU's SHA extensions where it has them.",
       "- The second start is answered from the agent's cache of file versions.",
       ""]
section = "\n".join(md)
open("benches/guard.md", "w").write(section)
bm = open("BENCHMARKS.md").read() if os.path.exists("BENCHMARKS.md") else "# Benchmarks\n"
if "## Kernel guard and padded programs" in bm:
    bm = re.sub(r"## Kernel guard and padded programs.*?(?=\n## |\Z)", lambda m: section.rstrip() + "\n", bm, flags=re.S)
else:
    bm = bm.rstrip() + "\n\n" + section
open("BENCHMARKS.md", "w").write(bm)
print(section)
PY
