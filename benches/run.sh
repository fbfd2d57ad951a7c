#!/usr/bin/env bash
# Portcullis benchmarks: each figure is a ratio against a reference measured in the same run
# (these machines are shared and noisy; absolute times drift). Writes BENCHMARKS.md.
#   ./x bench      (installs hyperfine, builds release, runs everything; ~5 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK=${PORTCULLIS_BENCH_DIR:-/dev/shm/portcullis-bench}
RUNS=${PORTCULLIS_BENCH_RUNS:-5}
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT

cargo build --release --quiet -p portcullis
P=$ROOT/target/release/portcullis

echo "== SHA-256 of a 1 GiB file (page cache): portcullis vs openssl" >&2
head -c 1073741824 /dev/urandom >"$WORK/big.bin"
hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$WORK/sha.json" \
    -n openssl "openssl dgst -sha256 $WORK/big.bin" \
    -n portcullis "$P scan --json --threads 1 $WORK/big.bin" >&2

echo "== scan of a large tree vs find | xargs -P\$(nproc) sha256sum" >&2
TREE=${PORTCULLIS_BENCH_TREE:-/usr/lib/x86_64-linux-gnu}
hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$WORK/scan.json" \
    -n sha256sum "find $TREE -type f -print0 | xargs -0 -P$(nproc) -n 64 sha256sum >/dev/null" \
    -n portcullis "$P scan --json $TREE >/dev/null 2>&1" >&2
TREE_FILES=$(find "$TREE" -type f | wc -l)
TREE_BYTES=$(find "$TREE" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')

echo "== hash extraction: 256 MiB reports vs grep -oE" >&2
python3 - "$WORK/realistic.txt" "$WORK/dense.txt" <<'PY'
import sys, random
random.seed(11)
prose = ("On March 29 2023 the 3CX DesktopApp Electron client version 18.12.416 was observed loading a trojanized ffmpeg.dll "
         "which read an RC4 encrypted payload appended to d3dcompiler_47.dll and beaconed to GitHub hosted icon files "
         "hxxps://raw.githubusercontent[.]com/IconStorages/images/main/icon%d.ico before fetching an infostealer.").split()
pool = ["%0*x" % (k, random.getrandbits(k * 4)) for k in random.choices((32, 40, 64), k=50000)]
# Realistic: prose paragraphs with a vendor table row every eighth line (about one hash per KB,
# 50,000 distinct hashes, each repeated, mixed case).
out = open(sys.argv[1], "w"); size = 0; n = 0
while size < 256 << 20:
    if n % 8 == 7:
        h = random.choice(pool)
        line = "| %s | %s | Windows | %s |\n" % (random.choice(("ffmpeg.dll", "3CXDesktopApp.exe")), h.upper() if n % 3 else h, random.choice(("Sophos", "Volexity")))
    else:
        line = " ".join(random.choices(prose, k=random.randint(20, 40))) + "\n"
    out.write(line); size += len(line); n += 1
# Worst case: a table with a new hash on every 110-byte line (2.4 million distinct hashes).
out = open(sys.argv[2], "w"); size = 0
while size < 256 << 20:
    k = random.choice((32, 40, 64)); h = "%0*x" % (k, random.getrandbits(k * 4))
    line = "| %s | %s | %s |\n" % (" ".join(random.choices(prose, k=8)), h, random.choice(("Windows", "macOS")))
    out.write(line); size += len(line)
PY
REPORT_BYTES=$(stat -c %s "$WORK/realistic.txt")
DENSE_BYTES=$(stat -c %s "$WORK/dense.txt")
hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$WORK/extract.json" \
    -n grep "grep -oE '[0-9a-fA-F]{32,64}' $WORK/realistic.txt | wc -l" \
    -n portcullis "$P hashes extract $WORK/realistic.txt | wc -l" \
    -n portcullis-dense "$P hashes extract $WORK/dense.txt | wc -l" >&2

echo "== 10M-hash index lookup vs std HashSet and one dependent memory read (criterion)" >&2
cargo bench --quiet -p portcullis-policy --bench hash_index -- --noplot 2>"$WORK/criterion.err" | tee "$WORK/criterion.out" >&2
BYTES_PER_HASH=$(grep -o '[0-9.]* bytes/hash' "$WORK/criterion.err" | head -1 | cut -d' ' -f1)

python3 - "$WORK" "$TREE" "$TREE_FILES" "$TREE_BYTES" "$REPORT_BYTES" "$BYTES_PER_HASH" "$RUNS" "$DENSE_BYTES" <<'PY'
import json, os, platform, subprocess, sys, datetime
work, tree, tree_files, tree_bytes, report_bytes, bph, runs, dense_bytes = sys.argv[1:9]
def mean(name, cmd):
    for r in json.load(open(os.path.join(work, name)))["results"]:
        if r["command"] == cmd:
            return r["mean"], r["stddev"] or 0.0
def est(name):
    return json.load(open(f"target/criterion/{name}/new/estimates.json"))["mean"]["point_estimate"]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
shani = "sha_ni" in open("/proc/cpuinfo").read()
sha_o, _ = mean("sha.json", "openssl"); sha_p, _ = mean("sha.json", "portcullis")
scan_r, _ = mean("scan.json", "sha256sum"); scan_p, _ = mean("scan.json", "portcullis")
ex_g, _ = mean("extract.json", "grep"); ex_p, _ = mean("extract.json", "portcullis"); ex_d, _ = mean("extract.json", "portcullis-dense")
miss = est("hash_index_miss_10M"); hit = est("hash_index_hit_10M"); dram = est("dram_dependent_read")
std_miss = est("std_hashset_miss_10M"); std_hit = est("std_hashset_hit_10M")
gib = 1 << 30
rows = [
    ("SHA-256, 1 GiB file, one core", f"{gib/sha_p/1e6:.0f} MB/s", f"openssl dgst -sha256: {gib/sha_o/1e6:.0f} MB/s", f"{sha_o/sha_p:.2f}", ">= 0.90"),
    (f"scan of {tree} ({int(tree_files):,} files, {int(tree_bytes)/1e6:.0f} MB), all cores", f"{int(tree_bytes)/scan_p/1e6:.0f} MB/s", f"find \\| xargs -P{os.cpu_count()} sha256sum: {int(tree_bytes)/scan_r/1e6:.0f} MB/s", f"{scan_r/scan_p:.2f}", ">= 0.80"),
    ("hash extraction, 256 MiB threat report (1 hash/KB), one core", f"{int(report_bytes)/ex_p/1e6:.0f} MB/s", f"grep -oE '[0-9a-fA-F]{{32,64}}': {int(report_bytes)/ex_g/1e6:.0f} MB/s", f"{ex_g/ex_p:.2f}", ">= 500 MB/s"),
    ("hash extraction, worst case: 2.4M distinct hashes in 256 MiB", f"{int(dense_bytes)/ex_d/1e6:.0f} MB/s", "(same grep on the realistic report)", f"{ex_g*int(dense_bytes)/int(report_bytes)/ex_d:.2f}", "—"),
    ("10M-hash index, lookup of an absent hash (the common case)", f"{miss:.0f} ns", f"one dependent random memory read: {dram:.0f} ns; std HashSet: {std_miss:.0f} ns", f"{dram/miss:.2f}", "<= 100 ns"),
    ("10M-hash index, lookup of a listed hash", f"{hit:.0f} ns", f"one dependent random memory read: {dram:.0f} ns; std HashSet: {std_hit:.0f} ns", f"{dram/hit:.2f}", "<= 100 ns"),
    ("index size, 10M SHA-256", f"{bph} bytes/hash", "32-byte digest", f"{float(bph)/32:.2f}", "<= 40 bytes"),
]
md = ["# Benchmarks", "",
      f"Latest run: {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC on {platform.node()}: {cpu}, {os.cpu_count()} vCPU, SHA-NI {'yes' if shani else 'no'}, Linux {platform.release()}.",
      f"Command: `./x bench` (benches/run.sh). Whole commands are timed with hyperfine ({runs} runs after a warm-up, files in page cache); the index lookup with criterion.",
      "Ratio = reference time / Portcullis time (above 1 means Portcullis is faster), except the size row (bytes per hash / 32).", "",
      "| Benchmark | Portcullis | Reference (same run) | Ratio | Target |", "|---|---|---|---|---|"]
md += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows]
md += ["", "Notes:",
       "- `scan` does more than hash: it sniffs every file, reads executables whole and parses ELF/PE headers, VERSIONINFO and signatures.",
       "- The SHA-256 row runs `portcullis scan --threads 1` on one non-executable file, so it measures streaming SHA-256 plus process start-up.",
       "- Figures drift between runs on these shared VMs; compare ratios, not absolute numbers.",
       "- Index lookups: the reference is the hardware floor, one dependent random read in a region the size of the index (pointer chasing). On this VM it is well above 100 ns (nested paging makes every TLB miss a two-level walk), so no structure that has to touch memory once can meet a 100 ns target here; an absent hash is answered from one 16-byte filter slot, a listed one needs that slot and the entry.",
       "- The worst-case extraction row is dominated by per-hash work (deduplication, output of 2.4 million lines), not by scanning.",
       ""]
# The agent section comes from benches/agent.sh (run after this script by ./x bench).
if os.path.exists("benches/agent.md"):
    md.append(open("benches/agent.md").read())
# Fuzzing figures come from the last long run (./x fuzz SECONDS), kept in benches/fuzzing.md.
if os.path.exists("benches/fuzzing.md"):
    md.append(open("benches/fuzzing.md").read())
open("BENCHMARKS.md", "w").write("\n".join(md))
print("\n".join(md))
PY
