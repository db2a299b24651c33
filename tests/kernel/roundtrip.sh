#!/usr/bin/env bash
# Loads rulesets into the real kernel with iptables-legacy-restore and iptables-nft-restore (and sets
# with ipset restore) inside a throwaway network namespace, and checks that the real iptables-save /
# ipset save print exactly what `svcpath rules` prints for the same input. Exit 77 = skipped (ctest
# shows it as a skip, with the reason on stdout).
set -u
svcpath=$1
src=$(cd "$(dirname "$0")/../.." && pwd)
skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "not root: network namespaces and iptables-restore need root"
for t in ip iptables-legacy-restore iptables-nft-restore iptables-legacy-save iptables-nft-save ip6tables-legacy-restore \
         ip6tables-nft-restore ip6tables-legacy-save ip6tables-nft-save ipset; do
  command -v "$t" >/dev/null || skip "$t is not installed (scripts/install-deps installs it)"
done
ns="svcpath-rt-$$"
ip netns add "$ns" 2>/dev/null || skip "cannot create a network namespace"
cleanup() { ip netns del "$ns" 2>/dev/null; rm -rf "$tmp"; }
tmp=$(mktemp -d)
trap cleanup EXIT

# Real save output, minus comments, with table blocks in a fixed order so load order does not matter.
blocks() {
  awk '/^#/ {next} /^\*/ {name=$0} {print name "\t" $0}' | LC_ALL=C sort -s -t$'\t' -k1,1 | cut -f2-
}
# A dump naming sets loads with its .ipsets companion (as iptables-restore needs the sets to exist);
# `svcpath rules` then prints the sets first, which the rules comparison leaves out.
with_sets() { setargs=(); sets="${1%.rules}.ipsets"; [ -f "$sets" ] && setargs=(--ipsets "$sets"); }
no_sets() { sed '/^create /d; /^add /d'; }
# same_as_kernel FILE TOOL BACKEND [svcpath rules args...]: the namespace's TOOL-BACKEND-save against
# what `svcpath rules` prints for FILE.
same_as_kernel() {
  local f=$1 ipt=$2 v=$3
  shift 3
  ip netns exec "$ns" "$ipt-$v-save" 2>/dev/null | blocks > "$tmp/kernel"
  "$svcpath" rules "$@" --rules "$f" | no_sets | blocks > "$tmp/svcpath"
  if diff -u "$tmp/kernel" "$tmp/svcpath" > "$tmp/diff"; then
    echo "ok: $(basename "$f") [$v] $(wc -l < "$tmp/kernel") lines identical"
  else
    echo "FAIL: $(basename "$f") [$v]: $ipt-$v-save (-) and svcpath (+) differ:"; cat "$tmp/diff"; fail=$((fail + 1))
  fi
}

fail=0 n=0
# tests/conformance/restore/ holds iptables-restore's grammar (commands inside a table block,
# counters, quoting); a file's "# backends: legacy" line names the back ends that can run it (with
# why), "# refused: N" the line both the kernel and svcpath must refuse.
files=("$src"/examples/rulesets/*.rules "$src"/tests/data/kernel-probe-*.rules "$src"/tests/conformance/restore/*.rules)
for f in "${files[@]}"; do
  backends=$(sed -n 's/^# backends: \([a-z ]*\).*/\1/p' "$f" | head -1)
  refused=$(sed -n 's/^# refused: \([0-9]*\).*/\1/p' "$f" | head -1)
  noflush=(); grep -q '^# noflush' "$f" && noflush=(--noflush)
  for v in ${backends:-legacy nft}; do
    n=$((n + 1))
    ip netns del "$ns" 2>/dev/null; ip netns add "$ns"
    with_sets "$f"
    [ -f "$sets" ] && ip netns exec "$ns" ipset restore < "$sets"
    if [ -n "$refused" ]; then
      ip netns exec "$ns" "iptables-$v-restore" < "$f" > "$tmp/err" 2>&1
      kline=$(sed -n 's/.*[Ee]rror occurred at line: \([0-9]*\).*/\1/p; s/^line \([0-9]*\):.*/\1/p' "$tmp/err" | head -1)
      sline=$("$svcpath" rules "${setargs[@]}" --rules "$f" 2>&1 >/dev/null | sed -n 's/^[^:]*:\([0-9]*\):.*error.*/\1/p' | head -1)
      if [ "$kline" = "$refused" ] && [ "$sline" = "$refused" ]; then
        echo "ok: $(basename "$f") [$v] refused at line $refused by both"
      else
        echo "FAIL: $(basename "$f") [$v]: want both to refuse line $refused; kernel: ${kline:-accepted}, svcpath: ${sline:-accepted}"
        fail=$((fail + 1))
      fi
      continue
    fi
    if ! ip netns exec "$ns" "iptables-$v-restore" "${noflush[@]}" < "$f" 2> "$tmp/err"; then
      echo "FAIL: $(basename "$f") [$v]: the kernel refused it: $(cat "$tmp/err")"; fail=$((fail + 1)); continue
    fi
    same_as_kernel "$f" iptables "$v" "${noflush[@]}" "${setargs[@]}"
  done
done

# ip6tables dumps, one rule per module form (the IPv6 extension-header matches among them).
for f in "$src"/tests/data/kernel-probe-*.rules6; do
  for v in legacy nft; do
    n=$((n + 1))
    ip netns del "$ns" 2>/dev/null; ip netns add "$ns"
    if ! ip netns exec "$ns" "ip6tables-$v-restore" < "$f" 2> "$tmp/err"; then
      echo "FAIL: $(basename "$f") [$v]: the kernel refused it: $(cat "$tmp/err")"; fail=$((fail + 1)); continue
    fi
    same_as_kernel "$f" ip6tables "$v"
  done
done

# `iptables -S` as nodes print it, of the tables the kernel holds after restoring each dump (and two
# real ip6tables dumps from the corpus): each table alone (`iptables -t T -S`), all of them
# concatenated (also as `-S -v` prints them, with counters), and CRLF copies of that and of the dump itself must read back as iptables-save prints
# the kernel's tables. svcpath infers each block's table and, for ip6tables -S, the family; the
# security table alone cannot be told from filter and is given wrapped in *security / COMMIT.
tables_of() { sed -n 's/^\*//p'; }
table_block() { awk -v t="*$1" '$0 == t {on = 1} on {print} on && $0 == "COMMIT" {exit}'; }
s_check() {  # NAME IPT: the dump is loaded in $ns already
  local name=$1 ipt=$2 t form
  ip netns exec "$ns" "$ipt-legacy-save" 2>/dev/null | grep -v '^#' > "$tmp/ksave"
  : > "$tmp/all.S"; : > "$tmp/all-v.S"
  for t in $(tables_of < "$tmp/ksave"); do
    ip netns exec "$ns" "$ipt-legacy" -t "$t" -S > "$tmp/$t.S"
    ip netns exec "$ns" "$ipt-legacy" -t "$t" -S -v >> "$tmp/all-v.S"
    cat "$tmp/$t.S" >> "$tmp/all.S"
    table_block "$t" < "$tmp/ksave" > "$tmp/want.$t"
  done
  sed 's/$/\r/' "$tmp/all.S" > "$tmp/all-crlf.S"
  sed 's/$/\r/' "$tmp/dump" > "$tmp/dump-crlf"
  for form in $(tables_of < "$tmp/ksave") all all-v all-crlf dump-crlf; do
    n=$((n + 1))
    in="$tmp/$form.S"; want="$tmp/ksave"
    [ -f "$tmp/want.$form" ] && want="$tmp/want.$form"
    [ "$form" = dump-crlf ] && in="$tmp/dump-crlf"
    # The security table alone prints as filter does (same chains); docs/inputs.md's escape names it.
    if [ "$form" = security ]; then
      { echo '*security'; cat "$tmp/security.S"; echo COMMIT; } > "$tmp/security.wrapped"; in="$tmp/security.wrapped"
    fi
    if ! "$svcpath" rules "${setargs[@]}" --rules "$in" > "$tmp/sv.all" 2> "$tmp/err" || ! no_sets < "$tmp/sv.all" > "$tmp/sv"; then
      echo "FAIL: $name [$ipt -S $form]: svcpath refused it: $(cat "$tmp/err")"; fail=$((fail + 1)); continue
    fi
    if blocks < "$want" | diff -u - <(blocks < "$tmp/sv") > "$tmp/diff"; then
      echo "ok: $name [$ipt -S $form] $(wc -l < "$want") lines identical"
    else
      echo "FAIL: $name [$ipt -S $form]: $ipt-legacy-save (-) and svcpath (+) differ:"; cat "$tmp/diff"; fail=$((fail + 1))
    fi
  done
}
for f in "${files[@]}" "$src"/tests/data/realworld/handwritten-medium-sized-company.rules "$src"/tests/data/realworld/firewalld-fedora27.rules6 "$src"/tests/data/realworld/synology-dsm-ds414.rules6 "$src"/tests/data/kernel-probe-*.rules6; do
  ipt=iptables; [ "${f##*.}" = rules6 ] && ipt=ip6tables
  grep -q '^# refused:\|^# noflush' "$f" && continue
  ip netns del "$ns" 2>/dev/null; ip netns add "$ns"
  with_sets "$f"
  [ -f "$sets" ] && ip netns exec "$ns" ipset restore < "$sets"
  cp "$f" "$tmp/dump"
  if ! ip netns exec "$ns" "$ipt-legacy-restore" < "$f" 2> "$tmp/err"; then
    echo "FAIL: $(basename "$f") [$ipt -S]: the kernel refused it: $(cat "$tmp/err")"; fail=$((fail + 1)); continue
  fi
  s_check "$(basename "$f")" "$ipt"
done

# ipsets as nodes print them: `ipset save` and `ipset list` of the same sets (comments, timeouts,
# counters, skbinfo, nomatch, bitmap and list sets) both read back as ipset save prints them.
for f in "$src"/tests/data/ipset-forms.ipsets "$src"/tests/data/kernel-probe-*.ipsets; do
  n=$((n + 1))
  ip netns del "$ns" 2>/dev/null; ip netns add "$ns"
  if ! ip netns exec "$ns" ipset restore < "$f" 2> "$tmp/err"; then
    echo "FAIL: $(basename "$f"): ipset restore refused it: $(cat "$tmp/err")"; fail=$((fail + 1)); continue
  fi
  strip() { sed -E 's/ bucketsize [0-9]+ initval 0x[0-9a-f]+//'; }
  ip netns exec "$ns" ipset save | strip > "$tmp/kernel.sets"
  ip netns exec "$ns" ipset save > "$tmp/save.txt"
  ip netns exec "$ns" ipset list > "$tmp/list.txt"
  for form in save list; do
    if ! "$svcpath" rules --ipsets "$tmp/$form.txt" > "$tmp/sv.sets" 2> "$tmp/err"; then
      echo "FAIL: $(basename "$f") [ipset $form]: svcpath refused it: $(cat "$tmp/err")"; fail=$((fail + 1)); continue
    fi
    if strip < "$tmp/sv.sets" | diff -u "$tmp/kernel.sets" - > "$tmp/diff"; then
      echo "ok: $(basename "$f") [ipset $form] $(wc -l < "$tmp/kernel.sets") lines identical"
    else
      echo "FAIL: $(basename "$f") [ipset $form]: ipset save (-) and svcpath (+) differ:"; cat "$tmp/diff"; fail=$((fail + 1))
    fi
  done
done

# Rules generated from the example clusters (kube-proxy iptables mode): the node's whole dump loads
# and saves back identically, and kube-proxy's own restore input passes iptables-restore --test.
clusters="$src/examples/clusters"
for c in basic traffic-policy dual-stack; do
  for fam in 4 6; do
    args=(--cluster "$clusters/nodes.yaml" --cluster "$clusters/$c.yaml" --node node-a --proxy-config "$clusters/proxy-config.yaml" --family "$fam")
    "$svcpath" rules "${args[@]}" > "$tmp/gen.rules" || { echo "FAIL: $c/v$fam: svcpath rules failed"; fail=$((fail + 1)); continue; }
    "$svcpath" rules "${args[@]}" --restore-input > "$tmp/gen.input"
    ipt=iptables; [ "$fam" = 6 ] && ipt=ip6tables
    for v in legacy nft; do
      n=$((n + 1))
      ip netns del "$ns" 2>/dev/null; ip netns add "$ns"
      if ! ip netns exec "$ns" "$ipt-$v-restore" --test < "$tmp/gen.input" 2> "$tmp/err"; then
        echo "FAIL: $c/v$fam [$v]: $ipt-$v-restore --test refused kube-proxy's input: $(cat "$tmp/err")"; fail=$((fail + 1)); continue
      fi
      if ! ip netns exec "$ns" "$ipt-$v-restore" < "$tmp/gen.rules" 2> "$tmp/err"; then
        echo "FAIL: $c/v$fam [$v]: the kernel refused the generated dump: $(cat "$tmp/err")"; fail=$((fail + 1)); continue
      fi
      ip netns exec "$ns" "$ipt-$v-save" 2>/dev/null | blocks > "$tmp/kernel"
      blocks < "$tmp/gen.rules" > "$tmp/svcpath"
      if diff -u "$tmp/kernel" "$tmp/svcpath" > "$tmp/diff"; then
        echo "ok: cluster $c v$fam [$v] $(wc -l < "$tmp/kernel") lines identical, restore input accepted"
      else
        echo "FAIL: cluster $c v$fam [$v]: $ipt-$v-save (-) and svcpath (+) differ:"; cat "$tmp/diff"; fail=$((fail + 1))
      fi
    done
  done
done

# kube-proxy IPVS mode: its ipsets restore into the kernel and save back identically, and the
# iptables dump that references them loads and saves back identically too.
section() { awk -v want="$1" '/^# / {on = ($0 == want); next} on' "$2"; }
for c in basic traffic-policy dual-stack; do
  for fam in 4 6; do
    args=(--cluster "$clusters/nodes.yaml" --cluster "$clusters/$c.yaml" --node node-a --proxy-config "$clusters/proxy-config.yaml" --family "$fam" --mode ipvs)
    "$svcpath" rules "${args[@]}" > "$tmp/ipvs.all" 2>/dev/null || { echo "FAIL: ipvs $c/v$fam: svcpath rules failed"; fail=$((fail + 1)); continue; }
    section "# ipset save" "$tmp/ipvs.all" > "$tmp/ipvs.sets"
    section "# iptables-save" "$tmp/ipvs.all" > "$tmp/ipvs.rules"
    ipt=iptables; [ "$fam" = 6 ] && ipt=ip6tables
    for v in legacy nft; do
      n=$((n + 1))
      ip netns del "$ns" 2>/dev/null; ip netns add "$ns"
      if ! ip netns exec "$ns" ipset restore < "$tmp/ipvs.sets" 2> "$tmp/err"; then
        echo "FAIL: ipvs $c/v$fam: ipset restore refused the sets: $(cat "$tmp/err")"; fail=$((fail + 1)); continue
      fi
      ip netns exec "$ns" ipset save | sed -E 's/ bucketsize [0-9]+ initval 0x[0-9a-f]+//' | LC_ALL=C sort > "$tmp/kernel.sets"
      if ! LC_ALL=C sort "$tmp/ipvs.sets" | diff -u "$tmp/kernel.sets" - > "$tmp/diff"; then
        echo "FAIL: ipvs $c/v$fam: ipset save (-) and svcpath (+) differ:"; cat "$tmp/diff"; fail=$((fail + 1)); continue
      fi
      if ! ip netns exec "$ns" "$ipt-$v-restore" < "$tmp/ipvs.rules" 2> "$tmp/err"; then
        echo "FAIL: ipvs $c/v$fam [$v]: the kernel refused the IPVS-mode iptables dump: $(cat "$tmp/err")"; fail=$((fail + 1)); continue
      fi
      ip netns exec "$ns" "$ipt-$v-save" 2>/dev/null | blocks > "$tmp/kernel"
      blocks < "$tmp/ipvs.rules" > "$tmp/svcpath"
      if diff -u "$tmp/kernel" "$tmp/svcpath" > "$tmp/diff"; then
        echo "ok: ipvs mode $c v$fam [$v] sets and $(wc -l < "$tmp/kernel") rule lines identical"
      else
        echo "FAIL: ipvs mode $c v$fam [$v]: $ipt-$v-save (-) and svcpath (+) differ:"; cat "$tmp/diff"; fail=$((fail + 1))
      fi
    done
  done
done

# NetworkPolicy: the node as kube-proxy left it, then what the policy engine loads on top (ipset
# restore, iptables-restore --noflush with its -I jumps), must save back exactly as svcpath's view
# of the node with policies, in both kube-proxy modes.
for pc in "$src/examples/networkpolicy/cluster.yaml:node-a" "$src/tests/data/netpol/forms.yaml:n1"; do
  file=${pc%%:*} node=${pc##*:}
  for mode in iptables ipvs; do
    args=(--cluster "$file" --node "$node" --mode "$mode")
    "$svcpath" rules "${args[@]}" --policy-placement off > "$tmp/base.all" 2>/dev/null &&
      "$svcpath" rules "${args[@]}" > "$tmp/np.all" 2>/dev/null &&
      "$svcpath" rules "${args[@]}" --policy > "$tmp/np.input" 2>/dev/null ||
      { echo "FAIL: policy $(basename "$file") $mode: svcpath rules failed"; fail=$((fail + 1)); continue; }
    if [ "$mode" = ipvs ]; then
      section "# ipset save" "$tmp/base.all" > "$tmp/base.sets"; section "# iptables-save" "$tmp/base.all" > "$tmp/base.rules"
    else
      : > "$tmp/base.sets"; cp "$tmp/base.all" "$tmp/base.rules"
    fi
    section "# ipset save" "$tmp/np.all" > "$tmp/np.sets"; section "# iptables-save" "$tmp/np.all" > "$tmp/np.rules"
    section "# ipset restore input" "$tmp/np.input" > "$tmp/np.input.sets"
    section "# iptables-restore --noflush input" "$tmp/np.input" > "$tmp/np.input.rules"
    for v in legacy nft; do
      n=$((n + 1))
      ip netns del "$ns" 2>/dev/null; ip netns add "$ns"
      if ! { ip netns exec "$ns" ipset restore < "$tmp/base.sets" && ip netns exec "$ns" "iptables-$v-restore" < "$tmp/base.rules" &&
             ip netns exec "$ns" ipset restore < "$tmp/np.input.sets" &&
             ip netns exec "$ns" "iptables-$v-restore" --noflush < "$tmp/np.input.rules"; } 2> "$tmp/err"; then
        echo "FAIL: policy $(basename "$file") $mode [$v]: the kernel refused it: $(cat "$tmp/err")"; fail=$((fail + 1)); continue
      fi
      ip netns exec "$ns" ipset save | sed -E 's/ bucketsize [0-9]+ initval 0x[0-9a-f]+//' | LC_ALL=C sort > "$tmp/kernel.sets"
      ip netns exec "$ns" "iptables-$v-save" 2>/dev/null | blocks > "$tmp/kernel"
      if LC_ALL=C sort "$tmp/np.sets" | diff -u "$tmp/kernel.sets" - > "$tmp/diff" &&
         blocks < "$tmp/np.rules" | diff -u "$tmp/kernel" - >> "$tmp/diff"; then
        echo "ok: policy $(basename "$file") $mode [$v]: $(grep -c -- '-j NP-\|NP-.* -j' "$tmp/kernel") policy rule lines and the sets identical"
      else
        echo "FAIL: policy $(basename "$file") $mode [$v]: kernel (-) and svcpath (+) differ:"; cat "$tmp/diff"; fail=$((fail + 1))
      fi
    done
  done
done

# ipset: what svcpath prints must restore into the kernel and come back the same.
for sets in "$src"/tests/data/*.ipsets; do
  n=$((n + 1))
  ip netns del "$ns" 2>/dev/null; ip netns add "$ns"
  "$svcpath" rules --ipsets "$sets" > "$tmp/ours"
  if ! ip netns exec "$ns" ipset restore < "$tmp/ours" 2> "$tmp/err"; then
    echo "FAIL: $(basename "$sets"): ipset restore refused svcpath's output: $(cat "$tmp/err")"; fail=$((fail + 1)); continue
  fi
  # The kernel adds bucketsize/initval; compare elements and set types.
  ip netns exec "$ns" ipset save | sed -E 's/ bucketsize [0-9]+ initval 0x[0-9a-f]+//' | LC_ALL=C sort > "$tmp/kernel"
  LC_ALL=C sort "$tmp/ours" > "$tmp/ours.sorted"
  if diff -u "$tmp/kernel" "$tmp/ours.sorted" > "$tmp/diff"; then echo "ok: $(basename "$sets") ipset round trip"
  else echo "FAIL: $(basename "$sets"): ipset save (-) vs svcpath (+):"; cat "$tmp/diff"; fail=$((fail + 1)); fi
done

# nftables: kube-proxy's nftables-mode transaction loads with nft -f; what `nft list ruleset`
# prints then equals what svcpath prints for it; svcpath reads nft's listing back to the same
# thing; and svcpath's listing, fed to nft -f, gives the kernel the same ruleset again. Set
# elements compare as sets (nft lists them in the kernel's hash order).
nftnorm() {
  python3 -c '
import re, sys
t = sys.stdin.read()
def fix(m):
    items = sorted(x.strip() for x in re.split(r",\s*", m.group(1).replace("\n", " ")) if x.strip())
    return "elements = { " + ", ".join(items) + " }"
t = re.sub(r"elements = \{(.*?)\}", fix, t, flags=re.S)
sys.stdout.write(re.sub(r"[ \t]+", " ", t))'
}
if command -v nft >/dev/null; then
  nft_check() {  # name, svcpath's transaction file, svcpath's listing file
    local name=$1 tx=$2 ours=$3
    n=$((n + 1))
    ip netns del "$ns" 2>/dev/null; ip netns add "$ns"
    if ! ip netns exec "$ns" nft -f "$tx" 2> "$tmp/err"; then
      echo "FAIL: nft $name: nft -f refused it: $(cat "$tmp/err")"; fail=$((fail + 1)); return
    fi
    ip netns exec "$ns" nft list ruleset > "$tmp/nft.kernel"
    "$svcpath" rules --nft "$tmp/nft.kernel" > "$tmp/nft.reread" 2> "$tmp/err" ||
      { echo "FAIL: nft $name: svcpath cannot read nft's listing: $(cat "$tmp/err")"; fail=$((fail + 1)); return; }
    if ! diff -u <(nftnorm < "$tmp/nft.kernel") <(nftnorm < "$ours") > "$tmp/diff"; then
      echo "FAIL: nft $name: nft list ruleset (-) and svcpath (+) differ:"; cat "$tmp/diff"; fail=$((fail + 1)); return
    fi
    # nft reading its own listing is not always a fixpoint ({ 10.0.0.0/24 } lists as a set but reads
    # back as a comparison): svcpath must read the listing the way nft does.
    ip netns exec "$ns" nft flush ruleset
    ip netns exec "$ns" nft -f "$tmp/nft.kernel"
    ip netns exec "$ns" nft list ruleset > "$tmp/nft.kernel2"
    if ! diff -u <(nftnorm < "$tmp/nft.kernel2") <(nftnorm < "$tmp/nft.reread") > "$tmp/diff"; then
      echo "FAIL: nft $name: nft (-) and svcpath (+) read nft's listing differently:"; cat "$tmp/diff"; fail=$((fail + 1)); return
    fi
    ip netns exec "$ns" nft flush ruleset
    if ! ip netns exec "$ns" nft -f "$ours" 2> "$tmp/err"; then
      echo "FAIL: nft $name: nft -f refused svcpath's listing: $(cat "$tmp/err")"; fail=$((fail + 1)); return
    fi
    if ! diff -u <(nftnorm < "$tmp/nft.kernel2") <(ip netns exec "$ns" nft list ruleset | nftnorm) > "$tmp/diff"; then
      echo "FAIL: nft $name: svcpath's listing loads as another ruleset than nft's own listing:"; cat "$tmp/diff"; fail=$((fail + 1)); return
    fi
    echo "ok: nft $name: $(wc -l < "$tmp/nft.kernel") lines, kernel and svcpath agree both ways"
  }
  for c in basic traffic-policy dual-stack; do
    for fam in 4 6; do
      args=(--cluster "$clusters/nodes.yaml" --cluster "$clusters/$c.yaml" --node node-a --proxy-config "$clusters/proxy-config.yaml"
            --family "$fam" --mode nftables)
      "$svcpath" rules "${args[@]}" --restore-input 2>/dev/null | tail -n +2 > "$tmp/tx.nft"
      "$svcpath" rules "${args[@]}" > "$tmp/ours.nft" 2>/dev/null
      nft_check "kube-proxy $c v$fam" "$tmp/tx.nft" "$tmp/ours.nft"
    done
  done
  for f in "$src"/examples/rulesets/*.nft "$src"/tests/data/nft/*.nft; do
    "$svcpath" rules --nft "$f" > "$tmp/ours.nft"
    nft_check "$(basename "$f")" "$f" "$tmp/ours.nft"
  done
else
  echo "note: nft is not installed; nftables round trips skipped"
fi
echo "$((n - fail)) passed, $fail failed"
[ "$fail" -eq 0 ]
