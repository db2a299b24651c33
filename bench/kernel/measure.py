#!/usr/bin/env python3
"""What kube-proxy's iptables mode costs the real kernel per NEW connection, at growing Service
counts, in a network namespace on this machine.

    bench/kernel/measure.py BUILD/svcpath [--services 100,1000,...] [--packets 3000] [-o results.json]

For each back end (iptables-legacy, iptables-nft, and kube-proxy's nftables mode through nft -f)
and Service count: the synthetic cluster
`svcpath gen-cluster --services N --endpoints 10 --nodes 3` is turned into node-0's iptables
dump (`svcpath rules`), loaded into a fresh node namespace (tests/kernel/differential.py's
topology), and a bounded burst of TCP SYNs from the host to the *last* Service's ClusterIP is sent
through a raw socket: every packet is a new connection, and the nat OUTPUT walk (KUBE-SERVICES,
one rule per Service port) runs inside sendto, so the loop's wall time carries it. The same burst
with no rules loaded is the baseline; cost = time per packet - baseline. Each point is the median
of --repeats bursts. Also records how long iptables-restore took to load the dump.

The output feeds `svcpath bench-model --measured results.json`, which calibrates the cost model
and prints predicted against measured.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "tests", "kernel"))
import differential as d  # noqa: E402  (the namespace topology and packet builder)


def node():
    # node-0 of the synthetic cluster: 10.0.0.10 with pod CIDR 10.64.0.0/24.
    return {"interfaces": [{"name": "eth0", "addresses": ["10.0.0.10/24"]}, {"name": "cni0", "addresses": ["10.64.0.1/24"]}],
            "routes": [{"dst": "default", "dev": "eth0", "via": "10.0.0.1"}],
            "sysctls": {"net.ipv4.ip_forward": 1, "net.netfilter.nf_conntrack_max": 1048576}}


def last_service(services):
    """kube-proxy orders KUBE-SERVICES by name, so the last Service is the largest "svc-N" string
    (kube/objects/cluster_synth's synthetic_service_at)."""
    return max(range(services), key=lambda i: f"svc-{i}")


def vip(i):
    n = 0x0A600000 + 1 + i
    return ".".join(str((n >> s) & 255) for s in (24, 16, 8, 0))


def burst(k, dst, count, sport):
    pkt = d.build_ip({"proto": "tcp", "src": "10.0.0.10", "sport": sport, "dst": dst, "dport": 80, "flags": "S"}, 1)
    return k.ask(k.node, {"op": "burst", "hex": pkt.hex(), "count": count, "sport": sport})["ns"] / count


def measure(binary, backend, services, packets, repeats, tag):
    if services:
        with tempfile.TemporaryDirectory() as tmp:
            cl = os.path.join(tmp, "c.yaml")
            subprocess.run([binary, "gen-cluster", "--services", str(services), "--endpoints", "10", "--nodes", "3", "-o", cl],
                           check=True, capture_output=True)
            mode = ["--mode", "nftables", "--restore-input"] if backend == "nftables" else []
            rules = subprocess.run([binary, "rules", "--cluster", cl, "--node", "node-0"] + mode, check=True, capture_output=True,
                                   text=True).stdout
    else:
        rules = ""
    sc = {"name": f"measure {services}", "rules": rules, "rules_traced": rules, "ipsets": "", "node": node(), "packets": []}
    if backend == "nftables":
        # kube-proxy's nftables transaction through nft -f; no iptables rules.
        sc.update({"rules": "", "rules_traced": "", "nft": rules or "table ip empty {\n}\n"})
    t0 = time.monotonic()
    with d.Kernel(sc, backend, tag) as k:
        load_s = time.monotonic() - t0
        dst = vip(last_service(services)) if services else "10.96.0.1"
        burst(k, dst, 300, 2000)  # warm the caches and the conntrack hash
        per = [burst(k, dst, packets, 3000 + r * packets) for r in range(repeats)]
    lines = rules.count("\nadd rule ") if backend == "nftables" else rules.count("\n-A ")
    return {"backend": backend, "services": services, "rules_lines": lines, "ns_per_packet": statistics.median(per),
            "samples": per, "load_seconds": round(load_s, 3)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("svcpath")
    ap.add_argument("--services", default="100,1000,2000,5000,10000,20000")
    ap.add_argument("--packets", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--backends", default="legacy,nft")
    ap.add_argument("-o", "--out", default="-")
    a = ap.parse_args()
    if os.geteuid() != 0:
        d.skip("not root: network namespaces need root")
    tag = f"m{os.getpid()}"
    results = {"machine": os.uname().release, "packets": a.packets, "points": []}
    for backend in a.backends.split(","):
        base = measure(a.svcpath, backend, 0, a.packets, a.repeats, tag)
        print(f"{backend:7} baseline: {base['ns_per_packet']:.0f} ns per packet", file=sys.stderr)
        for n in [int(x) for x in a.services.split(",")]:
            p = measure(a.svcpath, backend, n, a.packets, a.repeats, tag)
            p["baseline_ns"] = base["ns_per_packet"]
            p["cost_ns"] = p["ns_per_packet"] - base["ns_per_packet"]
            results["points"].append(p)
            print(f"{backend:7} {n:>6} services: {p['ns_per_packet']:.0f} ns per packet, {p['cost_ns']:.0f} ns over the baseline "
                  f"(load {p['load_seconds']} s)", file=sys.stderr)
    text = json.dumps(results, indent=1)
    if a.out == "-":
        print(text)
    else:
        open(a.out, "w").write(text + "\n")


if __name__ == "__main__":
    main()
