#!/usr/bin/env bash
# ./x bench server: simulated agents (default 5,000) long-polling and posting events against
# one server on loopback, on SQLite and on PostgreSQL (Debian's, started by tests/postgres.sh);
# then the server tier: 50,000 agents (PORTCULLIS_TIER_AGENTS) spread over `portcullis server`
# processes sharing that PostgreSQL (three for 50,000), with their memory and idle CPU from /proc.
# Propagation is measured from the moment an administrator's change is sent to the moment each
# agent holds the new bundle; the reference in the same run is one agent alone. Ingestion is
# events stored per second with every agent posting at once; the reference is one agent alone.
# Results go to benches/server.md and the "Server" section of BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
AGENTS=${PORTCULLIS_LOAD_AGENTS:-5000}
TIER_AGENTS=${PORTCULLIS_TIER_AGENTS:-50000}
cargo build --release --quiet -p portcullis-server --example load
cargo build --release --quiet -p portcullis
BIN=target/release/examples/load
PG=$(bash tests/postgres.sh "$PWD/target/postgres")
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
export RUST_BACKTRACE=0
for db in sqlite "$PG"; do
    echo "==> $AGENTS agents on ${db%%:*}" >&2
    timeout -s KILL 1200 "$BIN" --agents "$AGENTS" --database "$db" >>"$OUT"
done
# Each process may hold at most `ulimit -Hn` open files (20,000 on the development machine):
# the agents are spread over enough server processes and load processes that none holds more
# than 16,700 connections.
TIER_SERVERS=${PORTCULLIS_TIER_SERVERS:-$(( (TIER_AGENTS + 16699) / 16700 > 2 ? (TIER_AGENTS + 16699) / 16700 : 2 ))}
TIER_WORKERS=${PORTCULLIS_TIER_WORKERS:-$(( (TIER_AGENTS + 12499) / 12500 ))}
echo "==> $TIER_AGENTS agents over $TIER_SERVERS server processes ($TIER_WORKERS load processes) on PostgreSQL" >&2
timeout -s KILL 2400 "$BIN" --agents "$TIER_AGENTS" --database "$PG" --servers "$TIER_SERVERS" \
    --server-bin target/release/portcullis --workers "$TIER_WORKERS" --batches 1 --batch-size 5 >>"$OUT"
python3 - "$OUT" <<'PY'
import json, os, platform, re, sys, time
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
md = ["## Server: agents long-polling and posting events", "",
      f"Latest run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.node()}: {cpu}, {os.cpu_count()} vCPU, Linux {platform.release()}.",
      "Command: `./x bench server` (benches/server.sh, crates/server/examples/load.rs): one server in-process on loopback, or (the tier) `portcullis server` processes sharing PostgreSQL, which hear each other's changes by LISTEN/NOTIFY; plain HTTP (TLS is not measured), every agent on its own keep-alive connection.",
      "Propagation: every agent waits in a long-poll; an administrator changes the organization's mode through the REST API (5 times); the time is from sending that request to each agent holding the new signed bundle. The reference is one agent alone, in the same run.",
      "Ingestion: every agent posts its batches of 25 events at once; events stored per second. The reference is one agent posting alone, in the same run.", "",
      "| Database | Servers | Agents | Propagation p50 | p99 | max | One agent alone (p50) | p99 × reference | Events/s, all agents | Events/s, one agent | × reference |",
      "|---|---|---|---|---|---|---|---|---|---|---|"]
for r in rows:
    servers = f"{r.get('servers', 1)} process{'es' if r.get('servers', 1) > 1 else ''}" if r.get("processes") else "1 in-process"
    md.append(f"| {r['backend']} | {servers} | {r['agents']:,} | {r['fleet_p50_s']*1000:.0f} ms | {r['fleet_p99_s']*1000:.0f} ms | {r['fleet_max_s']*1000:.0f} ms | "
              f"{r['single_p50_s']*1000:.1f} ms | {r['fleet_p99_s']/max(r['single_p50_s'],1e-9):.0f}× | {r['fleet_events_per_s']:,.0f} | "
              f"{r['single_events_per_s']:,.0f} | {r['fleet_events_per_s']/max(r['single_events_per_s'],1e-9):.1f}× |")
tier = [r for r in rows if r.get("processes") and r.get("idle")]
if tier:
    md += ["", "Server tier (separate processes, from /proc): the agents wait idle in long-polls for the given seconds; memory is each server's resident growth from before enrollment to then, per agent it holds; CPU is each server's CPU time in that idle window, as a share of one core, per 1,000 agents it holds.", "",
           "| Agents | Servers | Idle window | Server RSS | Memory per connected agent | CPU per 1,000 idle agents |", "|---|---|---|---|---|---|"]
    for r in tier:
        i = r["idle"]
        md.append(f"| {r['agents']:,} | {r['servers']} | {i['idle_s']} s | " + ", ".join(f"{b/2**20:.0f} MiB" for b in i["server_rss_bytes"]) + " | "
                  + ", ".join(f"{b/1024:.1f} KiB" for b in i["rss_per_agent_bytes"]) + " | " + ", ".join(f"{c*100:.2f} % of a core" for c in i["cpu_share_per_1000_idle_agents"]) + " |")
    for r in tier:
        if r["fleet_p99_s"] > 2:
            md += ["", f"**The 2 s target is not met by the {r['agents']:,}-agent tier on this machine** (p99 {r['fleet_p99_s']:.1f} s). The single agent's propagation in the same run ({r['single_p50_s']*1000:.0f} ms) is the change itself: the API checks the whole model with every computer, and each server compiles it once. The rest is delivery: every agent gets its own bundle, built and signed for it, and here {r['servers']} servers, PostgreSQL and {r.get('workers', 1)} load processes (which read only each bundle's version) share 2 vCPUs, so {r['agents']:,} deliveries queue for the CPU. It was not measured on a machine with more cores."]
    md += ["", "How the tier run stays bounded on this machine: each agent keeps one connection from its enrollment to the end, made from its own source address in 127.0.0.0/8 (one of 200), so the source ports of one address never run out; a process may hold at most `ulimit -Hn` open files (20,000 here, and it cannot be raised), so the agents are spread over enough server processes (at most 16,700 connections each: three for 50,000, where the issue asked for two) and over load processes holding 12,500 connections each, driven by one coordinator over their stdin and stdout and timed by the wall clock they share; the run has a 40-minute limit and every phase its own; events: one batch of 5 per agent."]
md += ["", "Target: a change saved in the console is enforced by an enrolled agent within 2 s (p99 above, plus the agent's reload, a few ms; the real-agent test in crates/cli/tests/agent.rs measures the whole path).",
       "Notes: the simulated agents run in the same process on the same vCPUs as the server (their JSON parsing competes with it), so the figures are conservative. A change with 5,000 computers costs the API about 0.1 s before any agent is told (the whole organization's policy is loaded and checked, exactly as an agent would). Agents' contacts are written once a second in one transaction, 500 to a statement; events are inserted one batch per transaction. History of the 50,000 tier: 2026-12-06, p50 8.1 s and p99 13.2 s; 2026-12-07, after long-polls stopped queueing one after another on the lock around the compiled document and contacts went 500 to a statement (not one statement each), and with load processes that read only the version of each bundle (they parsed all of it, on the same vCPUs), the figures above.", ""]
section = "\n".join(md)
open("benches/server.md", "w").write(section)
bm = open("BENCHMARKS.md").read()
if "## Server: agents long-polling" in bm:
    bm = re.sub(r"## Server: agents long-polling.*?(?=\n## |\Z)", lambda m: section.rstrip() + "\n", bm, flags=re.S)
else:
    bm = bm.rstrip() + "\n\n" + section
open("BENCHMARKS.md", "w").write(bm)
print(section)
PY
