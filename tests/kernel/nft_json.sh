#!/usr/bin/env bash
# `nft -j list ruleset` as svcpath input: each .nft file nft accepts is loaded with `nft -f` in a
# throwaway netns, dumped as JSON, read back by `svcpath rules --nft`; svcpath's print must equal
# `nft list ruleset` of the same namespace. Exit 77 = skipped.
set -u
svcpath=$1
src=$(cd "$(dirname "$0")/../.." && pwd)
skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "not root: network namespaces need root"
command -v nft >/dev/null || skip "nft is not installed"
ns="svcpath-nftjson-$$"
ip netns add "$ns" 2>/dev/null || skip "cannot create a network namespace"
tmp=$(mktemp -d)
trap 'ip netns del "$ns" 2>/dev/null; rm -rf "$tmp"' EXIT
# nft 1.0.6's JSON leaves out table and chain comments, and nft wraps element lists by width while
# svcpath wraps one per line, and its JSON drops the set flag "dynamic": both sides lose those
# before the comparison.
norm() {
  awk '/^\tcomment / {next} prev ~ /^\tchain .*\{$/ && /^\t\tcomment / {prev=$0; next} {prev=$0; print}' |
    sed -e 's/^\t\tflags dynamic,/\t\tflags /' -e ':a' -e '/,$/{N;s/,\n[[:space:]]*/, /;ba' -e '}'
}
fail=0 n=0
for f in "$src"/examples/rulesets/*.nft "$src"/tests/data/nft/*.nft "$src"/tests/data/nft-json/*.nft "$src"/tests/golden/kube/*.nft "$src"/tests/golden/kube/*.nft-list; do
  ip netns exec "$ns" nft flush ruleset
  if ! ip netns exec "$ns" nft -f "$f" 2>/dev/null; then echo "skip: $(basename "$f"): nft here refuses it"; continue; fi
  n=$((n + 1))
  ip netns exec "$ns" nft list ruleset | norm > "$tmp/kernel"
  ip netns exec "$ns" nft -j list ruleset > "$tmp/dump.json"
  if ! "$svcpath" rules --nft "$tmp/dump.json" > "$tmp/raw" 2> "$tmp/err"; then
    echo "FAIL: $(basename "$f"): svcpath refused nft's JSON: $(cat "$tmp/err")"; fail=$((fail + 1)); continue
  fi
  norm < "$tmp/raw" > "$tmp/svcpath"
  if diff -u "$tmp/kernel" "$tmp/svcpath" > "$tmp/diff"; then
    echo "ok: $(basename "$f") $(wc -l < "$tmp/kernel") lines identical"
  else
    echo "FAIL: $(basename "$f"): nft list ruleset (-) and svcpath's print of nft -j (+) differ:"; cat "$tmp/diff"; fail=$((fail + 1))
  fi
done
echo "$n rulesets, $fail failed"
[ "$fail" -eq 0 ]
