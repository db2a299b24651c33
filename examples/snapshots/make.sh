#!/usr/bin/env bash
# Rebuilds the example snapshots: two network namespaces set up as real nodes, each snapshotted by
# scripts/svcpath-snapshot -D (fixed member times; MAC addresses, conntrack timers and kernel
# random values still differ from run to run).
#   kube-node-a: node-a of examples/clusters (kube-proxy iptables mode through iptables-nft, a cni0
#     bridge, host-gw routes to the other nodes, one established ClusterIP flow in conntrack)
#   nat-gateway: a small router (nftables ruleset, policy routing for a guest network by fwmark)
# Needs root, iproute2, iptables-nft, nft, conntrack. Usage: examples/snapshots/make.sh [BUILD_DIR]
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
svcpath=${1:-$src/build/dev}/svcpath
out=$src/examples/snapshots
ns=svcpath-example-$$
trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
inns() { ip netns exec "$ns" "$@"; }
fresh() { ip netns del "$ns" 2>/dev/null || true; ip netns add "$ns"; inns ip link set lo up; }

# --- kube-node-a
fresh
inns ip link add eth0 type veth peer name eth0-peer
inns ip link add cni0 type bridge
inns ip link add veth-web type veth peer name web-peer
inns ip link set veth-web master cni0
inns ip addr add 10.0.0.10/24 dev eth0
inns ip addr add 10.244.1.1/24 dev cni0
for d in eth0 eth0-peer cni0 veth-web web-peer; do inns ip link set "$d" up; done
inns ip route add default via 10.0.0.1
inns ip route add 10.244.2.0/24 via 10.0.0.11
inns ip route add 10.244.3.0/24 via 10.0.0.12
inns sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.route_localnet=1
"$svcpath" rules --cluster "$src/examples/clusters/nodes.yaml" --cluster "$src/examples/clusters/basic.yaml" --node node-a \
  | inns iptables-nft-restore
# A pod talking to kube-dns (172.30.0.10), already DNATed to the backend on node-b by kube-proxy's rules.
inns conntrack -I -p udp -s 10.244.1.5 -d 172.30.0.10 --sport 40000 --dport 53 --timeout 120 \
  --dst-nat 10.244.2.4:53 >/dev/null 2>&1
inns sh "$src/scripts/svcpath-snapshot" -o "$out" -n kube-node-a -d 20261206T000000Z -D >/dev/null

# --- nat-gateway
fresh
inns ip link add wan0 type veth peer name wan0-peer
inns ip link add lan0 type veth peer name lan0-peer
inns ip link add guest0 type veth peer name guest0-peer
inns ip addr add 203.0.113.7/24 dev wan0
inns ip addr add 192.168.1.1/24 dev lan0
inns ip addr add 192.168.50.1/24 dev guest0
for d in wan0 wan0-peer lan0 lan0-peer guest0 guest0-peer; do inns ip link set "$d" up; done
inns ip route add default via 203.0.113.1
inns ip route add default via 203.0.113.254 dev wan0 table 100
inns ip rule add fwmark 0x50/0xff table 100 pref 1000
inns sysctl -qw net.ipv4.ip_forward=1
inns nft -f "$src/examples/rulesets/nat-gateway.nft"
inns sh "$src/scripts/svcpath-snapshot" -o "$out" -n nat-gateway -d 20261206T000000Z -D >/dev/null
ls -l "$out"/*.tar.gz
