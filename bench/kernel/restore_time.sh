#!/usr/bin/env bash
# How long the real iptables-restore takes to load a kube-proxy node dump of about 700k lines into a
# fresh network namespace (iptables-legacy and iptables-nft), next to svcpath's own parse + load of
# the same text (`svcpath rules --rules`, which also prints it back). Root; one run each.
#   bench/kernel/restore_time.sh build/release/svcpath [SERVICES]     (16667 services ~ 700k lines)
set -euo pipefail
bin=$1
services=${2:-16667}
tmp=$(mktemp -d)
ns="svcpath-rt-$$"
trap 'ip netns del "$ns" 2>/dev/null; rm -rf "$tmp"' EXIT
"$bin" gen-cluster --services "$services" --endpoints 10 --nodes 3 -o "$tmp/c.yaml"
"$bin" rules --cluster "$tmp/c.yaml" --node node-0 > "$tmp/dump.rules"
lines=$(wc -l < "$tmp/dump.rules")
rules=$(grep -c '^-A ' "$tmp/dump.rules")
echo "dump: $lines lines, $rules rules ($services services x 10 endpoints)"
secs() { local t0 t1; t0=$(date +%s%N); "$@"; t1=$(date +%s%N); printf '%d.%03d' $(((t1 - t0) / 1000000000)) $((((t1 - t0) / 1000000) % 1000)); }
for v in legacy nft; do
  ip netns del "$ns" 2>/dev/null || true
  ip netns add "$ns"
  t=$(secs ip netns exec "$ns" "iptables-$v-restore" "$tmp/dump.rules")
  echo "iptables-$v-restore: ${t} s"
done
t0=$(date +%s%N); "$bin" rules --rules "$tmp/dump.rules" > /dev/null; t1=$(date +%s%N)
printf 'svcpath rules --rules (parse, load, print back): %d.%03d s\n' $(((t1 - t0) / 1000000000)) $((((t1 - t0) / 1000000) % 1000))
/usr/bin/time -f "svcpath max RSS: %M KiB" "$bin" rules --rules "$tmp/dump.rules" > /dev/null
