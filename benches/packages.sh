#!/usr/bin/env bash
# What package trust costs, with 3,000 installed packages.
#
#   ./x bench packages     (root; ~3 minutes)
#
# A root on a tmpfs holds a dpkg database of 3,000 installed packages (status + md5sums, in
# dpkg's own formats; the files are written directly, since installing 3,000 .deb files with
# dpkg would take longer than the measurement) with one program each: a copy of
# /usr/bin/true with the package's name appended, so that every file has its own content
# and digest. Portcullis runs in Secured mode on that tmpfs with only "Distribution packages
# (Built-In)" permitted and --package-root on the root.
#
# 1. Start to enforcing: from spawning the agent to its ready file, with package trust and
#    with --no-package-trust (same run, alternating).
# 2. Running every packaged program once (a shell loop), with no agent, then with the agent:
#    the first pass (each file read, MD5 and SHA-256 in one pass, verified, permitted), and
#    the second (answered from the kernel's ignore marks).
# Medians over the repetitions. Results go to benches/packages.md and the "Package trust"
# section of BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
REPS=${PORTCULLIS_PACKAGES_BENCH_REPS:-5}
COUNT=${PORTCULLIS_PACKAGES_BENCH_COUNT:-3000}
W=/tmp/portcullis-packages-bench
FS=$W/fs
R=$FS/root

cleanup() {
    [ -n "${AGENT_PID:-}" ] && kill -KILL "$AGENT_PID" 2>/dev/null || true
    mountpoint -q "$FS" && umount -l "$FS" || true
}
trap cleanup EXIT

cargo build --release --quiet -p portcullis
P=$ROOT/target/release/portcullis
rm -rf "$W"; mkdir -p "$FS"
mount -t tmpfs -o size=1g tmpfs "$FS"
mkdir -p "$R/var/lib/dpkg/info" "$R/usr/bin"
python3 - "$R" "$COUNT" <<'PY'
import hashlib, os, shutil, sys
root, count = sys.argv[1], int(sys.argv[2])
true = open("/usr/bin/true", "rb").read()
status = []
for i in range(count):
    name = f"bench-pkg-{i:04d}"
    data = true + name.encode()
    path = f"usr/bin/{name}"
    with open(os.path.join(root, path), "wb") as f:
        f.write(data)
    os.chmod(os.path.join(root, path), 0o755)
    with open(os.path.join(root, f"var/lib/dpkg/info/{name}.md5sums"), "w") as f:
        f.write(f"{hashlib.md5(data).hexdigest()}  {path}\n")
        # A package lists more than its program: man pages, docs, data.
        for j in range(20):
            f.write(f"{hashlib.md5(f'{name}-{j}'.encode()).hexdigest()}  usr/share/doc/{name}/file-{j}\n")
    status.append(f"Package: {name}\nStatus: install ok installed\nPriority: optional\nArchitecture: amd64\n"
                  f"Version: 1.0-{i}\nMaintainer: Bench <bench@example.org>\nDescription: benchmark package {i}\n")
open(os.path.join(root, "var/lib/dpkg/status"), "w").write("\n".join(status))
PY
cat >"$W/policy.toml" <<'EOF'
[organization]
name = "Package trust benchmark"
mode = "secured"

[[policies]]
name = "Permit distribution packages"
position = 100
applications = ["Distribution packages (Built-In)"]
action = "permit"
EOF
cat >"$W/all.sh" <<EOF
for f in $R/usr/bin/bench-pkg-*; do "\$f" || exit 1; done
EOF

start_portcullis() { # extra args... ; sets START_SECS
    rm -f "$W/ready"; rm -rf "$W/spool"
    local t0 t1
    t0=$(date +%s%N)
    "$P" agent --policy "$W/policy.toml" --mark-under "$FS" --spool "$W/spool" --ready-file "$W/ready" \
        --no-protect --no-guard --exit-after 900 --log warn "$@" >/dev/null 2>>"$W/agent.log" &
    AGENT_PID=$!
    for _ in $(seq 3000); do [ -f "$W/ready" ] && break; sleep 0.002; done
    [ -f "$W/ready" ] || { cat "$W/agent.log" >&2; exit 1; }
    t1=$(date +%s%N)
    START_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f\n", (b - a) / 1e9 }')
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
    start_portcullis --no-package-trust
    echo "start untrusted $START_SECS" >>"$W/results.txt"
    stop_portcullis
    echo "none pass $(seconds sh "$W/all.sh")" >>"$W/results.txt"
    start_portcullis --package-root "$R"
    echo "start trusted $START_SECS" >>"$W/results.txt"
    echo "first pass $(seconds sh "$W/all.sh")" >>"$W/results.txt"
    echo "second pass $(seconds sh "$W/all.sh")" >>"$W/results.txt"
    stop_portcullis
done
if grep -q "no package is trusted" "$W/agent.log"; then
    cat "$W/agent.log" >&2
    exit 1
fi

python3 - "$W/results.txt" "$REPS" "$COUNT" <<'PY'
import datetime, os, platform, re, statistics, sys
results, reps, count = sys.argv[1:]
t = {}
for line in open(results):
    who, what, secs = line.split()
    t.setdefault((who, what), []).append(float(secs))
med = {k: statistics.median(v) for k, v in t.items()}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
none, first, second = med[("none", "pass")], med[("first", "pass")], med[("second", "pass")]
ms = lambda s: f"{s * 1000:.0f} ms"
md = ["## Package trust", "",
      f"Latest run: {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC on {platform.node()}: {cpu}, {os.cpu_count()} vCPU, Linux {platform.release()}.",
      f"Command: `./x bench packages` (benches/packages.sh); median of {reps} repetitions, each agent started afresh.", "",
      f"A dpkg database of {count} installed packages (one program and 20 listed files each) in a root on a tmpfs the agent watches, Secured mode, only \"Distribution packages (Built-In)\" permitted.", "",
      "| Measure | Reference | Portcullis | Ratio | Target |",
      "|---|---|---|---|---|",
      f"| Start to enforcing | {ms(med[('start', 'untrusted')])} (--no-package-trust) | {ms(med[('start', 'trusted')])} (reading {count} packages) | {med[('start', 'trusted')] / med[('start', 'untrusted')]:.2f} | — |",
      f"| First pass: each of the {count} packaged programs run once | {ms(none)} (no agent) | {ms(first)} | {first / none:.2f} | <= 3 |",
      f"| Second pass | {ms(none)} (no agent) | {ms(second)} | {second / none:.2f} | <= 1.2 |",
      "",
      "Notes:",
      "- First pass: the agent reads each program once, computing MD5 (the package's recorded digest) and SHA-256 in the same pass, verifies it against the package and permits it; the permit becomes a kernel ignore mark.",
      "- Second pass: answered by the kernel's ignore marks, without the agent.",
      "- The database files are written in dpkg's formats directly (installing 3,000 .deb files would take longer than the measurement); the agent test installs real packages with Debian's dpkg.",
      ""]
section = "\n".join(md)
open("benches/packages.md", "w").write(section)
bm = open("BENCHMARKS.md").read() if os.path.exists("BENCHMARKS.md") else "# Benchmarks\n"
if "## Package trust" in bm:
    bm = re.sub(r"## Package trust.*?(?=\n## |\Z)", lambda m: section.rstrip() + "\n", bm, flags=re.S)
else:
    bm = bm.rstrip() + "\n\n" + section
open("BENCHMARKS.md", "w").write(bm)
print(section)
PY
