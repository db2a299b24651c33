#!/usr/bin/env python3
"""Differential test: the same ruleset, node and packets in the real kernel and in svcpath.

    tests/kernel/differential.py BUILD/svcpath [--long] [--seed N] [--keep DIR]

For each scenario it builds two network namespaces -- the node (its interfaces, addresses, routes,
ip_forward on, rp_filter off, the ruleset loaded with iptables-legacy-restore or
iptables-nft-restore and ipset restore) and a peer namespace holding the other end of every node
interface -- then sends each test packet (a hand-built frame into the node interface it arrives
on, or a raw IP packet from inside the node for host-originated traffic) and records what the
kernel did: the frame that left and through which interface (post-NAT addresses as captured), an
ICMP error or TCP reset sent back (rejected), or nothing (dropped, or delivered locally). With
iptables-nft, `xtables-monitor --trace` gives the kernel's own rule-by-rule path.

svcpath runs the same ruleset with `trace --enumerate --format json`. The kernel's outcome must be
one of svcpath's outcomes (verdict, interface, addresses; the source port only when no SNAT chose
it), and the kernel's TRACE path must equal that outcome's (table, chain, rule text) sequence. A
statistical check sends 600 connections to a 3-endpoint Service and requires the kernel's backend
counts to fit svcpath's probabilities (chi-square, p > 0.001).

Disagreements print the ruleset, the packet, both outcomes and both traces, and are saved under
build/kernel-diff/ as regression cases; `--case FILE` runs one again (copy it to tests/data/kernel-diff/
to keep it: every file there is re-run by the normal suite). Exit 77 with a reason when namespaces or tools are missing.
"""
import argparse
import atexit
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
# The kernel side (namespaces, packets, capture, TRACE reading, the comparison) ships with svcpath
# for `svcpath verify`; the scenarios below use it by the same names as before.
sys.path.insert(0, os.path.join(SRC, "scripts"))
import svcpath_kernel.harness as H  # noqa: E402
from svcpath_kernel.harness import *  # noqa: E402,F401,F403


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(77)


def kube_node():
    return {"interfaces": [{"name": "eth0", "addresses": ["10.0.0.10/24"]},
                           {"name": "cni0", "addresses": ["10.244.1.1/24"]}],
            "routes": [{"dst": "10.244.2.0/24", "dev": "eth0", "via": "10.0.0.11"},
                       {"dst": "10.244.3.0/24", "dev": "eth0", "via": "10.0.0.12"},
                       {"dst": "default", "dev": "eth0", "via": "10.0.0.1"}],
            "sysctls": {"net.ipv4.ip_forward": 1, "net.ipv4.conf.all.route_localnet": 1}}


def kube_node6():
    n = kube_node()
    n["interfaces"][0]["addresses"].append("fd00::10/64")
    n["interfaces"][1]["addresses"].append("fd00:244:0:1::1/64")
    n["routes"] += [{"dst": "fd00:244:0:2::/64", "dev": "eth0", "via": "fd00::11"},
                    {"dst": "fd00:244:0:3::/64", "dev": "eth0", "via": "fd00::12"},
                    {"dst": "::/0", "dev": "eth0", "via": "fd00::1"}]
    n["sysctls"]["net.ipv6.conf.all.forwarding"] = 1
    return n


def kube_packets(rules, sets, rng, count, pods=("10.244.1.5",), v6=False):
    """Packets to what the dump serves: ClusterIPs from pods and from the host, NodePorts from
    outside (iptables mode: KUBE-SERVICES / KUBE-NODEPORTS rules; IPVS mode: kube-proxy's ipsets)."""
    comment = r'(?:-m comment --comment (?:"[^"]*"|\S+) )?'
    addr, full, six = (r"([0-9a-f:]+)", "128", "6-") if v6 else (r"(\d+\.\d+\.\d+\.\d+)", "32", "")
    targets, nodeports = set(), set()
    for m in re.finditer(r"-A KUBE-SERVICES -d " + addr + "/" + full + r" -p (tcp|udp) " + comment + r"-m \2 --dport (\d+)", rules):
        targets.add((m.group(2), m.group(1), int(m.group(3))))
    for m in re.finditer(r"-A KUBE-NODEPORTS -p (tcp|udp) " + comment + r"-m \1 --dport (\d+)", rules):
        nodeports.add((m.group(1), int(m.group(2))))
    for m in re.finditer(r"^add KUBE-" + six + "CLUSTER-IP " + addr + r",(tcp|udp):(\d+)", sets, re.M):
        targets.add((m.group(2), m.group(1), int(m.group(3))))
    for m in re.finditer(r"^add KUBE-" + six + r"NODE-PORT-(TCP|UDP) (\d+)", sets, re.M):
        nodeports.add((m.group(1).lower(), int(m.group(2))))
    targets, nodeports = sorted(targets), sorted(nodeports)
    node_ip, outside, remote_pod = ("fd00::10", "2001:db8::9", "fd00:244:0:2::7") if v6 else ("10.0.0.10", "203.0.113.9", "10.244.2.7")
    pkts = []
    for proto, ip, port in targets:
        for pod in pods:
            pkts.append({"proto": proto, "src": pod, "dst": ip, "dport": port, "in": "cni0"})
        pkts.append({"proto": proto, "src": node_ip, "dst": ip, "dport": port, "in": None})
    for proto, port in nodeports:
        pkts.append({"proto": proto, "src": outside, "dst": node_ip, "dport": port, "in": "eth0"})
    pkts.append({"proto": "icmp" if v6 else "tcp", "src": outside, "dst": remote_pod, "dport": 8080, "in": "eth0"})
    rng.shuffle(pkts)
    return pkts[:count]


def nft_packets(text, rng, count, pods=("10.244.1.5",), v6=False):
    """Packets to the Services of a kube-proxy nftables transaction: its service-ips and
    no-endpoint-services keys from pods and the host, its NodePorts from outside."""
    addr = r"([0-9a-f:]+)" if v6 else r"(\d+\.\d+\.\d+\.\d+)"
    targets = sorted({(m.group(2), m.group(1), int(m.group(3))) for m in re.finditer(
        r"^add element ip6? kube-proxy (?:service-ips|no-endpoint-services) \{ " + addr + r" \. (tcp|udp) \. (\d+)", text, re.M)})
    nodeports = sorted({(m.group(1), int(m.group(2))) for m in re.finditer(
        r"^add element ip6? kube-proxy (?:service-nodeports|no-endpoint-nodeports) \{ (tcp|udp) \. (\d+)", text, re.M)})
    node_ip, outside, remote_pod = ("fd00::10", "2001:db8::9", "fd00:244:0:2::7") if v6 else ("10.0.0.10", "203.0.113.9", "10.244.2.7")
    pkts = []
    for proto, ip, port in targets:
        for pod in pods:
            pkts.append({"proto": proto, "src": pod, "dst": ip, "dport": port, "in": "cni0"})
        pkts.append({"proto": proto, "src": node_ip, "dst": ip, "dport": port, "in": None})
        # a port the Service does not have: cluster-ips-check rejects it
        pkts.append({"proto": proto, "src": pods[0], "dst": ip, "dport": port + 1, "in": "cni0"})
    for proto, port in nodeports:
        pkts.append({"proto": proto, "src": outside, "dst": node_ip, "dport": port, "in": "eth0"})
    pkts.append({"proto": "icmp" if v6 else "tcp", "src": outside, "dst": remote_pod, "dport": 8080, "in": "eth0"})
    rng.shuffle(pkts)
    return pkts[:count]


def node_dump(args):
    """(iptables-save text, ipset save text) of `svcpath rules ...`: one dump, or the "# ipset save" and
    "# iptables-save" sections it prints when the node has sets (IPVS mode, NetworkPolicies)."""
    text = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    if not text.startswith("# "):
        return text, ""
    sect, cur = {}, None
    for line in text.splitlines(keepends=True):
        if line.startswith("# "):
            cur = line.strip()
            sect[cur] = ""
        elif cur:
            sect[cur] += line
    return sect.get("# iptables-save", ""), sect.get("# ipset save", "")


def cluster_scenarios(binary, rng):
    out = []
    clusters = os.path.join(SRC, "examples/clusters")
    inputs = {c: ["--cluster", f"{clusters}/nodes.yaml", "--cluster", f"{clusters}/{c}.yaml",
                  "--proxy-config", f"{clusters}/proxy-config.yaml"] for c in ("basic", "traffic-policy", "dual-stack")}
    # With NetworkPolicies: kube-proxy's rules plus the policy engine's chains and sets.
    inputs["networkpolicy"] = ["--cluster", os.path.join(SRC, "examples/networkpolicy/cluster.yaml")]
    for c, given in inputs.items():
        for mode in ("iptables", "ipvs"):
            args = [binary, "rules"] + given + ["--node", "node-a", "--mode", mode]
            text, sets = node_dump(args)
            node = kube_node()
            if mode == "ipvs":
                # IPVS's virtual addresses sit on kube-ipvs0; this kernel has no IPVS, so packets to
                # them are delivered locally here and in svcpath (traced without --ipvs).
                vips = sorted(set(re.findall(r"^add KUBE-CLUSTER-IP (\d+\.\d+\.\d+\.\d+),", sets, re.M)))
                node["interfaces"].append({"name": "kube-ipvs0", "addresses": [v + "/32" for v in vips]})
            sc = {"name": f"cluster {c} ({mode} mode)", "rules": text, "ipsets": sets, "node": node}
            pods = ("10.244.1.5", "10.244.1.10", "10.244.1.30") if c == "networkpolicy" else ("10.244.1.5",)
            sc["packets"] = kube_packets(text, sets, rng, 40, pods)
            out.append(sc)
        # nftables mode: kube-proxy's transaction through nft -f (and the policy engine's iptables rules).
        tx = subprocess.run([binary, "rules"] + given + ["--node", "node-a", "--mode", "nftables", "--restore-input"],
                            capture_output=True, text=True, check=True).stdout
        text, sets = node_dump([binary, "rules"] + given + ["--node", "node-a", "--mode", "nftables"])
        if not sets and not text.startswith("*"):
            text = ""
        pods = ("10.244.1.5", "10.244.1.10", "10.244.1.30") if c == "networkpolicy" else ("10.244.1.5",)
        out.append({"name": f"cluster {c} (nftables mode)", "rules": text, "ipsets": sets, "nft": tx, "node": kube_node(),
                    "backends": ["nftables"], "packets": nft_packets(tx, rng, 40, pods)})
    # IPv6: the dual-stack example's ip6tables side (and IPVS mode's KUBE-6- sets), through
    # ip6tables-restore.
    for mode in ("iptables", "ipvs"):
        text, sets = node_dump([binary, "rules"] + inputs["dual-stack"] + ["--node", "node-a", "--mode", mode, "--family", "6"])
        node = kube_node6()
        if mode == "ipvs":
            vips = sorted(set(re.findall(r"^add KUBE-6-CLUSTER-IP ([0-9a-f:]+),", sets, re.M)))
            node["interfaces"].append({"name": "kube-ipvs0", "addresses": [v + "/128" for v in vips]})
        out.append({"name": f"cluster dual-stack IPv6 ({mode} mode)", "rules": "", "rules6": text, "ipsets": sets,
                    "node": node, "packets": kube_packets(text, sets, rng, 40, ("fd00:244:0:1::5",), v6=True)})
    tx = subprocess.run([binary, "rules"] + inputs["dual-stack"] + ["--node", "node-a", "--mode", "nftables", "--family", "6",
                                                                   "--restore-input"], capture_output=True, text=True, check=True).stdout
    out.append({"name": "cluster dual-stack IPv6 (nftables mode)", "rules": "", "ipsets": "", "nft": tx, "v6": True,
                "node": kube_node6(), "backends": ["nftables"],
                "packets": nft_packets(tx, rng, 40, ("fd00:244:0:1::5",), v6=True)})
    return out


def diff_scenarios(binary):
    """svcpath diff on two dumps of one node (a Service's port edited, another's REJECT rule gone):
    the flows it says change run through the kernel with each dump, so both sides' outcomes of
    every changed flow are the kernel's."""
    before = open(os.path.join(SRC, "examples/rulesets/kube-clusterip.rules")).read()
    after = before.replace("--dport 80 -j KUBE-SVC-XRY76EGRC3BSCIIJ", "--dport 81 -j KUBE-SVC-XRY76EGRC3BSCIIJ")
    after = "\n".join(l for l in after.splitlines() if "demo/empty:http has no endpoints" not in l) + "\n"
    work = tempfile.mkdtemp(prefix="svpdiff-")
    try:
        for name, text in (("before.rules", before), ("after.rules", after)):
            open(os.path.join(work, name), "w").write(text)
        json.dump(kube_node(), open(os.path.join(work, "node.yaml"), "w"))
        p = subprocess.run([binary, "diff", "--rules", os.path.join(work, "before.rules"), "--to-rules",
                            os.path.join(work, "after.rules"), "--node-config", os.path.join(work, "node.yaml"),
                            "--format", "json"], capture_output=True, text=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if p.returncode != 1:
        raise RuntimeError(f"svcpath diff found no change between the dumps (exit {p.returncode}): {p.stderr}")
    pkts = []
    for c in json.loads(p.stdout)["classes"]:
        for f in c["flows"]:
            sp = f["spec"]
            pk = {"proto": sp["proto"], "src": sp["src"], "dst": sp["dst"], "sport": sp["sport"], "dport": sp["dport"],
                  "in": sp["in"]}
            if sp["flags"]:
                pk["flags"] = sp["flags"]
            pkts.append(pk)
    return [{"name": f"svcpath diff's changed flows, {side} dump", "rules": text, "ipsets": "", "node": kube_node(),
             "packets": [dict(x) for x in pkts]} for side, text in (("before", before), ("after", after))]


def conntrack_scenario():
    """Deterministic NAT, so the kernel and svcpath pick the same binding: the second packet and the
    reply must follow the conntrack entry (no nat table) in both."""
    rules = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:SVC - [0:0]
-A PREROUTING -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j SVC
-A SVC -p tcp -j DNAT --to-destination 10.244.2.7:8080
-A POSTROUTING -d 10.244.2.0/24 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -m conntrack --ctstate NEW -d 10.244.2.7/32 -j ACCEPT
COMMIT
"""
    node = {"interfaces": [{"name": "eth0", "addresses": ["10.0.0.10/24"]}, {"name": "eth1", "addresses": ["10.0.1.10/24"]}],
            "routes": [{"dst": "10.244.2.0/24", "dev": "eth1", "via": "10.0.1.11"},
                       {"dst": "default", "dev": "eth0", "via": "10.0.0.1"}],
            "sysctls": {"net.ipv4.ip_forward": 1}}
    syn = {"proto": "tcp", "src": "198.51.100.7", "sport": 40000, "dst": "10.96.0.10", "dport": 80, "in": "eth0", "flags": "S"}
    ack = dict(syn, flags="A")
    # The reply comes from the backend to the masquerade address and port the SYN got; the harness
    # fills those in from what the kernel captured.
    reply = {"proto": "tcp", "src": "10.244.2.7", "sport": 8080, "dst": "10.0.1.10", "dport": None, "in": "eth1",
             "flags": "SA", "reply_to": 0}
    return {"name": "conntrack: second packet and reply", "rules": rules, "ipsets": "", "node": node,
            "packets": [syn, reply, ack, dict(ack, flags="PA")], "sequential": True}


def edges_scenario():
    """The input route's edges (kernel 6.18, by experiment): martian sources and destinations dropped
    after mangle PREROUTING, joined and unjoined multicast groups, limited and subnet broadcasts
    delivered, host-originated packets to 0.0.0.0 (through lo). The mangle and filter rules make
    every hook visible in the TRACE path, which is what tells dropped from delivered here."""
    rules = """*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -j MARK --set-xmark 0x1/0x1
-A INPUT -j MARK --set-xmark 0x2/0x2
-A FORWARD -j MARK --set-xmark 0x2/0x2
-A POSTROUTING -j MARK --set-xmark 0x4/0x4
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp -j ACCEPT
-A FORWARD -p udp -j ACCEPT
COMMIT
"""
    node = {"interfaces": [{"name": "eth0", "addresses": ["10.0.0.10/24"], "multicast_groups": ["239.1.1.1"]},
                           {"name": "eth1", "addresses": ["10.0.1.10/24"]}],
            "routes": [{"dst": "default", "dev": "eth0", "via": "10.0.0.1"}], "sysctls": {"net.ipv4.ip_forward": 1}}
    pairs = [("0.0.0.1", "10.0.1.5"), ("224.0.0.5", "10.0.1.5"), ("255.255.255.255", "10.0.1.5"), ("127.0.0.1", "10.0.1.5"),
             ("0.0.0.0", "10.0.0.10"), ("10.0.1.10", "10.0.0.10"), ("0.1.2.3", "10.0.0.10"), ("10.0.0.5", "0.0.0.0"),
             ("10.0.0.5", "127.0.0.1"), ("10.0.0.5", "224.0.0.1"), ("10.0.0.5", "224.0.0.251"), ("10.0.0.5", "239.1.1.1"),
             ("10.0.0.5", "239.2.2.2"), ("10.0.0.5", "255.255.255.255"), ("10.0.0.5", "10.0.0.255"),
             ("10.0.0.5", "10.0.1.255"), ("0.0.0.0", "255.255.255.255"), ("0.0.0.0", "224.0.0.1")]
    pkts = [{"proto": "udp", "src": s, "dst": d, "dport": 53, "in": "eth0"} for s, d in pairs]
    pkts.append({"proto": "udp", "src": "10.0.1.5", "dst": "239.1.1.1", "dport": 53, "in": "eth1"})  # joined on eth0 only
    # Host-originated to 0.0.0.0: the output route sends it to the host itself through lo.
    pkts.append({"proto": "udp", "src": "10.0.0.10", "dst": "0.0.0.0", "dport": 53, "in": None})
    # Host-originated broadcasts and multicast: out of the source's device, and for broadcasts and
    # joined groups a copy looped back through POSTROUTING, PREROUTING and INPUT (ip_mc_output).
    for s, d in [("10.0.1.10", "255.255.255.255"), ("10.0.0.10", "10.0.0.255"), ("10.0.0.10", "239.1.1.1"),
                 ("10.0.0.10", "239.2.2.2")]:
        pkts.append({"proto": "udp", "src": s, "dst": d, "dport": 53, "in": None})
    return {"name": "edges: martians, multicast, broadcast", "rules": rules, "ipsets": "", "node": node, "packets": pkts}


def set_target_scenario():
    """-j SET at run time: packets add and delete elements that later packets' -m set sees. The
    hash:net addition takes the most specific prefix in use (kadt), so 10.0.1.77 adds 10.0.0.0/16."""
    rules = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp -m udp --dport 8 -j SET --del-set banned src
-A INPUT -m set --match-set banned src -j DROP
-A INPUT -p udp -m udp --dport 7 -j SET --add-set banned src
-A INPUT -p udp -j ACCEPT
-A FORWARD -m set --match-set seen src,src -j DROP
-A FORWARD -m set --match-set nets dst -j DROP
-A FORWARD -p udp -m udp --dport 9 -j SET --add-set nets dst
-A FORWARD -p udp -m udp --dport 10 -j SET --add-set seen dst,dst --exist
COMMIT
"""
    ipsets = ("create banned hash:ip family inet hashsize 1024 maxelem 65536\n"
              "create nets hash:net family inet hashsize 1024 maxelem 65536\nadd nets 192.168.0.0/16\n"
              "create seen hash:ip,port family inet hashsize 1024 maxelem 65536 timeout 600\n")
    node = {"interfaces": [{"name": "eth0", "addresses": ["10.0.0.10/24"]}, {"name": "eth1", "addresses": ["10.0.1.10/24"]}],
            "routes": [{"dst": "10.0.0.0/16", "dev": "eth1", "via": "10.0.1.1"},
                       {"dst": "172.16.0.0/16", "dev": "eth1", "via": "10.0.1.1"},
                       {"dst": "default", "dev": "eth0", "via": "10.0.0.1"}], "sysctls": {"net.ipv4.ip_forward": 1}}
    u = lambda src, dst, dport, iface="eth0": {"proto": "udp", "src": src, "dst": dst, "dport": dport, "in": iface}
    pkts = [u("10.0.0.5", "10.0.0.10", 53), u("10.0.0.5", "10.0.0.10", 7), u("10.0.0.5", "10.0.0.10", 53),
            u("10.0.0.6", "10.0.0.10", 53), u("10.0.0.5", "10.0.0.10", 8), u("10.0.0.5", "10.0.0.10", 53),
            u("10.0.0.5", "10.0.1.77", 9), u("10.0.0.5", "10.0.2.99", 53), u("10.0.0.5", "10.1.0.1", 53),
            u("10.0.0.5", "172.16.3.3", 10), dict(u("172.16.3.3", "203.0.113.5", 53, "eth1"), sport=10),
            dict(u("172.16.3.3", "203.0.113.5", 53, "eth1"), sport=11)]
    return {"name": "SET target: run-time additions and deletions", "rules": rules, "ipsets": ipsets, "node": node,
            "packets": pkts, "sequential": True}


def engagement_node(v6=False):
    n = {"interfaces": [{"name": "eth0", "addresses": ["10.0.0.10/24"]}, {"name": "eth1", "addresses": ["10.0.1.10/24"]}],
         "routes": [{"dst": "192.0.2.0/24", "dev": "eth1", "via": "10.0.1.11"},
                    {"dst": "default", "dev": "eth0", "via": "10.0.0.1"}],
         "sysctls": {"net.ipv4.ip_forward": 1}}
    if v6:
        n["interfaces"][0]["addresses"].append("fd00::10/64")
        n["interfaces"][1]["addresses"].append("fd00:1::10/64")
        n["routes"] += [{"dst": "2001:db8:2::/64", "dev": "eth1", "via": "fd00:1::11"},
                        {"dst": "::/0", "dev": "eth0", "via": "fd00::1"}]
        n["sysctls"]["net.ipv6.conf.all.forwarding"] = 1
    return n


# A nat table whose rules only log, accept and mark: registering it attaches no conntrack, so
# without another conntrack user the kernel never walks it (the mark it would set stays unset, and
# the filter rule below tells the two apart in the outcome as well as in the TRACE path).
ENGAGE_NAT = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p udp -j LOG --log-prefix "nat-pre "
-A PREROUTING -p tcp -j MARK --set-xmark 0x1/0x1
-A PREROUTING -j ACCEPT
-A OUTPUT -p tcp -j MARK --set-xmark 0x1/0x1
-A POSTROUTING -j ACCEPT
COMMIT
"""


def engagement_packets(v4=True, v6=False):
    pkts = []
    if v4:
        pkts += [{"proto": "tcp", "src": "198.51.100.7", "dst": "192.0.2.5", "dport": 80, "in": "eth0"},
                 {"proto": "udp", "src": "198.51.100.7", "dst": "192.0.2.5", "dport": 53, "in": "eth0"},
                 {"proto": "tcp", "src": "198.51.100.7", "dst": "10.0.0.10", "dport": 22, "in": "eth0"},
                 {"proto": "tcp", "src": "10.0.1.10", "dst": "192.0.2.5", "dport": 443, "in": None}]
    if v6:
        pkts += [{"proto": "tcp", "src": "2001:db8::7", "dst": "2001:db8:2::5", "dport": 80, "in": "eth0"},
                 {"proto": "udp", "src": "2001:db8::7", "dst": "2001:db8:2::5", "dport": 53, "in": "eth0"},
                 {"proto": "tcp", "src": "2001:db8::7", "dst": "fd00::10", "dport": 22, "in": "eth0"}]
    return pkts


def engagement_scenarios():
    """Conntrack engagement (kernel 6.18, by experiment): a namespace gets conntrack's hooks per
    family only when a loaded rule asks for them (nf_ct_netns_get from the checkentry of conntrack,
    state, connmark, CONNMARK, CT without --notrack, the NAT targets; nft's ct expressions and nat
    statements; an inet table asks for both). Until then the nat chains are never walked."""
    filt = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m mark --mark 0x1/0x1 -j DROP
-A FORWARD -p udp -j ACCEPT
COMMIT
"""
    out = [{"name": "engagement: nat table with only LOG/ACCEPT/MARK, no conntrack user", "rules": ENGAGE_NAT + filt,
            "ipsets": "", "node": engagement_node(), "packets": engagement_packets()},
           {"name": "engagement: the same nat table with a -m conntrack rule in a chain nothing jumps to",
            "rules": ENGAGE_NAT + filt.replace(":OUTPUT ACCEPT [0:0]\n", ":OUTPUT ACCEPT [0:0]\n:UNUSED - [0:0]\n"
                                               "-A UNUSED -m conntrack --ctstate INVALID -j DROP\n"),
            "ipsets": "", "node": engagement_node(), "packets": engagement_packets()},
           {"name": "engagement: CT --notrack in raw does not attach conntrack",
            "rules": "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -p udp -j CT --notrack\nCOMMIT\n"
            + ENGAGE_NAT + filt, "ipsets": "", "node": engagement_node(), "packets": engagement_packets()}]
    # Only ip6tables has a conntrack user: IPv6 packets walk the nat table, IPv4 ones do not.
    filt6 = filt.replace("-A FORWARD -p udp -j ACCEPT", "-A FORWARD -m conntrack --ctstate NEW -p udp -j ACCEPT")
    out.append({"name": "engagement: only ip6tables uses conntrack", "rules": ENGAGE_NAT + filt, "rules6": ENGAGE_NAT + filt6,
                "ipsets": "", "node": engagement_node(v6=True), "packets": engagement_packets(v4=True, v6=True)})
    # nftables: a nat chain alone attaches nothing; a ct expression anywhere in the table (even in a
    # chain nothing jumps to) attaches the table's family, both for inet.
    for fam, v4, v6 in (("ip", True, False), ("inet", True, True)):
        for with_ct in (False, True):
            extra = "\tchain unused {\n\t\tct state invalid drop\n\t}\n" if with_ct else ""
            nft = (f"table {fam} t {{\n"
                   "\tchain pre {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n"
                   "\t\tmeta l4proto tcp meta mark set 0x00000001\n\t}\n"
                   "\tchain filt {\n\t\ttype filter hook forward priority filter; policy accept;\n"
                   "\t\tmeta mark 0x00000001 drop\n\t}\n" + extra + "}\n")
            out.append({"name": f"engagement: nftables {fam} table {'with' if with_ct else 'without'} a ct expression",
                        "rules": "", "ipsets": "", "nft": nft, "v6": v6, "node": engagement_node(v6=v6), "backends": ["nftables"],
                        "packets": engagement_packets(v4=v4, v6=v6)})
    return out


def self_tuple_scenario():
    """A packet whose tuple is its own reply (same address and port at both ends): the first is NEW;
    conntrack hashes the entry's reply node last, at the head of the same chain, so every later one
    is found as the reply: ESTABLISHED (and a SYN after that is INVALID for TCP)."""
    rules = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -m conntrack --ctstate ESTABLISHED --ctdir REPLY -j ACCEPT
-A FORWARD -m conntrack --ctstate ESTABLISHED --ctdir ORIGINAL -j ACCEPT
-A FORWARD -m conntrack --ctstate INVALID -j ACCEPT
COMMIT
"""
    same = lambda proto, a, flags=None, i="eth0": dict({"proto": proto, "src": a, "dst": a, "sport": 80, "dport": 80, "in": i},
                                                        **({"flags": flags} if flags else {}))
    pkts = [same("udp", "192.0.2.2"), same("udp", "192.0.2.2"), same("udp", "192.0.2.2", i="eth1"),
            same("tcp", "192.0.2.2"), same("tcp", "192.0.2.2"), same("tcp", "192.0.2.2", "A", "eth1"),
            same("tcp", "192.0.2.3", "A"), same("tcp", "192.0.2.3", "A"), same("tcp", "192.0.2.3")]
    return {"name": "conntrack: a tuple that is its own reply", "rules": rules, "ipsets": "", "node": engagement_node(),
            "packets": pkts, "sequential": True}


def reject_node(v6=True):
    six = (["fd00::10/64"], ["fd00:1::10/64"]) if v6 else ([], [])
    return {"interfaces": [{"name": "eth0", "addresses": ["10.0.0.10/24"] + six[0]},
                           {"name": "eth1", "addresses": ["10.0.1.10/24"] + six[1]}],
            "routes": [{"dst": "10.244.2.0/24", "dev": "eth1", "via": "10.0.1.11"},
                       {"dst": "10.244.3.0/24", "dev": "eth1", "via": "10.0.1.11"},
                       {"dst": "default", "dev": "eth0", "via": "10.0.0.1"},
                       {"dst": "fd00:244:2::/64", "dev": "eth1", "via": "fd00:1::11"},
                       {"dst": "::/0", "dev": "eth0", "via": "fd00::1"}],
            "sysctls": {"net.ipv4.ip_forward": 1, "net.ipv6.conf.all.forwarding": 1}}


def reject_node4():
    n = reject_node(v6=False)
    n["routes"] = [r for r in n["routes"] if ":" not in r["dst"]]
    del n["sysctls"]["net.ipv6.conf.all.forwarding"]
    return n


def reject_packets(v6=False):
    """To every REJECT of the answer scenarios, from a client whose ICMP answers OUTPUT lets out
    and from one whose it drops: resets and ICMP errors leave or die on their own path."""
    if v6:
        clients, node_ip, vip, fwd = ("2001:db8:1::9", "2001:db8:bad::7"), "fd00::10", None, "fd00:244:2::7"
    else:
        clients, node_ip, vip, fwd = ("203.0.113.9", "198.51.100.7"), "10.0.0.10", "10.96.0.10", "10.244.3.5"
    pkts = []
    for c in clients:
        for proto, port in (("tcp", 81), ("udp", 81), ("tcp", 82), ("udp", 83)):
            pkts.append({"proto": proto, "src": c, "dst": node_ip, "dport": port, "in": "eth0"})
        if vip:  # DNAT, then REJECT in FORWARD: the answer leaves de-NATed (its source the Service's)
            pkts += [{"proto": pr, "src": c, "dst": vip, "dport": 80, "in": "eth0"} for pr in ("tcp", "udp")]
        pkts += [{"proto": pr, "src": c, "dst": fwd, "dport": 9, "in": "eth0"} for pr in ("tcp", "udp")]
    # A reset gets no reset; an ACK gets a bare RST; a locally sent packet's answer stays local.
    pkts.append({"proto": "tcp", "src": clients[0], "dst": node_ip, "dport": 81, "in": "eth0", "flags": "R"})
    pkts.append({"proto": "tcp", "src": clients[0], "dst": node_ip, "dport": 81, "in": "eth0", "flags": "A"})
    pkts.append({"proto": "udp", "src": node_ip, "dst": fwd, "dport": 9, "in": None})
    if not v6:
        # In on eth1, the route back out of eth0: the ICMP error's source is the route's (eth0's),
        # or eth1's with icmp_errors_use_inbound_ifaddr.
        pkts.append({"proto": "udp", "src": clients[0], "dst": fwd, "dport": 9, "in": "eth1"})
    if v6:
        # ip6_forward: a link-local source leaving its link is answered beyond scope (ICMPv6 1/2,
        # out of the arrival interface, from its link-local address); a link-local destination
        # goes back out where it came in (and meets FORWARD's REJECT there); :: is dropped.
        pkts += [{"proto": "icmp", "src": "fe80::5", "dst": "2001:db8:1::9", "in": "eth0"},
                 {"proto": "udp", "src": "fe80::5", "dst": "2001:db8:1::9", "dport": 9, "in": "eth1"},
                 {"proto": "icmp", "src": "fe80::5", "dst": "fe80::6", "in": "eth0"},
                 {"proto": "udp", "src": "fe80::5", "dst": "fe80::6", "dport": 9, "in": "eth1"},
                 {"proto": "icmp", "src": "::", "dst": "2001:db8:1::9", "in": "eth1"},
                 # in on eth1, the route back out of eth0: the ICMPv6 error's source is eth1's
                 # (icmp6_send picks it on the input interface), REJECTed in FORWARD
                 {"proto": "udp", "src": "2001:db8:1::9", "dst": fwd, "dport": 9, "in": "eth1"}]
    return pkts


def reject_scenarios():
    """REJECT's answers walk their own path (kernel 6.18, by experiment): the reset or ICMP error is
    RELATED to the rejected packet's connection in the reply direction, so OUTPUT and POSTROUTING
    see it (nat POSTROUTING too, for a reset whose connection has no source binding yet), NAT undoes
    the connection's DNAT on it, and an OUTPUT rule or policy can keep it from the client."""
    nat = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 10.96.0.10/32 -p tcp -j DNAT --to-destination 10.244.2.7:8080
-A PREROUTING -d 10.96.0.10/32 -p udp -j DNAT --to-destination 10.244.2.7:8080
-A POSTROUTING -p tcp -m tcp --tcp-flags RST RST -m conntrack --ctstate RELATED
COMMIT
"""
    filt = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT {policy} [0:0]
-A INPUT -p tcp -m tcp --dport 81 -j REJECT --reject-with tcp-reset
-A INPUT -p udp -m udp --dport 81 -j REJECT --reject-with {port}
-A INPUT -p tcp -m tcp --dport 82 -j REJECT --reject-with {host}
-A INPUT -p udp -m udp --dport 83 -j REJECT --reject-with {admin}
-A FORWARD -p tcp -j REJECT --reject-with tcp-reset
-A FORWARD -p udp -j REJECT --reject-with {net}
{output}COMMIT
"""
    v4 = dict(port="icmp-port-unreachable", host="icmp-host-prohibited", admin="icmp-admin-prohibited", net="icmp-net-unreachable")
    v6 = dict(port="icmp6-port-unreachable", host="icmp6-adm-prohibited", admin="icmp6-addr-unreachable", net="icmp6-no-route")
    only_icmp4 = "-A OUTPUT -d 198.51.100.0/24 -p icmp -j DROP\n"
    only_icmp6 = "-A OUTPUT -d 2001:db8:bad::/48 -p ipv6-icmp -j DROP\n"
    # A hardened OUTPUT: established traffic and resets only, so every ICMP answer dies there.
    hardened = "-A OUTPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT\n-A OUTPUT -p tcp -m tcp --tcp-flags RST RST -d 203.0.113.0/24 -j ACCEPT\n"
    hardened6 = "-A OUTPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT\n-A OUTPUT -p tcp -m tcp --tcp-flags RST RST -d 2001:db8:1::/48 -j ACCEPT\n"
    out = []
    for name, pol, o4, o6 in (("OUTPUT drops ICMP", "ACCEPT", only_icmp4, only_icmp6), ("-P OUTPUT DROP", "DROP", hardened, hardened6)):
        out.append({"name": f"reject answers: {name}", "rules": nat + filt.format(policy=pol, output=o4, **v4), "ipsets": "",
                    "node": reject_node4(), "packets": reject_packets()})
        out.append({"name": f"reject answers IPv6: {name}", "rules": "", "rules6": filt.format(policy=pol, output=o6, **v6),
                    "ipsets": "", "node": reject_node(), "packets": reject_packets(v6=True)})
    inbound = reject_node4()
    inbound["sysctls"]["net.ipv4.icmp_errors_use_inbound_ifaddr"] = 1
    out.append({"name": "reject answers: icmp_errors_use_inbound_ifaddr", "rules": nat + filt.format(policy="ACCEPT", output="", **v4),
                "ipsets": "", "node": inbound, "packets": reject_packets()})
    nft = """table inet filter {
	chain input {
		type filter hook input priority filter; policy accept;
		tcp dport 81 reject with tcp reset
		udp dport 81 reject
		tcp dport 82 reject with icmpx admin-prohibited
		udp dport 83 reject with icmpx host-unreachable
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		meta l4proto tcp reject with tcp reset
		ip daddr 10.244.2.7 reject with icmp host-prohibited
		ip6 daddr fd00:244:2::7 reject with icmpv6 admin-prohibited
		reject
	}
	chain output {
		type filter hook output priority filter; policy accept;
		ip daddr 198.51.100.0/24 meta l4proto icmp drop
		ip6 daddr 2001:db8:bad::/48 meta l4proto ipv6-icmp drop
	}
}
table ip nat {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr 10.96.0.10 tcp dport 80 dnat to 10.244.2.7:8080
		ip daddr 10.96.0.10 udp dport 80 dnat to 10.244.2.7:8080
	}
}
"""
    out.append({"name": "reject answers (nftables): OUTPUT drops ICMP", "rules": "", "ipsets": "", "nft": nft, "v6": True,
                "node": reject_node(), "backends": ["nftables"], "packets": reject_packets() + reject_packets(v6=True)})
    return out


def ext6_scenarios():
    """IPv6 extension headers (ip6tables' frag, ipv6header, hbh, dst, rt, ah and esp matches, and -p
    behind the headers) and lone fragments, delivered and forwarded. Every match rule has no target,
    so the TRACE path lists exactly the rules each packet met. The conntrack rule engages conntrack
    and with it defrag (nf_defrag_ipv6 at -400): a lone first or later fragment is held before raw,
    an atomic one loses its fragment header before raw sees it. IPv4 fragments likewise."""
    node = {"interfaces": [{"name": "eth0", "addresses": ["10.0.0.10/24", "fd00::10/64"]},
                           {"name": "eth1", "addresses": ["10.0.1.10/24", "fd00:1::10/64"]}],
            "routes": [{"dst": "default", "dev": "eth0", "via": "10.0.0.1"}, {"dst": "::/0", "dev": "eth0", "via": "fd00::1"}],
            "sysctls": {"net.ipv4.ip_forward": 1, "net.ipv6.conf.all.forwarding": 1}}
    rules6 = """*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -m frag
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:EXT - [0:0]
-A INPUT -m conntrack --ctstate INVALID -j DROP
-A INPUT -j EXT
-A FORWARD -j EXT
-A EXT -m frag
-A EXT -m frag --fragfirst
-A EXT -m frag --fragmore
-A EXT -m frag --fraglast --fragid 7
-A EXT -m ipv6header --header frag --soft
-A EXT -m ipv6header --header hop,dst,prot
-A EXT -m ipv6header ! --header route --soft
-A EXT -m ipv6header --header esp
-A EXT -m ipv6header --header ah,prot
-A EXT -m ipv6header --header none
-A EXT -m hbh
-A EXT -m hbh --hbh-len 8 --hbh-opts 5:2
-A EXT -m hbh --hbh-opts 1:4
-A EXT -m hbh ! --hbh-len 8
-A EXT -m dst --dst-len 16
-A EXT -m dst --dst-opts 30:4,1
-A EXT -m rt --rt-type 0
-A EXT -m rt --rt-type 2 --rt-segsleft 1
-A EXT -m rt --rt-type 0 --rt-segsleft 0 --rt-0-addrs fd00:1::7
-A EXT -m rt --rt-type 0 --rt-0-addrs fd00:1::7 --rt-0-not-strict
-A EXT -m rt --rt-len 40
-A EXT -m ah
-A EXT -m ah --ahspi 300 --ahlen 24
-A EXT -m ah ! --ahspi 300
-A EXT -m ah --ahres
-A EXT -p udp
-A EXT -p udp -m udp --dport 53
-A EXT -p tcp -m tcp --dport 80
-A EXT -p esp -m esp --espspi 7
-A EXT -p ah
-A EXT -p 59
COMMIT
"""
    # Each fragment its own id: the kernel's reassembly queues outlive a packet, svcpath's lone
    # fragments meet a fresh one. The UDP payload is 7 bytes, so a first fragment's length is not a
    # multiple of 8 (passed on as is) unless padded with len= (then held).
    exts = ["hbh/5:2", "hbh", "hbh/30:10", "dst/30:4", "hbh,dst/30:10", "rt", "rt/type=0/addr=fd00:1::7",
            "rt/type=0/addr=fd00::99+fd00:1::7", "rt/type=2/left=1/addr=fd00::9", "ah/spi=300", "ah/spi=5,dst",
            "frag/id={}", "frag/id={}/more", "hbh,frag/id={}/more", "frag/off=8/id={}", "frag/off=1480/id={}/more",
            "frag/off=16/id={}/more"]
    pkts = []
    for k, dst in enumerate(("fd00::10", "fd00:1::7")):
        base = {"proto": "udp", "src": "fd00::5", "dst": dst, "dport": 53, "in": "eth0"}
        pkts += [dict(base, ext=e.format(100 * k + i)) for i, e in enumerate(exts)]
        pkts.append(dict(base, ext=f"frag/id={100 * k + 50}/more", pad=1))  # 16 bytes of payload: held
        # A middle fragment of 19 bytes goes on as it is, and conntrack finds no header to track.
        pkts.append(dict(base, ext=f"frag/off=24/id={100 * k + 51}/more", pad=3))
        pkts.append(dict(base, proto="tcp", dport=80, ext="dst,ah/spi=300"))
        pkts.append({"proto": "esp", "src": "fd00::5", "dst": dst, "spi": 7, "in": "eth0"})
        pkts.append({"proto": "esp", "src": "fd00::5", "dst": dst, "spi": 8, "ext": "hbh", "in": "eth0"})
        pkts.append({"proto": "59", "src": "fd00::5", "dst": dst, "in": "eth0"})
    rules4 = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate INVALID -j DROP
-A INPUT -f
-A INPUT ! -f -p udp
-A FORWARD -f
COMMIT
"""
    pk4 = [{"proto": "udp", "src": "10.0.0.5", "dst": d, "dport": 53, "in": "eth0", **f}
           for d in ("10.0.0.10", "10.0.1.7") for f in ({}, {"mf": True}, {"frag": True}, {"frag": True, "mf": True})]
    node4 = {"interfaces": [{"name": "eth0", "addresses": ["10.0.0.10/24"]}, {"name": "eth1", "addresses": ["10.0.1.10/24"]}],
             "routes": [{"dst": "default", "dev": "eth0", "via": "10.0.0.1"}], "sysctls": {"net.ipv4.ip_forward": 1}}
    return [{"name": "ipv6 extension headers and fragments", "rules": "", "rules6": rules6, "ipsets": "", "node": node,
             "packets": pkts},
            {"name": "ipv4 fragments", "rules": rules4, "ipsets": "", "node": node4, "packets": pk4},
            # Without a conntrack user there is no nf_defrag: each fragment walks PREROUTING and
            # FORWARD as it is (-f matches a later one), and ip_local_deliver holds a local one
            # before INPUT.
            {"name": "ipv4 fragments without conntrack", "ipsets": "", "node": node4, "packets": pk4,
             "rules": "*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -f\n-A PREROUTING -p udp\nCOMMIT\n"
                      + rules4.replace("-A INPUT -m conntrack --ctstate INVALID -j DROP\n", "")}]


# ------------------------------------------------------------------------------ random rulesets

def random_scenario(rng, idx):
    """A random ruleset over the supported matches and targets, valid for the kernel, with packets."""
    addrs = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.3/32", "192.168.0.0/16", "198.51.100.0/24", "0.0.0.0/1"]
    sources = ["10.1.2.3", "10.1.9.9", "192.168.5.5", "198.51.100.7", "203.0.113.4"]
    dests = ["10.2.0.5", "10.3.0.9", "192.168.7.7", "10.0.0.10", "172.16.0.1"]

    def cond(proto):
        c = []
        if rng.random() < 0.4:
            c.append(f"{'! ' if rng.random() < 0.2 else ''}-s {rng.choice(addrs)}")
        if rng.random() < 0.4:
            c.append(f"{'! ' if rng.random() < 0.2 else ''}-d {rng.choice(addrs)}")
        if proto and rng.random() < 0.5:
            c.append(f"-p {proto} -m {proto} --dport {rng.choice([53, 80, 443, 8080, '1000:2000'])}")
        if rng.random() < 0.3:
            c.append(f"-m conntrack --ctstate {rng.choice(['NEW', 'ESTABLISHED', 'NEW,ESTABLISHED', 'INVALID'])}")
        if rng.random() < 0.25:
            c.append(f"-m mark --mark 0x{rng.choice([1, 2, 4])}/0x{rng.choice([1, 2, 7])}")
        if rng.random() < 0.25:
            c.append(f"-m addrtype --dst-type {rng.choice(['LOCAL', 'UNICAST', '! LOCAL'])}".replace("--dst-type ! ", "! --dst-type "))
        if rng.random() < 0.2:
            c.append(f"-m set --match-set {rng.choice(['S-NET', 'S-IPPORT'])} {rng.choice(['src', 'dst', 'dst,dst'])}")
        return " ".join(c)

    def proto_for_rule():
        return rng.choice(["tcp", "udp", None])

    tables = {}
    # mangle: marks only
    mangle = [f"-A PREROUTING {cond(proto_for_rule())} -j MARK --set-xmark 0x{rng.choice([1, 2, 4])}/0x{rng.choice([1, 7])}"
              for _ in range(rng.randint(0, 3))]
    tables["mangle"] = ([":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
                         ":POSTROUTING ACCEPT [0:0]"], mangle)
    # nat: user chains reached from PREROUTING/OUTPUT doing DNAT; POSTROUTING SNAT/MASQUERADE
    nat_rules, nat_chains = [], []
    for k in range(rng.randint(1, 3)):
        ch = f"DN{k}"
        nat_chains.append(f":{ch} - [0:0]")
        for _ in range(rng.randint(1, 3)):
            proto = rng.choice(["tcp", "udp"])
            kind = rng.random()
            if kind < 0.5:
                to = f"{rng.choice(['10.2.0.5', '10.3.0.9', '192.168.7.7'])}:{rng.choice([80, 8080, 9000])}"
                stat = f"-m statistic --mode random --probability {rng.choice(['0.25000000000', '0.50000000000'])} " if rng.random() < 0.4 else ""
                nat_rules.append(f"-A {ch} -p {proto} {stat}{cond(None)} -j DNAT --to-destination {to}".replace("  ", " "))
            elif kind < 0.7:
                nat_rules.append(f"-A {ch} {cond(proto_for_rule())} -j RETURN".replace("  ", " "))
            else:
                nat_rules.append(f"-A {ch} {cond(proto_for_rule())} -j MARK --set-xmark 0x4000/0x4000".replace("  ", " "))
        for hook in ("PREROUTING", "OUTPUT"):
            if rng.random() < 0.8:
                how = "-g" if rng.random() < 0.2 else "-j"
                nat_rules.append(f"-A {hook} {cond(proto_for_rule())} {how} {ch}".replace("  ", " "))
    for _ in range(rng.randint(0, 2)):
        if rng.random() < 0.5:
            nat_rules.append(f"-A POSTROUTING {cond(proto_for_rule())} -j MASQUERADE".replace("  ", " "))
        else:
            nat_rules.append(f"-A POSTROUTING -m mark --mark 0x4000/0x4000 -j SNAT --to-source 10.0.1.10")
    tables["nat"] = ([":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]"]
                     + nat_chains, nat_rules)
    # filter: policies, user chains, REJECT/DROP/ACCEPT/RETURN
    pol = {h: rng.choice(["ACCEPT", "ACCEPT", "DROP"]) for h in ("INPUT", "FORWARD", "OUTPUT")}
    f_rules, f_chains = [], []
    for k in range(rng.randint(0, 3)):
        ch = f"F{k}"
        f_chains.append(f":{ch} - [0:0]")
        for _ in range(rng.randint(1, 4)):
            tgt = rng.choice(["ACCEPT", "DROP", "RETURN", "REJECT", "REJECT --reject-with icmp-host-prohibited"])
            proto = proto_for_rule()
            if tgt == "REJECT" and proto == "tcp" and rng.random() < 0.5:
                tgt = "REJECT --reject-with tcp-reset"
                f_rules.append(f"-A {ch} -p tcp {cond(None)} -j {tgt}".replace("  ", " "))
            else:
                f_rules.append(f"-A {ch} {cond(proto)} -j {tgt}".replace("  ", " "))
        for hook in ("INPUT", "FORWARD", "OUTPUT"):
            if rng.random() < 0.6:
                f_rules.append(f"-A {hook} {cond(proto_for_rule())} -j {ch}".replace("  ", " "))
    for hook in ("INPUT", "FORWARD", "OUTPUT"):
        for _ in range(rng.randint(0, 2)):
            f_rules.append(f"-A {hook} {cond(proto_for_rule())} -j {rng.choice(['ACCEPT', 'DROP', 'REJECT'])}".replace("  ", " "))
    tables["filter"] = ([f":{h} {p} [0:0]" for h, p in pol.items()] + f_chains, f_rules)

    text = ""
    for t in ("mangle", "nat", "filter"):
        heads, body = tables[t]
        text += f"*{t}\n" + "\n".join(heads + body) + "\nCOMMIT\n"
    ipsets = ("create S-NET hash:net family inet hashsize 1024 maxelem 65536\nadd S-NET 10.1.0.0/16\nadd S-NET 192.168.7.0/24\n"
              "create S-IPPORT hash:ip,port family inet hashsize 1024 maxelem 65536\nadd S-IPPORT 10.2.0.5,tcp:80\n"
              "add S-IPPORT 10.0.0.10,udp:53\n")
    node = {"interfaces": [{"name": "eth0", "addresses": ["10.0.0.10/24"]}, {"name": "eth1", "addresses": ["10.0.1.10/24"]}],
            "routes": [{"dst": "10.2.0.0/16", "dev": "eth1", "via": "10.0.1.11"}, {"dst": "10.3.0.0/16", "dev": "eth1", "via": "10.0.1.12"},
                       {"dst": "192.168.0.0/16", "dev": "eth1", "via": "10.0.1.13"}, {"dst": "default", "dev": "eth0", "via": "10.0.0.1"}],
            "sysctls": {"net.ipv4.ip_forward": 1}}
    pkts = []
    for _ in range(8):
        proto = rng.choice(["tcp", "tcp", "udp", "icmp"])
        p = {"proto": proto, "dst": rng.choice(dests), "dport": rng.choice([53, 80, 443, 1500, 8080]),
             "in": rng.choice(["eth0", "eth0", "eth1", None])}
        p["src"] = "10.0.0.10" if p["in"] is None else rng.choice(sources)
        pkts.append(p)
    name = f"random ruleset {idx}"
    if idx % 5 == 4:
        # Every fifth ruleset has no conntrack user (no --ctstate, marks where NAT was), so the
        # kernel never attaches conntrack and never walks its nat table. Decided by idx, not rng:
        # the other scenarios keep their draws.
        text = re.sub(r"-m conntrack --ctstate \S+ ", "", text)
        text = re.sub(r"-j (DNAT --to-destination|SNAT --to-source) \S+|-j MASQUERADE", "-j MARK --set-xmark 0x8/0x8", text)
        name += " (no conntrack user)"
    return {"name": name, "rules": text, "ipsets": ipsets, "node": node, "packets": pkts}


def random_nft_scenario(rng, idx):
    """A random nftables ruleset over the modelled subset: base chains at random priorities, regular
    chains with jump/goto/return, named and anonymous sets with intervals and concatenations,
    verdict maps, numgen, ct state, fib, marks, dnat/snat/masquerade, reject; with packets.
    Sometimes an iptables filter table sits next to it, so priorities interleave for real."""
    base = random_scenario(rng, idx)  # its node, packets and (sometimes) filter table
    prefixes = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.3", "192.168.0.0/16", "198.51.100.0/24", "0.0.0.0/1"]

    def cond(proto):
        c = []
        if rng.random() < 0.35:
            c.append(f"ip saddr {'!= ' if rng.random() < 0.2 else ''}{rng.choice(prefixes)}")
        if rng.random() < 0.35:
            c.append(f"ip daddr {'!= ' if rng.random() < 0.2 else ''}{rng.choice(prefixes)}")
        if rng.random() < 0.15:
            c.append(f"ip saddr {'!= ' if rng.random() < 0.3 else ''}{{ {', '.join(rng.sample(prefixes, 2))} }}")
        if proto and rng.random() < 0.5:
            c.append(f"{proto} dport {rng.choice(['53', '80', '443', '8080', '1000-2000', '{ 80, 443 }'])}")
        if rng.random() < 0.3:
            c.append(f"ct state {rng.choice(['new', 'established', 'new,established', 'invalid', '{ new, related }'])}")
        if rng.random() < 0.2:
            c.append(f"meta mark & 0x{rng.choice([1, 3, 7]):08x} == 0x{rng.choice([0, 1, 2]):08x}")
        if rng.random() < 0.2:
            c.append(f"fib daddr type {'!= ' if rng.random() < 0.3 else ''}{rng.choice(['local', 'unicast'])}")
        if rng.random() < 0.15:
            c.append(rng.choice(["ip saddr @nets", "ip daddr . tcp dport @svc", "ip daddr . meta l4proto . th dport @svc3"]))
        if rng.random() < 0.1:
            c.append("iifname " + rng.choice(['"eth0"', '"eth1"', '"eth*"']))
        return " ".join(c)

    def proto():
        return rng.choice(["tcp", "udp", None])

    chains, regular = [], []
    nreg = rng.randint(1, 3)
    for k in range(nreg):
        rules = []
        for _ in range(rng.randint(1, 4)):
            v = rng.choice(["accept", "drop", "return", "continue", "reject", "mark", "counter", f"jump r{k + 1}" if k + 1 < nreg else "drop"])
            if v == "mark":
                v = f"meta mark set meta mark {rng.choice(['|', '^'])} 0x{rng.choice([1, 2, 4]):08x}"
            elif v == "reject" and rng.random() < 0.5:
                rules.append(f"meta l4proto tcp {cond(None)} reject with tcp reset".replace("  ", " "))
                continue
            elif v == "continue":
                v = "counter"
            rules.append(f"{cond(proto())} {v}".strip().replace("  ", " "))
        regular.append(f"\tchain r{k} {{\n" + "".join(f"\t\t{r}\n" for r in rules) + "\t}")
    for hook in ("prerouting", "input", "forward", "output", "postrouting"):
        if rng.random() < 0.3:
            continue
        prio = rng.choice(["raw", "mangle", "-110", "filter - 5", "filter", "filter + 5", "security"])
        pol = "drop" if hook in ("input", "forward") and rng.random() < 0.2 else "accept"
        rules = []
        for _ in range(rng.randint(1, 4)):
            how = rng.choice(["jump", "goto", "vmap", "verdict", "mark"])
            if hook == "output":
                # A REJECT's ICMP error leaves through OUTPUT; dropping it there would hide the
                # reject from the capture (no trace tells them apart in this mode).
                how = rng.choice(["mark", "accept"])
            if how == "accept":
                rules.append(f"{cond(proto())} accept".strip().replace("  ", " "))
                continue
            if how in ("jump", "goto"):
                rules.append(f"{cond(proto())} {how} r{rng.randrange(nreg)}".strip().replace("  ", " "))
            elif how == "vmap":
                rules.append(f"ip daddr . meta l4proto . th dport vmap @dispatch")
            elif how == "mark":
                rules.append(f"{cond(proto())} meta mark set 0x{rng.choice([1, 2, 4]):08x}".strip().replace("  ", " "))
            else:
                v = rng.choice(["accept", "drop"] + (["reject"] if hook in ("input", "forward", "output") else []))
                rules.append(f"{cond(proto())} {v}".strip().replace("  ", " "))
        chains.append(f"\tchain f-{hook} {{\n\t\ttype filter hook {hook} priority {prio}; policy {pol};\n"
                      + "".join(f"\t\t{r}\n" for r in rules) + "\t}")
    # nat: DNAT through a numgen vmap or directly, SNAT/masquerade after
    dnat = []
    for _ in range(rng.randint(1, 3)):
        to = f"{rng.choice(['10.2.0.5', '10.3.0.9', '192.168.7.7'])}:{rng.choice([80, 8080, 9000])}"
        p = rng.choice(["tcp", "udp"])
        if rng.random() < 0.4:
            dnat.append(f"meta l4proto {p} {cond(None)} numgen random mod 2 vmap {{ 0 : goto ep0, 1 : goto ep1 }}".replace("  ", " "))
        else:
            dnat.append(f"meta l4proto {p} {cond(None)} dnat to {to}".replace("  ", " "))
    nat_prio = rng.choice(["dstnat", "-150", "dstnat + 5"])
    chains.append(f"\tchain n-pre {{\n\t\ttype nat hook prerouting priority {nat_prio}; policy accept;\n"
                  + "".join(f"\t\t{r}\n" for r in dnat) + "\t}")
    if rng.random() < 0.5:
        chains.append("\tchain n-out {\n\t\ttype nat hook output priority -100; policy accept;\n"
                      + "".join(f"\t\t{r}\n" for r in dnat[:1]) + "\t}")
    post = rng.choice(["oifname \"eth1\" masquerade", "meta mark & 0x00000004 == 0x00000004 snat to 10.0.1.10",
                       "ip daddr 10.2.0.0/16 masquerade fully-random"])
    chains.append(f"\tchain n-post {{\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\t{post}\n\t}}")
    regular.append("\tchain ep0 {\n\t\tmeta l4proto tcp dnat to 10.2.0.5:80\n\t\tmeta l4proto udp dnat to 10.2.0.5:53\n\t}")
    regular.append("\tchain ep1 {\n\t\tmeta l4proto tcp dnat to 10.3.0.9:8080\n\t\tmeta l4proto udp dnat to 10.3.0.9:53\n\t}")
    sets = ("\tset nets {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { 10.1.0.0/16, 192.168.7.0/24 }\n\t}\n"
            "\tset svc {\n\t\ttype ipv4_addr . inet_service\n\t\telements = { 10.2.0.5 . 80, 10.0.0.10 . 443 }\n\t}\n"
            "\tset svc3 {\n\t\ttype ipv4_addr . inet_proto . inet_service\n\t\tflags interval\n"
            "\t\telements = { 10.0.0.0/8 . udp . 50-60, 172.16.0.1 . tcp . 80 }\n\t}\n"
            "\tmap dispatch {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n"
            f"\t\telements = {{ 10.2.0.5 . tcp . 80 : goto r0, 10.3.0.9 . udp . 53 : {rng.choice(['drop', 'accept', 'jump r0'])} }}\n\t}}\n")
    text = "table ip t {\n" + sets + "\n".join(chains + regular) + "\n}\n"
    ipt = ""
    if rng.random() < 0.4:
        f = base["rules"][base["rules"].index("*filter"):]
        ipt = re.sub(r"-m set --match-set \S+ \S+ ", "", f)
        # OUTPUT stays open for the same reason as the nft output chain.
        ipt = "\n".join(l for l in ipt.splitlines() if not l.startswith("-A OUTPUT")).replace(":OUTPUT DROP", ":OUTPUT ACCEPT") + "\n"
    name = f"random nftables ruleset {idx}"
    if idx % 5 == 4:
        # As for iptables: no ct expression and marks where NAT was, so nothing attaches conntrack.
        text = re.sub(r"ct state (\{[^}]*\}|\S+) ", "", text)
        text = re.sub(r"(dnat to|snat to) \S+|masquerade( fully-random)?", "meta mark set 0x00000008", text)
        name += " (no conntrack user)"
    return {"name": name, "rules": ipt, "ipsets": "", "nft": text, "node": base["node"],
            "backends": ["nftables"], "packets": base["packets"]}


# ---------------------------------------------------------------------------------- the run

def nft_acceptance(binary, sc, tag):
    """(kernel accepts, svcpath accepts, kernel's error) for a scenario's nft ruleset: a random
    ruleset may break a kernel rule (reject below postrouting, two transport protocols in a rule);
    svcpath must refuse exactly what nft -f refuses."""
    ns = f"svpd-a-{tag}"
    sh("ip", "netns", "del", ns, check=False)
    sh("ip", "netns", "add", ns)
    try:
        k = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=sc["nft"], capture_output=True, text=True)
    finally:
        sh("ip", "netns", "del", ns, check=False)
    with tempfile.NamedTemporaryFile("w", suffix=".nft") as f:
        f.write(sc["nft"])
        f.flush()
        s = subprocess.run([binary, "rules", "--nft", f.name], capture_output=True, text=True)
    return k.returncode == 0, s.returncode == 0, (k.stderr.strip().splitlines() or [""])[0], (s.stderr.strip().splitlines() or [""])[0]


def chi_square_p(observed, expected):
    """Upper tail of chi-square with len-1 degrees of freedom (regularized incomplete gamma)."""
    x = sum((o - e) ** 2 / e for o, e in zip(observed, expected))
    k = (len(observed) - 1) / 2.0
    # Q(k, x/2) by series for P, 1 - P.
    s, term, n = 0.0, 1.0 / k, 0
    while n < 500:
        s += term
        n += 1
        term *= (x / 2) / (k + n)
    p = s * math.exp(-x / 2 + k * math.log(x / 2) - math.lgamma(k)) if x > 0 else 0.0
    return x, 1.0 - p


def statistical(binary, backend, tag, report):
    """600 new connections to a 3-endpoint Service: the kernel's backend counts against svcpath's
    probabilities (kube-proxy's 1/3, 1/2, rest)."""
    rules = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SVC-X - [0:0]
-A PREROUTING -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-X
-A KUBE-SVC-X -m statistic --mode random --probability 0.33333333349 -p tcp -j DNAT --to-destination 10.244.2.5:8080
-A KUBE-SVC-X -m statistic --mode random --probability 0.50000000000 -p tcp -j DNAT --to-destination 10.244.2.6:8080
-A KUBE-SVC-X -p tcp -j DNAT --to-destination 10.244.2.7:8080
COMMIT
"""
    node = {"interfaces": [{"name": "eth0", "addresses": ["10.0.0.10/24"]}, {"name": "eth1", "addresses": ["10.0.1.10/24"]}],
            "routes": [{"dst": "10.244.2.0/24", "dev": "eth1", "via": "10.0.1.11"}], "sysctls": {"net.ipv4.ip_forward": 1}}
    n = 600
    pkts = [{"proto": "tcp", "src": f"198.51.{100 + i // 250}.{i % 250 + 1}", "sport": 30000 + i, "dst": "10.96.0.10",
             "dport": 80, "in": "eth0"} for i in range(n)]
    sc = {"name": "statistic", "rules": rules, "ipsets": "", "node": node, "packets": pkts}
    if backend == "nftables":
        # kube-proxy's nftables mode picks with one numgen draw instead of a statistic cascade.
        sc["rules"] = ""
        sc["nft"] = """table ip t {
    chain pre { type nat hook prerouting priority dstnat; policy accept; ip daddr 10.96.0.10 tcp dport 80 jump svc; }
    chain svc { numgen random mod 3 vmap { 0 : goto ep1, 1 : goto ep2, 2 : goto ep3 }; }
    chain ep1 { meta l4proto tcp dnat to 10.244.2.5:8080; }
    chain ep2 { meta l4proto tcp dnat to 10.244.2.6:8080; }
    chain ep3 { meta l4proto tcp dnat to 10.244.2.7:8080; }
}
"""
    sc["rules_traced"] = sc["rules"]
    counts = {}
    with Kernel(sc, backend, tag) as k:
        for i, p in enumerate(pkts):
            for _, d in k.send(p, IPID_BASE + i, wait=0.004):
                if d and d["id"] == IPID_BASE + i:
                    counts[d["dst"]] = counts.get(d["dst"], 0) + 1
    work = tempfile.mkdtemp(prefix="svpd-")
    try:
        sc["packets"] = pkts[:1]
        outs = svcpath_outcomes(binary, sc, work)[0]["outcomes"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    prob = {split_ep(o["dst"])[0]: o["probability"] for o in outs if o["verdict"] == "forwarded"}
    seen = sum(counts.values())
    keys = sorted(prob)
    x2, pv = chi_square_p([counts.get(a, 0) for a in keys], [prob[a] * seen for a in keys])
    ok = seen == n and set(counts) <= set(prob) and pv > 0.001
    report(f"{'ok' if ok else 'FAIL'}: statistic [{backend}]: {n} connections, kernel {dict(sorted(counts.items()))}, "
           f"svcpath p={ {a: round(prob[a], 4) for a in keys} }, chi-square {x2:.2f}, p={pv:.3f}")
    return 0 if ok else 1


def main():
    # ctest's timeout sends SIGTERM: leave through sys.exit so the namespaces and the log knob are restored.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    ap = argparse.ArgumentParser()
    ap.add_argument("svcpath")
    ap.add_argument("--long", action="store_true", help="400 random rulesets (about 3200 packets per back end)")
    ap.add_argument("--random", type=int, default=None, help="this many random rulesets")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--save", default=os.path.join(SRC, "build/kernel-diff"))
    ap.add_argument("--only", default="", help="run the scenarios whose name contains this")
    ap.add_argument("--verbose", action="store_true", help="each packet's kernel outcome and path")
    ap.add_argument("--case", action="append", default=[], help="re-run a saved disagreement (build/kernel-diff/*.json)")
    a = ap.parse_args()
    H.VERBOSE = a.verbose
    try:
        check_environment()
    except Unavailable as e:
        skip(str(e))

    try:
        H.KLOG = KernelLog()
    except OSError as e:
        print(f"note: legacy TRACE not readable ({e}); legacy runs compare outcomes only")
    rng = random.Random(a.seed)
    if a.case:
        scenarios = []
        for f in a.case:
            sc = json.load(open(f))["scenario"]
            sc["name"] = f"case {os.path.basename(f)}: {sc['name']}"
            scenarios.append(sc)
        a.only, a.random = "case ", 0
    else:
        scenarios = (cluster_scenarios(a.svcpath, rng) + [conntrack_scenario(), edges_scenario(), self_tuple_scenario(),
                                                          set_target_scenario()] + engagement_scenarios() + reject_scenarios()
                     + ext6_scenarios() + diff_scenarios(a.svcpath))
        kept = os.path.join(SRC, "tests/data/kernel-diff")
        for f in sorted(os.listdir(kept)) if os.path.isdir(kept) else []:
            if f.endswith(".json"):
                sc = json.load(open(os.path.join(kept, f)))["scenario"]
                sc["name"] = f"regression {f}: {sc['name']}"
                scenarios.append(sc)
    count = a.random if a.random is not None else 400 if a.long else 6
    if not a.case:
        scenarios += [random_scenario(rng, i) for i in range(count)]
        scenarios += [random_nft_scenario(rng, i) for i in range(count)]
    total = failed = 0
    tag = str(os.getpid())
    for sc in scenarios:
        if a.only not in sc["name"]:
            continue
        if sc["name"].startswith("random nftables"):
            kernel_ok, svc_ok, kerr, serr = nft_acceptance(a.svcpath, sc, tag)
            total += 1
            if kernel_ok != svc_ok:
                failed += 1
                print(f"FAIL: {sc['name']}: nft -f {'accepts' if kernel_ok else 'refuses'} it, svcpath "
                      f"{'accepts' if svc_ok else 'refuses'} it\n  kernel:  {kerr}\n  svcpath: {serr}")
                continue
            if not kernel_ok:
                print(f"ok: {sc['name']}: nft -f and svcpath both refuse it ({serr.split(': error: ')[-1]})")
                continue
        for backend in sc.get("backends", ("legacy", "nft")):
            sc_copy = json.loads(json.dumps(sc))
            n, f = run_scenario(a.svcpath, sc_copy, backend, tag, print, a.save)
            total += n
            failed += f
            if f == 0:
                traced = (backend == "nft" and not sc.get("rules6")) or (backend == "legacy" and H.KLOG is not None)
                print(f"ok: {sc['name']} [{backend}]: {n} packets agree" + (" (outcome and TRACE path)" if traced else " (outcome)"))
    # The harness must be able to fail: svcpath gets a ruleset whose DNAT goes elsewhere.
    if not a.only and not a.case:
        bad = conntrack_scenario()
        bad["name"] = "self-check"
        bad["svcpath_rules"] = bad["rules"].replace("10.244.2.7:8080", "10.244.2.8:8080")
        quiet = []
        _, f = run_scenario(a.svcpath, bad, "nft", tag, quiet.append, tempfile.mkdtemp(prefix="svpd-self-"))
        if f:
            print(f"ok: self-check: a deliberately wrong svcpath ruleset is caught ({f} disagreements)")
        else:
            print("FAIL: self-check: a deliberately wrong svcpath ruleset went unnoticed")
            failed += 1
        for backend in ("legacy", "nft", "nftables"):
            failed += statistical(a.svcpath, backend, tag, print)
    if H.KLOG:
        H.KLOG.close()
    print(f"{total} packets compared, {failed} disagreements")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
