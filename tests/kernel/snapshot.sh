#!/usr/bin/env bash
# A node snapshot end to end: a namespace set up as a small node (veth and bridge, policy routing,
# forwarding, iptables-nft rules, one established conntrack entry with its SNAT binding) is
# snapshotted by scripts/svcpath-snapshot; svcpath must trace its packets as that node routes them,
# keep the established flow's NAT, and `svcpath verify --snapshot` must agree with the kernel.
# Exit 77 = skipped.
set -u
svcpath=$1
src=$(cd "$(dirname "$0")/../.." && pwd)
skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "not root: network namespaces need root"
for t in ip iptables-nft conntrack sysctl; do command -v $t >/dev/null || skip "$t is not installed"; done
ns="svcpath-snap-$$"
ip netns add "$ns" 2>/dev/null || skip "cannot create a network namespace"
tmp=$(mktemp -d)
trap 'ip netns del "$ns" 2>/dev/null; rm -rf "$tmp"' EXIT
inns() { ip netns exec "$ns" "$@"; }
set -e
inns ip link add veth0 type veth peer name veth1
inns ip link add br0 type bridge
inns ip link set veth1 master br0
inns ip addr add 10.1.0.1/24 dev veth0
inns ip addr add 10.2.0.1/16 dev br0
for d in lo veth0 veth1 br0; do inns ip link set "$d" up; done
inns ip route add default via 10.1.0.254
inns ip route add 192.168.5.0/24 dev br0 table 100
inns ip rule add from 10.2.0.0/16 table 100 pref 1000
inns sysctl -qw net.ipv4.ip_forward=1
inns iptables-nft -t nat -A POSTROUTING -s 10.2.0.0/16 -o veth0 -j MASQUERADE
inns iptables-nft -A FORWARD -i br0 -p tcp --dport 22 -j DROP
inns conntrack -I -p tcp -s 10.2.0.5 -d 1.1.1.1 --sport 4000 --dport 443 --state ESTABLISHED --timeout 300 -u ASSURED \
  --src-nat 10.1.0.99 >/dev/null 2>&1
inns sh "$src/scripts/svcpath-snapshot" -o "$tmp" -n t -d 20260101T000000Z -D
set +e
snap="$tmp/node-t-20260101T000000Z.tar.gz"
fail=0
expect() {  # expect PACKET TEXT: the trace's last line (the outcome) contains TEXT
  local got
  got=$("$svcpath" trace --snapshot "$snap" --packet "$1" 2>"$tmp/err" | tail -1)
  case $got in
    *"$2"*) echo "ok: $1 => $2" ;;
    *) echo "FAIL: $1: expected '$2', got '$got' $(cat "$tmp/err")"; fail=$((fail + 1)) ;;
  esac
}
expect "tcp 10.2.0.5:1234 -> 8.8.8.8:22 in=br0" "dropped"
expect "tcp 10.2.0.5:1234 -> 8.8.8.8:80 in=br0" "forwarded out veth0: tcp 10.1.0.1:1234 -> 8.8.8.8:80 snat"
# ip rule: from the bridge's subnet, table 100 sends 192.168.5.0/24 to br0; others take the default.
expect "tcp 10.2.0.5:1234 -> 192.168.5.9:80 in=veth0" "forwarded out br0"
expect "tcp 10.1.0.7:1234 -> 192.168.5.9:80 in=veth0" "forwarded out veth0"
# conntrack -L: the established flow keeps its SNAT to 10.1.0.99, not the MASQUERADE address.
expect "tcp/A 10.2.0.5:4000 -> 1.1.1.1:443 in=br0" "forwarded out veth0: tcp 10.1.0.99:4000 -> 1.1.1.1:443"
# The same node through the kernel.
if out=$("$svcpath" verify --snapshot "$snap" --packets 40 --seed 3 2>"$tmp/err"); then
  echo "ok: verify --snapshot: $(echo "$out" | tail -1)"
else
  echo "FAIL: verify --snapshot (exit $?):"; echo "$out" | tail -20; cat "$tmp/err"; fail=$((fail + 1))
fi
# A file that is not a snapshot is named in one line.
echo "not an archive" > "$tmp/bogus.tar.gz"
if "$svcpath" trace --snapshot "$tmp/bogus.tar.gz" --packet "tcp 1.1.1.1:1 -> 2.2.2.2:2" >/dev/null 2>"$tmp/err"; then
  echo "FAIL: a bogus snapshot was accepted"; fail=$((fail + 1))
elif grep -q "bogus.tar.gz" "$tmp/err"; then
  echo "ok: bogus snapshot refused: $(head -1 "$tmp/err")"
else
  echo "FAIL: the error does not name the file: $(cat "$tmp/err")"; fail=$((fail + 1))
fi
echo "snapshot: $fail failed"
[ $fail -eq 0 ]
