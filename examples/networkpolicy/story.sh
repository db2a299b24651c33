#!/usr/bin/env bash
# Why does a NetworkPolicy never need to name a Service's ClusterIP, yet still protect the pods
# behind it? This walks examples/networkpolicy/cluster.yaml on node-a through both kube-proxy
# modes and prints, for each packet, where DNAT happened, what tuple the policy chain saw, and which
# policy rule decided. Usage: examples/networkpolicy/story.sh [path/to/svcpath]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
svcpath=${1:-$here/../../build/release/svcpath}
C=(--cluster "$here/cluster.yaml" --node node-a)

tell() {
  local title=$1 packet=$2; shift 2
  echo
  echo "### $title"
  echo "    $packet"
  for mode in iptables ipvs; do
    # Each outcome line (with its probability under --enumerate) and its policy line, per mode.
    "$svcpath" trace "${C[@]}" --mode "$mode" --seed 1 "$@" -p "$packet" 2>/dev/null |
      awk -v m="$mode" '/^  outcome /{p=" (" $2 ", " $3 ")"} /^ *=> /{sub(/^ *=> /, ""); printf "  %-9s => %s%s\n", m, $0, p} /^ *policy: /{sub(/^ *policy: /, ""); printf "  %-9s    policy %s\n", "", $0}'
  done
}

echo "== NetworkPolicy and Service DNAT on node-a =="
"$svcpath" rules "${C[@]}" --policy | head -1
tell "pod -> ClusterIP of a protected pod, allowed (web-1 -> db)" "tcp 10.244.1.10:40000 -> 10.96.0.54:5432"
tell "pod -> ClusterIP of a protected pod, denied (debug-1 -> db)" "tcp 10.244.1.30:40000 -> 10.96.0.54:5432"
tell "host -> ClusterIP (the node itself -> web)" "tcp 10.0.0.10:40000 -> 10.96.0.80:80 local" --enumerate
tell "external client -> NodePort (the internet -> web)" "tcp 203.0.113.7:40000 -> 10.0.0.10:30080" --enumerate
tell "a policy whose ipBlock names the ClusterIP (debug-1 -> web ClusterIP)" "tcp 10.244.1.30:40000 -> 10.96.0.80:80" --enumerate

echo
echo "### the same packet under IPVS with a policy engine that is not IPVS-aware (--policy-placement plain)"
"$svcpath" trace "${C[@]}" --mode ipvs --policy-placement plain --seed 1 --enumerate -p "tcp 10.244.1.30:40000 -> 10.96.0.80:80" 2>/dev/null |
  awk '/^ *=> /{sub(/^ *=> /, ""); print "  ipvs      => " $0} /^ *policy: /{sub(/^ *policy: /, ""); print "               policy " $0}'
cat <<'TXT'

Read it this way:
- iptables mode: kube-proxy's DNAT runs in nat PREROUTING (-100) or nat OUTPUT, before any filter
  hook, so the policy chains in FORWARD and OUTPUT see the backend pod -- the ClusterIP is gone.
- IPVS mode: filter INPUT sees the ClusterIP, IPVS rewrites it at LOCAL_IN, and the packet leaves
  through OUTPUT addressed to the pod; FORWARD is never traversed. An IPVS-aware engine checks
  there; one that is not checks egress in INPUT against the ClusterIP, where an ipBlock naming the
  ClusterIP suddenly matches.
TXT
