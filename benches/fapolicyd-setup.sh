#!/usr/bin/env bash
# Configure Debian's fapolicyd the way the agent benchmark compares against it:
# the sample "known-libs" rule set, trust = file with /usr/bin, /usr/sbin and
# /usr/lib/x86_64-linux-gnu added by `fapolicyd-cli --file add`, and uid/gid root so that it
# starts on a machine without a fapolicyd user. It is started with --permissive by the
# benchmark itself. Idempotent.
set -euo pipefail
if ! command -v fapolicyd >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fapolicyd >/dev/null
fi
SAMPLES=/usr/share/fapolicyd/sample-rules
rm -f /etc/fapolicyd/rules.d/*.rules
for r in 10-languages 20-dracut 21-updaters 30-patterns 40-bad-elf 41-shared-obj 42-trusted-elf \
         70-trusted-lang 72-shell 90-deny-execute 95-allow-open; do
    cp "$SAMPLES/$r.rules" /etc/fapolicyd/rules.d/
done
fagenrules >/dev/null 2>&1 || true
[ -s /etc/fapolicyd/compiled.rules ] || cat /etc/fapolicyd/rules.d/*.rules >/etc/fapolicyd/compiled.rules
sed -i -e 's/^uid = .*/uid = root/' -e 's/^gid = .*/gid = root/' -e 's/^trust = .*/trust = file/' \
    /etc/fapolicyd/fapolicyd.conf
# Rebuild the file trust list from scratch each time.
rm -f /etc/fapolicyd/trust.d/* 
: >/etc/fapolicyd/fapolicyd.trust
fapolicyd-cli --delete-db >/dev/null 2>&1 || true
for d in /usr/bin /usr/sbin /usr/lib/x86_64-linux-gnu; do
    fapolicyd-cli --file add "$d" >/dev/null
done
echo "fapolicyd: $(wc -l </etc/fapolicyd/fapolicyd.trust) trusted files, $(grep -c . /etc/fapolicyd/compiled.rules) rules"
