#!/usr/bin/env bash
# The command line as a user meets it: exit statuses, file:line errors on stderr, --help that teaches.
set -u
bin=$1
src=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0

# expect NAME STATUS PATTERN -- command...   (PATTERN is grepped in stdout+stderr)
expect() {
  local name=$1 want=$2 pattern=$3
  shift 4
  "$@" > "$tmp/out" 2>&1
  local got=$?
  if [ "$got" -ne "$want" ]; then
    echo "FAIL: $name: exit $got, expected $want"; sed 's/^/    /' "$tmp/out" | head -20; fail=$((fail + 1)); return
  fi
  if ! grep -qE -- "$pattern" "$tmp/out"; then
    echo "FAIL: $name: output lacks /$pattern/"; sed 's/^/    /' "$tmp/out" | head -20; fail=$((fail + 1)); return
  fi
  echo "ok: $name"; pass=$((pass + 1))
}

R="$src/examples/rulesets/kube-clusterip.rules"
N="$src/examples/nodes/kube-node.yaml"
printf '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 99999 -j ACCEPT\nCOMMIT\n' > "$tmp/bad.rules"
printf 'interfaces:\n  - name: eth0\n    addresses: [10.0.0.1/99]\n' > "$tmp/bad-node.yaml"
printf 'tcp 10.244.1.5:1 -> 172.30.0.41:80 in=veth-web\nthis is not a packet\n' > "$tmp/bad-packets.txt"
printf 'routes: [x]\n' > "$tmp/shape-node.yaml"
printf 'create S hash:ip\nadd S 1.2.3\n' > "$tmp/bad.ipsets"

expect "the NetworkPolicy walk-through tells both modes" 0 "policy allowed at OUTPUT by shop/db-from-web ingress\[0\]; the policy chain saw tcp 10.244.1.10:40000 -> 10.244.1.20:5432 \(DNAT by ipvs at INPUT" -- \
  "$src/examples/networkpolicy/story.sh" "$bin"
expect "rules --policy prints the engine's input" 0 "^-I FORWARD 1 .* -j NP-FORWARD" -- \
  "$bin" rules --cluster "$src/examples/networkpolicy/cluster.yaml" --node node-a --policy
NP="$src/examples/networkpolicy/cluster.yaml"
"$bin" trace --cluster "$NP" --node node-a --mode iptables,ipvs -p 'tcp 10.244.1.10:40000 -> 10.96.0.54:5432' \
  --format svg > "$tmp/p.svg" 2>/dev/null
expect "trace --format svg is well-formed and draws the hooks in the order visited" 0 "^ok$" -- python3 -c '
import sys, xml.etree.ElementTree as ET
ns = {"s": "http://www.w3.org/2000/svg"}
root = ET.parse(sys.argv[1]).getroot()
panels = {p.get("data-mode"): p for p in root.iter("{http://www.w3.org/2000/svg}g") if p.get("class") == "panel"}
def order(p):
    steps = [t for t in p.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "step" and t.findtext("s:tspan", namespaces=ns, default="").strip()[:1].isdigit()]
    return [t.get("data-hook") for t in steps]
def chains(p):
    return "".join("".join(t.itertext()) for t in p.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "step")
assert order(panels["iptables"]) == ["PREROUTING", "FORWARD", "POSTROUTING"], order(panels["iptables"])
assert order(panels["ipvs"]) == ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"], order(panels["ipvs"])
c = chains(panels["iptables"])
assert c.index("KUBE-SERVICES") < c.index("DNAT") < c.index("NP-IN-"), c
print("ok")' "$tmp/p.svg"
expect "trace --format dot writes one digraph per mode" 0 "^digraph svcpath_2" -- \
  "$bin" trace --cluster "$NP" --node node-a --mode iptables,ipvs -p 'tcp 10.244.1.10:40000 -> 10.96.0.54:5432' --format dot
expect "trace --format html is one self-contained page" 0 "^<!DOCTYPE html>" -- \
  "$bin" trace --cluster "$NP" --node node-a -p 'tcp 10.244.1.10:40000 -> 10.96.0.54:5432' --format html
echo '{"modes": 1}' > "$tmp/notreplay.json"
expect "report refuses JSON that is not replay output" 1 "notreplay.json: error: not the output of .svcpath replay --format json" -- \
  "$bin" report --replay "$tmp/notreplay.json" -o "$tmp/r.html"
expect "report refuses a file that is not JSON" 1 "^README.md:1:1: error: not JSON: expected the output of .svcpath replay --format json.$" -- \
  sh -c 'cd "$1" && "$2" report --replay README.md -o "$3"' _ "$src" "$bin" "$tmp/r.html"
# A synthetic measurement that is exactly 2000 ns + 3 ns per rule: the fit must find that.
python3 -c '
import json
rules = {100: 110, 1000: 1009, 2000: 2009}
print(json.dumps({"points": [{"backend": "legacy", "services": n, "cost_ns": 2000 + 3 * r} for n, r in rules.items()]}))' > "$tmp/measured.json"
expect "bench-model fits the kernel measurement and predicts the unfitted point" 0 "1000 +1009 +1[0-9]+ +5027 +5027 +[+-]0.0%  check" -- \
  "$bin" bench-model --measured "$tmp/measured.json" --calibrate 100,2000
expect "help lists the subcommands" 0 "rules +Load rule dumps" -- "$bin" --help
# nftables: the third mode, and nft dumps of one's own.
expect "rules --mode nftables prints the node's nft list ruleset" 0 "^		ip daddr \. meta l4proto \. th dport vmap @service-ips$" -- \
  "$bin" rules --cluster "$NP" --node node-a --mode nftables
expect "rules --mode nftables --restore-input prints kube-proxy's transaction" 0 "^add rule ip kube-proxy services ip daddr \. meta l4proto \. th dport vmap @service-ips$" -- \
  "$bin" rules --cluster "$NP" --node node-a --mode nftables --restore-input
expect "trace --mode iptables,ipvs,nftables shows all three" 0 "^== mode nftables ==" -- \
  "$bin" trace --cluster "$NP" --node node-a --mode iptables,ipvs,nftables -p 'tcp 10.244.1.10:40000 -> 10.96.0.54:5432'
expect "trace --nft walks an nft list ruleset dump" 0 "=> forwarded out lan0: tcp 198.51.100.9:55555 -> 192.168.1.20:80 dnat" -- \
  "$bin" trace --nft "$src/examples/rulesets/nat-gateway.nft" --node-config "$src/examples/nodes/nat-gateway.yaml" \
  -p 'tcp 198.51.100.9:55555 -> 203.0.113.7:8080 in=wan0'
expect "replay compares nftables mode with the others" 0 "iptables vs nftables: [0-9]+ connections" -- \
  "$bin" replay --cluster "$NP" --node node-a --mode iptables,nftables --pcap "$src/examples/pcaps/demo-node-a.pcap" --answer
expect "an unknown mode names the three" 1 "mode 'ebpf' is not available \(iptables, ipvs, nftables\)" -- \
  "$bin" trace --cluster "$NP" --node node-a --mode ebpf -p 'tcp 10.244.1.10:40000 -> 10.96.0.54:5432'

expect "trace --help shows an example and the packet grammar" 0 "Packet spec: PROTO" -- "$bin" trace --help
expect "no subcommand is a usage error" 2 "subcommand" -- "$bin"
expect "a traced packet" 0 "=> forwarded out eth0: tcp 10.244.1.5:1 -> 10.244.2.7:8080 dnat" -- \
  "$bin" trace --rules "$R" --node-config "$N" --packet "tcp 10.244.1.5:1 -> 172.30.0.41:80 in=veth-web"
expect "same seed, same answer" 0 "10.244.2.7:8080" -- \
  "$bin" trace --rules "$R" --node-config "$N" --seed 1 --packet "tcp 10.244.1.5:1 -> 172.30.0.41:80 in=veth-web"
expect "json output" 0 '"verdict":"forwarded"' -- \
  "$bin" trace --rules "$R" --node-config "$N" --format json --packet "tcp 10.244.1.5:1 -> 172.30.0.41:80 in=veth-web"
expect "enumerate lists three outcomes" 0 "outcome 3/3" -- \
  "$bin" trace --rules "$R" --node-config "$N" --enumerate --packet "tcp 10.244.1.5:1 -> 172.30.0.41:80 in=veth-web"
expect "bad rules: file:line:col and exit 1" 1 "bad.rules:3:[0-9]+: error: .*not a port" -- \
  "$bin" trace --rules "$tmp/bad.rules" --packet "tcp 1.1.1.1:1 -> 2.2.2.2:2"
expect "bad node config: file:line" 1 "bad-node.yaml:3:[0-9]+: error: interfaces\[0\].addresses\[0\]" -- \
  "$bin" trace --rules "$R" --node-config "$tmp/bad-node.yaml" --packet "tcp 1.1.1.1:1 -> 2.2.2.2:2"
expect "node config of the wrong shape: file:line" 1 "shape-node.yaml:1:10: error: unexpected YAML shape" -- \
  "$bin" trace --rules "$R" --node-config "$tmp/shape-node.yaml" --packet "tcp 1.1.1.1:1 -> 2.2.2.2:2"
expect "bad packet line: file:line" 1 "bad-packets.txt:2: error: .*expected 'PROTO SRC -> DST'" -- \
  "$bin" trace --rules "$R" --node-config "$N" --packets "$tmp/bad-packets.txt"
expect "bad ipsets: file:line" 1 "bad.ipsets:2:[0-9]+: error: .*not an IP address" -- \
  "$bin" trace --rules "$R" --ipsets "$tmp/bad.ipsets" --packet "tcp 1.1.1.1:1 -> 2.2.2.2:2"
expect "unknown interface is named" 1 "unknown interface 'eth9'" -- \
  "$bin" trace --rules "$R" --packet "tcp 1.1.1.1:1 -> 2.2.2.2:2 in=eth9"
expect "bad sysctl" 1 "unknown sysctl 'kernel.frob'" -- \
  "$bin" trace --rules "$R" --sysctl kernel.frob=1 --packet "tcp 1.1.1.1:1 -> 2.2.2.2:2"
expect "missing file is a usage error" 2 "File does not exist" -- "$bin" trace --rules /nonexistent --packet "tcp 1.1.1.1:1 -> 2.2.2.2:2"
expect "reply with nothing to answer" 1 "^--packet: error: 'tcp/SA reply': nothing to answer yet: this is the first packet" -- \
  "$bin" trace --rules "$R" --packet "tcp/SA reply"
expect "rules prints canonical form" 0 "^-A KUBE-SVC-XRY76EGRC3BSCIIJ ! -s 10.244.0.0/16" -- "$bin" rules --rules "$R"
C="--cluster $src/examples/clusters/nodes.yaml --cluster $src/examples/clusters/basic.yaml --node node-a --proxy-config $src/examples/clusters/proxy-config.yaml"
P="$src/examples/pcaps/basic-node-a.pcap"
# shellcheck disable=SC2086
expect "replay compares modes" 0 "^== mode ipvs ==" -- "$bin" replay $C --mode iptables,ipvs --pcap "$P"
# shellcheck disable=SC2086
expect "replay counts what it skips" 0 "skipped +1  not IP" -- "$bin" replay $C --pcap "$P"
# shellcheck disable=SC2086
expect "replay writes post-NAT pcaps" 0 "wrote 42 post-NAT packets to .*/nat/iptables.pcap" -- \
  "$bin" replay $C --pcap "$P" --out-dir "$tmp/nat"
if command -v tcpdump >/dev/null; then
  expect "tcpdump reads the post-NAT pcap" 0 "10.244.1.7.20000 > 10.244.(1.3|2.4).53" -- tcpdump -nn -r "$tmp/nat/iptables.pcap"
fi
# shellcheck disable=SC2086
"$bin" gen-traffic $C --out "$tmp/g.pcap" --connections 50 --seed 3 > "$tmp/truth.txt" 2>/dev/null
# shellcheck disable=SC2086
"$bin" gen-traffic $C --out "$tmp/g2.pcap" --connections 50 --seed 3 > /dev/null 2>&1
expect "gen-traffic is byte-identical per seed" 0 "^identical$" -- sh -c 'cmp "$1" "$2" && echo identical' _ "$tmp/g.pcap" "$tmp/g2.pcap"
expect "gen-traffic ground truth" 0 "^wrote .*g.pcap: [0-9]+ packets, 50 connections" -- cat "$tmp/truth.txt"
# shellcheck disable=SC2086
expect "replay --answer of a generated capture, both modes agree" 0 "iptables vs ipvs: 50 connections, 50 equivalent, 0 different" -- \
  "$bin" replay $C --mode iptables,ipvs --pcap "$tmp/g.pcap" --answer -j 2
# shellcheck disable=SC2086
expect "replay prints per-mode rates on stderr" 0 "mode ipvs: [0-9]+ packets in" -- \
  "$bin" replay $C --mode iptables,ipvs --pcap "$tmp/g.pcap" --answer
# shellcheck disable=SC2086
expect "gen-traffic names a bad client kind" 1 "unknown client kind 'robots'" -- \
  "$bin" gen-traffic $C --out "$tmp/x.pcap" --clients robots=1
if command -v script >/dev/null; then
  # A terminal gets a progress line on stderr; a pipe does not.
  expect "replay shows progress on a terminal" 0 "[0-9]+ packets in [0-9.]+ s \([0-9]+ packets/s\)" -- \
    script -qec "$bin replay $C --pcap $tmp/g.pcap --answer" /dev/null
  expect "replay is quiet in a pipe" 0 "^no progress$" -- \
    sh -c '"$@" 2>&1 | grep -qE "packets in [0-9.]+ s \(" && echo progress || echo no progress' _ "$bin" replay $C --pcap "$tmp/g.pcap"
fi
# shellcheck disable=SC2086
expect "replay --in names an unknown interface" 1 "unknown interface 'eth9' \(mode iptables has: lo, eth0" -- \
  "$bin" replay $C --pcap "$P" --in eth9
printf 'not a pcap' > "$tmp/junk.pcap"
expect "replay of a non-capture names the file" 1 "junk.pcap: error: not a pcap or pcapng capture" -- "$bin" replay --rules "$R" --pcap "$tmp/junk.pcap"
# The example snapshots (examples/snapshots/make.sh) load as their nodes: the established DNS flow
# keeps its DNAT to node-b's pod, a new one is balanced by the rules; the gateway routes by fwmark.
S=$src/examples/snapshots
expect "snapshot: conntrack from the node keeps an established flow's DNAT" 0 "forwarded out eth0: udp 10.244.1.5:40000 -> 10.244.2.4:53 dnat" -- \
  "$bin" trace --snapshot "$S/node-kube-node-a-20261206T000000Z.tar.gz" --packet "udp 10.244.1.5:40000 -> 172.30.0.10:53 in=cni0"
expect "snapshot: says which iptables back end held the rules" 0 "iptables back end: nft \([0-9]+ IPv4 and 0 IPv6 rules, kube-proxy's chains\)" -- \
  sh -c '"$@" 2>&1 >/dev/null' _ "$bin" rules --snapshot "$S/node-kube-node-a-20261206T000000Z.tar.gz"
expect "snapshot: the gateway's policy routing and nft masquerade" 0 "forwarded out wan0: tcp 203.0.113.7:5000 -> 8.8.8.8:443 snat" -- \
  "$bin" trace --snapshot "$S/node-nat-gateway-20261206T000000Z.tar.gz" --packet "tcp 192.168.1.20:5000 -> 8.8.8.8:443 in=lan0"
expect "snapshot: replay of a capture through it, with the HTML report" 0 "^<!DOCTYPE html>" -- \
  sh -c '"$@" >/dev/null 2>&1 && head -c 15 "$0"' "$tmp/snap.html" "$bin" replay --snapshot "$S/node-kube-node-a-20261206T000000Z.tar.gz" \
  --pcap "$src/examples/pcaps/demo-node-a.pcap" --report "$tmp/snap.html"
# ---- svcpath diff (issue 20): classes with a sentence, the setting that keeps side A, exit 0/1/2.
C=("$src/examples/clusters/basic.yaml" "$src/examples/clusters/nodes.yaml")
expect "diff: iptables to nftables names the localhost NodePort class" 1 "^\[[0-9]\] NodePort on 127.0.0.1 is no longer served: nftables mode does not support NodePorts on localhost \(2 flows\)" -- \
  "$bin" diff --cluster "${C[@]}" --node node-a --mode iptables --to-mode nftables
expect "diff: the setting that keeps the old behaviour" 1 "keeps iptables's behaviour: conntrack.tcpBeLiberal: true \(--conntrack-tcp-be-liberal\)" -- \
  "$bin" diff --cluster "${C[@]}" --node node-a --mode iptables --to-mode nftables
expect "diff: JSON counts the changed flows" 1 '"changed": 18' -- \
  "$bin" diff --cluster "${C[@]}" --node node-a --mode iptables --to-mode nftables --format json
printf 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nnodePortAddresses: ["0.0.0.0/0", "::/0"]\n' > "$tmp/np-all.yaml"
expect "diff: nodePortAddresses 0.0.0.0/0 in nftables mode: nothing changes" 0 "^ipvs -> nftables: 51 flows, 0 change$" -- \
  "$bin" diff --cluster "${C[@]}" --node node-a --mode ipvs --to-mode nftables --to-proxy-config "$tmp/np-all.yaml" --proxy-config "$tmp/np-all.yaml"
expect "diff: two clusters, before and after a Service edit" 1 "^before -> after: " -- \
  sh -c 'sed "s/port: 80, targetPort: 8080, nodePort: 30080/port: 81, targetPort: 8080, nodePort: 30080/" "$1" > "$2/after.yaml" &&
         "$0" diff --cluster "$1" "$3" --to-cluster "$2/after.yaml" "$3" --node node-a' "$bin" "${C[0]}" "$tmp" "${C[1]}"
expect "diff: side B equal to side A is refused" 2 "side B is side A" -- \
  "$bin" diff --cluster "${C[@]}" --node node-a --mode iptables
expect "diff: bad input exits 2, not 1 (1 means a change)" 2 "no Node 'nowhere'" -- \
  "$bin" diff --cluster "${C[@]}" --node nowhere --mode iptables --to-mode nftables
"$bin" diff --cluster "${C[@]}" --node node-a --mode iptables --to-mode nftables --format json > "$tmp/diff.json" 2>/dev/null
expect "report --diff: a section of what changes, a row per class" 0 "^1 section, 4 rows$" -- \
  sh -c '"$0" report --diff "$1" -o "$2/d.html" >/dev/null 2>&1 &&
         echo "$(grep -c "<section id=\"diff\"><h2>What changes from iptables to nftables</h2>" "$2/d.html") section, $(grep -o "<tr><td>" "$2/d.html" | wc -l) rows"' "$bin" "$tmp/diff.json" "$tmp"
expect "report --diff on a replay's JSON names what it expected" 1 "not the output of .svcpath diff --format json." -- \
  "$bin" report --diff "$src/bench/kernel/results-2026-11-29.json"
"$bin" diff --cluster "${C[@]}" --node node-a --mode iptables --to-mode nftables --format svg > "$tmp/diff.svg" 2>/dev/null
expect "diff: one picture per class, both sides" 0 "^4 pictures, 8 panels$" -- \
  sh -c 'echo "$(grep -c "<text[^>]*class=\"title\"" "$1" || true) pictures, $(grep -c "<rect class=\"frame\"" "$1" || true) panels"' _ "$tmp/diff.svg"

# ---- Issue 21, inputs recognised and mistakes answered (h-mistakes). Each answer is ONE line on
# stderr, exactly, with its exit status.
# expect_line NAME STATUS LINE -- command...   (stdout+stderr must be exactly LINE)
expect_line() {
  local name=$1 want=$2 line=$3
  shift 4
  "$@" > "$tmp/out" 2>&1
  local got=$?
  if [ "$got" -ne "$want" ] || [ "$(cat "$tmp/out")" != "$line" ]; then
    echo "FAIL: $name: exit $got (expected $want), output:"; sed 's/^/    /' "$tmp/out" | head -20
    echo "    expected: $line"; fail=$((fail + 1)); return
  fi
  echo "ok: $name"; pass=$((pass + 1))
}
E=$src/examples
NFT=$E/rulesets/nat-gateway.nft
YAML=$E/clusters/basic.yaml
IPVS=$src/tests/data/realworld/kube-proxy-ipvs-minikube.ipvs
SETS=$src/tests/data/ipset-forms.ipsets
SNAP=$E/snapshots/node-kube-node-a-20261206T000000Z.tar.gz
PK='tcp 10.244.1.5:1 -> 172.30.0.41:80'
# The example cluster, named here: later blocks may redefine C.
CL="--cluster $E/clusters/nodes.yaml --cluster $YAML --node node-a"
# A file given to the wrong flag names the flag that takes it.
expect_line "an nft ruleset on --rules" 2 "$NFT: error: an nft ruleset given to --rules, which takes an iptables-save dump; give it with --nft" -- \
  "$bin" trace --rules "$NFT" -p "$PK"
expect_line "a cluster on --rules" 2 "$YAML: error: Kubernetes objects given to --rules, which takes an iptables-save dump; give it with --cluster" -- \
  "$bin" rules --rules "$YAML"
expect_line "an ipvsadm dump on --rules" 2 "$IPVS: error: an ipvsadm dump given to --rules, which takes an iptables-save dump; give it with --ipvs" -- \
  "$bin" rules --rules "$IPVS"
expect_line "an ipset dump on --rules" 2 "$SETS: error: an ipset save dump given to --rules, which takes an iptables-save dump; give it with --ipsets" -- \
  "$bin" replay --rules "$SETS" --pcap "$P"
expect_line "a capture on --rules" 2 "$P: error: a packet capture given to --rules, which takes an iptables-save dump; give it with replay --pcap" -- \
  "$bin" trace --rules "$P" -p "$PK"
expect_line "a snapshot on --rules" 2 "$SNAP: error: a gzip archive given to --rules, which takes an iptables-save dump; give it with --snapshot" -- \
  "$bin" trace --rules "$SNAP" -p "$PK"
expect_line "packet specs on --rules" 2 "$E/packets/firewall.txt: error: packet specs given to --rules, which takes an iptables-save dump; give it with trace --packets" -- \
  "$bin" trace --rules "$E/packets/firewall.txt" -p "$PK"
expect_line "an iptables dump on --node-config" 2 "$R: error: an iptables-save dump given to --node-config, which takes a node config; give it with --rules" -- \
  "$bin" trace --rules "$R" --node-config "$R" -p "$PK"
expect_line "an nft ruleset on --cluster" 2 "$NFT: error: an nft ruleset given to --cluster, which takes Kubernetes objects; give it with --nft" -- \
  "$bin" rules --cluster "$NFT" --node node-a
expect_line "a capture on --cluster" 2 "$P: error: a packet capture given to --cluster, which takes Kubernetes objects; give it with replay --pcap" -- \
  "$bin" gen-traffic --cluster "$P" --node node-a -o "$tmp/x.pcap"
expect_line "a proxy config on --cluster" 2 "$E/clusters/proxy-config.yaml: error: a KubeProxyConfiguration given to --cluster, which takes Kubernetes objects; give it with --proxy-config" -- \
  "$bin" rules --cluster "$E/clusters/proxy-config.yaml" --node node-a
expect_line "a cluster on --node-config" 2 "$YAML: error: Kubernetes objects given to --node-config, which takes a node config; give it with --cluster" -- \
  "$bin" verify --nft "$NFT" --node-config "$YAML"
expect_line "an iptables dump on --pcap" 2 "$R: error: an iptables-save dump given to --pcap, which takes a packet capture; give it with --rules" -- \
  "$bin" replay --rules "$R" --pcap "$R"
expect_line "a cluster on --pcap" 2 "$YAML: error: Kubernetes objects given to --pcap, which takes a packet capture; give it with --cluster" -- \
  "$bin" replay --rules "$R" --pcap "$YAML"
expect_line "a capture on report --replay" 2 "$P: error: a packet capture given to --replay, which takes the output of svcpath replay --format json; give it with replay --pcap" -- \
  "$bin" report --replay "$P" -o "$tmp/r.html"
# A pipe is not sniffed (it can be read once): its loader reads it whole.
expect "a dump through a pipe loads whole" 0 "^-A KUBE-SVC-XRY76EGRC3BSCIIJ ! -s 10.244.0.0/16" -- \
  sh -c 'cat "$2" | "$1" rules --rules /dev/stdin' _ "$bin" "$R"
# Misspelt subcommands and flags: the nearest registered name.
expect_line "a misspelt subcommand" 2 "svcpath: error: unknown subcommand 'trase'; did you mean 'trace'?" -- "$bin" trase --rules "$R"
expect_line "a misspelt subcommand after a global flag" 2 "svcpath: error: unknown subcommand 'rulse'; did you mean 'rules'?" -- \
  "$bin" --max-memory 100 rulse --rules "$R"
expect_line "a word that is no subcommand" 2 "svcpath: error: unknown subcommand 'frobnicate' (see svcpath --help)" -- "$bin" frobnicate
expect_line "a misspelt flag" 2 "svcpath trace: error: unknown flag '--rule'; did you mean '--rules'?" -- "$bin" trace --rule "$R" -p "$PK"
expect_line "a misspelt flag with =" 2 "svcpath trace: error: unknown flag '--sed'; did you mean '--seed'?" -- "$bin" trace --rules "$R" --sed=3 -p "$PK"
# shellcheck disable=SC2086
expect_line "replay takes --mode, as trace does" 2 "svcpath replay: error: unknown flag '--modes'; did you mean '--mode'?" -- \
  "$bin" replay $CL --modes iptables,ipvs --pcap "$P"
expect_line "a flag of another subcommand" 2 "svcpath rules: error: unknown flag '--pcap' (svcpath replay takes it)" -- "$bin" rules --pcap "$P"
# A flag that does nothing in the combination given is refused.
expect_line "--mode without --cluster" 2 "svcpath trace: error: --mode requires --cluster" -- "$bin" trace --rules "$R" --mode ipvs -p "$PK"
expect_line "--node without --cluster" 2 "svcpath replay: error: --node requires --cluster" -- "$bin" replay --rules "$R" --node node-a --pcap "$P"
expect_line "--cluster beside --rules" 2 "svcpath trace: error: --cluster excludes --rules" -- \
  "$bin" trace --cluster "$YAML" --node node-a --rules "$R" -p "$PK"
expect_line "--cluster beside --snapshot" 2 "svcpath replay: error: --cluster excludes --snapshot" -- \
  "$bin" replay --cluster "$YAML" --node node-a --snapshot "$SNAP" --pcap "$P"
expect_line "rules --family without --cluster" 2 "svcpath rules: error: --family requires --cluster" -- "$bin" rules --rules "$R" --family 6
expect_line "rules --counters with --cluster" 2 "svcpath rules: error: --counters excludes --cluster" -- \
  "$bin" rules --cluster "$YAML" --node node-a --counters
expect_line "rules --policy with --restore-input" 2 "svcpath rules: error: --policy excludes --restore-input" -- \
  "$bin" rules --cluster "$NP" --node node-a --policy --restore-input
expect_line "trace --outcome without a picture of --enumerate" 2 "svcpath trace: error: --outcome requires --enumerate and --format svg, html or dot" -- \
  "$bin" trace --rules "$R" --outcome 2 --enumerate -p "$PK"
expect_line "trace --color with JSON" 2 "svcpath trace: error: --color requires --format text" -- \
  "$bin" trace --rules "$R" --color always --format json -p "$PK"
expect_line "trace --verbose with a picture" 2 "svcpath trace: error: --verbose requires --format text" -- \
  "$bin" trace --rules "$R" -v --format svg -p "$PK"
expect_line "--iptables-backend without an iptables dump" 2 "svcpath trace: error: --iptables-backend requires an iptables dump (--rules, --rules6 or --snapshot)" -- \
  "$bin" trace --nft "$NFT" --iptables-backend nft -p "$PK"
# shellcheck disable=SC2086
expect_line "gen-traffic --mode" 2 "svcpath gen-traffic: error: --mode does nothing here: gen-traffic writes the same capture for every mode (give --mode to replay)" -- \
  "$bin" gen-traffic $CL --mode ipvs -o "$tmp/x.pcap"
expect_line "rules -6 without an iptables dump" 2 "svcpath rules: error: -6 requires an iptables dump (--rules or --snapshot)" -- \
  "$bin" rules --nft "$NFT" -6
expect_line "trace --in with --local" 2 "svcpath trace: error: --in excludes --local" -- "$bin" trace --rules "$R" --local --in eth0 -p "$PK"
expect_line "replay --examples with one mode" 2 "svcpath replay: error: --examples requires two modes to compare (--cluster with --mode A,B)" -- \
  "$bin" replay --rules "$R" --pcap "$P" --examples 3
{ echo "# Generated by iptables-save v1.8.9 on Mon Dec  7 02:00:00 2026"; cat "$R"; } > "$tmp/v4.rules"
expect_line "an IPv4 dump given as IPv6" 2 "$tmp/v4.rules: error: an IPv4 dump (iptables-save) given as IPv6 (--rules6 or -6); give it with --rules" -- \
  "$bin" trace --rules6 "$tmp/v4.rules" -p "$PK"
# Packet specs and the first packet.
expect_line "a port with a letter in it" 1 "--packet: error: '10.244.1.5:33o6': port '33o6' is not a number" -- \
  "$bin" trace --rules "$R" -p 'tcp 10.244.1.5:33o6 -> 172.30.0.41:80'
expect_line "a reply to a later packet" 1 "--packet: error: 'tcp/A reply:3': there is no earlier packet 3 to reply to (packets 1..1 came before it)" -- \
  "$bin" trace --rules "$R" -p "$PK in=eth0" -p 'tcp/A reply:3'
# A note (a skipped kind) once per run however many objects carry it.
printf 'kind: ConfigMap\nmetadata: {name: a}\n---\nkind: ConfigMap\nmetadata: {name: b}\n---\nkind: ConfigMap\nmetadata: {name: c}\n' > "$tmp/cm.yaml"
expect "a skipped kind is noted once" 0 "^1$" -- \
  sh -c '"$@" 2>&1 >/dev/null | grep -c "skipped kind ConfigMap (not used by svcpath) (and 2 more like it)"' _ \
  "$bin" rules --cluster "$E/clusters/nodes.yaml" --cluster "$tmp/cm.yaml" --node node-a
# --enumerate: the summary table comes first, one row per outcome.
expect_line "enumerate starts with a summary table" 0 "$(printf '%s\n' \
  '  #  outcome             backend          masquerade  probability' \
  '  1  forwarded out cni0  10.244.1.5:8080  10.244.1.1  0.333333' \
  '  2  forwarded out eth0  10.244.2.7:8080  -           0.333333' \
  '  3  forwarded out eth0  10.244.3.9:8080  -           0.333333' \
  '  outcome 1/3  p=0.333333')" -- \
  sh -c '"$@" | sed -n 2,6p' _ "$bin" trace --rules "$R" --node-config "$N" --enumerate -p "tcp 10.244.1.5:40000 -> 172.30.0.41:80 in=veth-web"
# README.md's exit-status table, row by row: each documented status is what the binary returns.
dmg=$tmp/damaged.pcap
head -c 100 "$P" > "$dmg"
status_of() {
  case $1 in
    0) "$bin" trace --rules "$R" -p "$PK" ;;
    1) "$bin" trace --rules "$tmp/bad.rules" -p "$PK" ;;
    2) "$bin" trace --rule "$R" ;;
    3) "$bin" replay --rules "$R" --pcap "$dmg" ;;
    4) PATH=/nonexistent "$bin" verify --rules "$R" ;;
    *) return 99 ;;
  esac
}
documented=$(sed -n '/^## Exit statuses/,/^## /p' "$src/README.md" | sed -nE 's/^\| ([0-9]+) \|.*/\1/p')
expect "README.md documents statuses 0 to 4" 0 "^0 1 2 3 4$" -- echo $documented
for st in $documented; do
  status_of "$st" > /dev/null 2>&1
  got=$?
  if [ "$got" -eq "$st" ]; then echo "ok: README exit status $st"; pass=$((pass + 1))
  else echo "FAIL: README exit status $st: the binary returned $got"; fail=$((fail + 1)); fi
done
# ---- end of issue 21's block

# ---- Fair comparisons (issue 21): side by side, the modes share the backend choice.
K="--cluster $src/examples/clusters/nodes.yaml $src/examples/clusters/basic.yaml --node node-a --proxy-config $src/examples/clusters/proxy-config.yaml"
# shellcheck disable=SC2086
expect "trace side by side: all three panels DNAT to the backend IPVS's round robin fixed" 0 "^3 same, 1 line$" -- \
  sh -c '"$@" 2>/dev/null > "$0" && echo "$(grep -c "^  => forwarded out eth0: tcp 10.244.1.9:40000 -> 10.244.3.9:8080 dnat$" "$0") same, $(grep -c "^same backend 10.244.3.9:8080 in every mode (ipvs.s choice, which does not fork); --independent to sample each mode on its own$" "$0") line"' \
  "$tmp/common.txt" "$bin" trace $K --mode iptables,ipvs,nftables -p 'tcp 10.244.1.9:40000 -> 172.30.0.41:80'
# shellcheck disable=SC2086
expect "trace --independent samples each mode on its own, as the old golden shows" 0 "^identical$" -- \
  sh -c '"$@" 2>/dev/null | diff - "$0" >/dev/null && echo identical' "$src/tests/golden/kube/trace-three-modes.txt" \
  "$bin" trace $K --mode iptables,ipvs,nftables --independent -p 'tcp 10.244.1.9:40000 -> 172.30.0.41:80' -p 'tcp/SA reply' \
  -p 'tcp 10.244.1.9:40001 -> 172.30.0.99:80'

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
