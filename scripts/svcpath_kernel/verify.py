#!/usr/bin/env python3
"""The kernel side of `svcpath verify` (the C++ command validates the inputs, then runs this):

    python3 -m svcpath_kernel.verify --svcpath BIN [--rules F] [--rules6 F] [--ipsets F] [--nft F]
        [--node-config F] [--packets N] [--seed S] [--backend nft|legacy|both] [--progress]

Draws N packets from the dump's own addresses, ports and interfaces (and host-originated ones,
martians, multicast and broadcast), sends them through the dump loaded in a throwaway namespace
(harness.Kernel) and through svcpath, and prints the agreement and every disagreement with both
sides. Same seed, same packets and (for the same kernel) the same report.

Exit status: 0 every packet agrees, 3 disagreements (or the kernel refused the input), 4 this
machine cannot run it (not root, no namespaces, a tool missing).
"""
import argparse
import ipaddress
import json
import os
import random
import re
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import svcpath_kernel.harness as H  # noqa: E402

EXIT_DISAGREE, EXIT_UNAVAILABLE = 3, 4
MAX_IFACES = 12  # each is a veth pair: enough for real dumps, bounded setup time
OUTSIDE4 = ["198.51.100.7", "203.0.113.9", "192.0.2.33", "8.8.8.8"]
OUTSIDE6 = ["2001:db8::9", "2001:db8:1::7"]

# ------------------------------------------------------------------------------ what the dump names


class Facts:
    """Addresses, prefixes, ports, protocols and interface names a dump mentions, in order of appearance."""

    def __init__(self):
        self.ifaces, self.nets, self.local, self.ports, self.protos = [], [], [], [], []
        self.routes = []  # (prefix, interface): -o IF -d PREFIX
        self.subnet_of = {}  # interface -> prefix seen with -i IF -s P or -o IF -d P

    @staticmethod
    def _add(lst, v):
        if v not in lst:
            lst.append(v)

    def iface(self, name):
        name = name.strip('"')
        if name.endswith("+"):
            name = name[:-1] + "0" if len(name) > 1 else ""
        if name and name != "lo" and len(name) <= 14 and re.fullmatch(r"[A-Za-z0-9_.@-]+", name):
            self._add(self.ifaces, name)
            return name
        return None

    def net(self, text):
        text = text.split(",")[0]
        try:
            n = ipaddress.ip_network(text, strict=False)
        except ValueError:
            return None
        self._add(self.nets, n)
        return n

    def port_list(self, text):
        for part in text.split(","):
            for x in part.replace(":", "-").split("-")[:1]:
                if x.isdigit() and 0 < int(x) < 65536:
                    self._add(self.ports, int(x))


def iptables_facts(text, facts):
    for line in text.splitlines():
        if not line.startswith("-A "):
            continue
        try:
            w = shlex.split(line)
        except ValueError:
            continue
        chain = w[1]
        opt = {}
        for i, tok in enumerate(w[:-1]):
            if tok.startswith("-"):
                opt.setdefault(tok, w[i + 1])
        iif = facts.iface(opt["-i"]) if "-i" in opt else None
        oif = facts.iface(opt["-o"]) if "-o" in opt else None
        s = facts.net(opt["-s"]) if "-s" in opt else None
        d = facts.net(opt["-d"]) if "-d" in opt else None
        for k in ("--to-destination", "--to-source", "--to"):
            if k in opt:
                facts.net(opt[k].split("-")[0].rsplit(":", 1)[0] if opt[k].count(":") == 1 else opt[k].split("-")[0])
        for k in ("--dport", "--sport", "--dports", "--sports", "--destination-port", "--source-port", "--to-ports"):
            if k in opt:
                facts.port_list(opt[k])
        if "-p" in opt and opt["-p"] in ("tcp", "udp", "icmp", "ipv6-icmp", "icmpv6"):
            facts._add(facts.protos, "icmp" if "icmp" in opt["-p"] else opt["-p"])
        # The node's own addresses: what INPUT accepts as a destination, what OUTPUT sends from.
        if chain == "INPUT" and d is not None and d.prefixlen == d.max_prefixlen:
            facts._add(facts.local, (d.network_address, iif))
        if chain == "OUTPUT" and s is not None and s.prefixlen == s.max_prefixlen:
            facts._add(facts.local, (s.network_address, oif))
        for ifc, n in ((iif, s), (oif, d)):
            if ifc and n is not None and 16 <= n.prefixlen < n.max_prefixlen - 1 and n.version == 4 and n.is_private:
                facts.subnet_of.setdefault(ifc, n)
            if ifc and n is not None and n.version == 6 and 48 <= n.prefixlen <= 64:
                facts.subnet_of.setdefault(ifc + "/6", n)
        if oif and d is not None and d.prefixlen > 0:
            facts._add(facts.routes, (d, oif))


def nft_facts(text, facts):
    for m in re.finditer(r'\b(?:iifname|oifname|iif|oif)\s+(?:!=\s+)?"?([A-Za-z0-9_.@+-]+)"?', text):
        facts.iface(m.group(1))
    for m in re.finditer(r"\b(\d+\.\d+\.\d+\.\d+(?:/\d+)?)", text):
        facts.net(m.group(1))
    for m in re.finditer(r"\b(?:ip6 (?:s|d)addr)\s+([0-9a-f:]+(?:/\d+)?)", text):
        facts.net(m.group(1))
    for m in re.finditer(r"\b[sd]port\s+(?:!=\s+)?(\{[^}]*\}|\d+(?:-\d+)?)", text):
        facts.port_list(re.sub(r"[{}\s]", "", m.group(1)))
    for m in re.finditer(r"\b(tcp|udp|icmp)\b", text):
        facts._add(facts.protos, m.group(1))


# ------------------------------------------------------------------------------ the node


def derive_node(facts, v4, v6):
    """The node a dump implies: one veth per interface the rules name (wildcards as NAME0; eth0 and
    eth1 when fewer than two), each with an address in the private subnet rules tie to it (else
    10.255.K.1/24, fd00:255:K::1/64), the INPUT -d / OUTPUT -s host addresses as /32 (/128) on the
    interface the rule names (else the first), a route per -o IF -d PREFIX, the default route
    through the first interface, forwarding on."""
    names = facts.ifaces[:MAX_IFACES]
    for extra in ("eth0", "eth1"):
        if len(names) < 2 and extra not in names:
            names.append(extra)
    ifaces, routes, gw4, gw6, used = [], [], None, None, set()
    for k, name in enumerate(names):
        addrs = []
        if v4:
            n = facts.subnet_of.get(name)
            if n is None or n in used:  # one subnet per interface, as a real node has
                n = ipaddress.ip_network(f"10.255.{k}.0/24")
            used.add(n)
            addrs.append(f"{n.network_address + 1}/{n.prefixlen}")
            if k == 0:
                gw4 = str(n.broadcast_address - 1)
        if v6:
            n = facts.subnet_of.get(name + "/6") or ipaddress.ip_network(f"fd00:255:{k:x}::/64")
            addrs.append(f"{n.network_address + 1}/{n.prefixlen}")
            if k == 0:
                gw6 = str(n.network_address + 0xFE)
        ifaces.append({"name": name, "addresses": addrs})
    for a, ifc in facts.local:
        if (a.version == 4 and not v4) or (a.version == 6 and not v6):
            continue
        if a.is_multicast or a.is_loopback or a.is_unspecified or str(a) == "255.255.255.255":
            continue
        target = next((i for i in ifaces if i["name"] == ifc), ifaces[0])
        host = f"{a}/{a.max_prefixlen}"
        if all(x.split("/")[0] != str(a) for i in ifaces for x in i["addresses"]):
            target["addresses"].append(host)
    for n, ifc in facts.routes:
        if ifc in names and not n.is_multicast and not n.is_loopback and ((n.version == 4 and v4) or (n.version == 6 and v6)):
            if not any(ipaddress.ip_interface(x).network.overlaps(n) for i in ifaces for x in i["addresses"]):
                routes.append({"dst": str(n), "dev": ifc})
    if gw4:
        routes.append({"dst": "default", "dev": names[0], "via": gw4})
    if gw6:
        routes.append({"dst": "::/0", "dev": names[0], "via": gw6})
    sysctls = {"net.ipv4.ip_forward": 1}
    if v6:
        sysctls["net.ipv6.conf.all.forwarding"] = 1
    return {"interfaces": ifaces, "routes": routes, "sysctls": sysctls}


def config_node(path):
    """A --node-config file reduced to what both sides can build the same way: interfaces with
    their addresses (every one a veth; bridges and their ports are not recreated), routes with
    dst/dev/via, and the sysctls this kernel has in a namespace."""
    text = open(path).read()
    try:
        cfg = json.loads(text)
    except ValueError:
        import yaml  # PyYAML: the node configs are YAML; JSON needs nothing

        cfg = yaml.safe_load(text)
    ifaces, dropped = [], []
    for i in cfg.get("interfaces", []) or []:
        if i.get("name") == "lo" or i.get("master"):
            dropped.append(i.get("name"))
            continue
        if len(i["name"]) > 14:
            raise ValueError(f"interface name '{i['name']}' is too long for the namespace's veth peer (14 characters at most)")
        ifaces.append({"name": i["name"], "addresses": [str(a) for a in i.get("addresses", []) or []]})
    names = {i["name"] for i in ifaces}
    routes = []
    for r in cfg.get("routes", []) or []:
        if str(r.get("table", "main")) not in ("main", "254"):
            dropped.append(f"route {r.get('dst')} table {r.get('table')}")
        elif r.get("dev") in names:
            routes.append({k: str(v) for k, v in r.items() if k in ("dst", "dev", "via")})
    if cfg.get("rules"):
        dropped.append("ip rules")
    sysctls = {}
    for k, v in (cfg.get("sysctls") or {}).items():
        if os.path.exists("/proc/sys/" + k.replace(".", "/")) and not k.startswith("net.bridge."):
            sysctls[k] = v
        else:
            dropped.append(k)
    return {"interfaces": ifaces, "routes": routes, "sysctls": sysctls}, dropped


# ------------------------------------------------------------------------------ the packets


def host_in(rng, n):
    """A random address inside n (n itself when a host route)."""
    if n.num_addresses <= 2:
        return str(n.network_address)
    return str(n.network_address + rng.randrange(1, min(n.num_addresses - 1, 1 << 24)))


def draw_packets(rng, count, facts, node, v4, v6):
    """count packets: 15% host-originated, 15% edges the kernel's routing treats specially
    (martian sources and destinations, multicast, broadcast), the rest arriving on the node's
    interfaces; addresses and ports mostly from the dump."""
    names = [i["name"] for i in node["interfaces"]]
    local = {4: [], 6: []}
    for i in node["interfaces"]:
        for a in i["addresses"]:
            ip = ipaddress.ip_interface(a)
            local[ip.version].append((str(ip.ip), i["name"], ip.network))
    pool = {4: [n for n in facts.nets if n.version == 4 and not n.is_loopback and not n.is_multicast and n.prefixlen > 0],
            6: [n for n in facts.nets if n.version == 6 and not n.is_loopback and not n.is_multicast and n.prefixlen > 0]}
    protos = facts.protos or ["tcp", "udp", "icmp"]
    fams = ([4] if v4 else []) + ([6] if v6 else [])
    out = []

    def addr(fam, prefer_local=False, allow_local=True):
        r = rng.random()
        if allow_local and (prefer_local or r < 0.25) and local[fam]:
            return rng.choice(local[fam])[0]
        if r < 0.8 and pool[fam]:
            return host_in(rng, rng.choice(pool[fam]))
        return rng.choice(OUTSIDE4 if fam == 4 else OUTSIDE6)

    for _ in range(count):
        fam = rng.choice(fams)
        proto = rng.choice(protos) if rng.random() < 0.85 else rng.choice(["tcp", "udp", "icmp"])
        p = {"proto": proto}
        kind = rng.random()
        if kind < 0.15 and local[fam]:
            p["src"], p["dst"], p["in"] = addr(fam, prefer_local=True), addr(fam), None
            if fam == 4 and rng.random() < 0.2:
                p["dst"] = rng.choice(["0.0.0.0", "255.255.255.255"])
        else:
            p["in"] = rng.choice(names)
            # The node's own addresses as a source from outside are a martian: only as an edge below.
            p["src"], p["dst"] = addr(fam, allow_local=False), addr(fam, prefer_local=rng.random() < 0.3)
            if kind > 0.85 and fam == 4:
                nets = [n for a, i, n in local[4] if i == p["in"] and n.prefixlen < 31]
                edge = rng.choice(["src0", "srcmc", "srcbc", "dst0", "srclo", "dstmc", "dstbc", "dstsubnetbc"])
                if edge == "src0":
                    p["src"] = "0.0.0.0"
                elif edge == "srcmc":
                    p["src"] = "224.0.0.%d" % rng.randrange(1, 255)
                elif edge == "srcbc":
                    p["src"] = "255.255.255.255"
                elif edge == "dst0":
                    p["dst"] = "0.0.0.0"
                elif edge == "srclo":
                    p["src"] = "127.0.0.1"
                elif edge == "dstmc":
                    p["dst"] = rng.choice(["224.0.0.1", "224.0.0.251", "239.255.255.250"])
                elif edge == "dstbc" or not nets:
                    p["dst"] = "255.255.255.255"
                else:
                    p["dst"] = str(nets[0].broadcast_address)
        if proto == "icmp":
            p["sport"] = rng.randrange(1, 65536)
            p["dport"] = 0
        else:
            p["sport"] = rng.choice(facts.ports) if facts.ports and rng.random() < 0.2 else rng.randrange(1024, 65536)
            p["dport"] = rng.choice(facts.ports) if facts.ports and rng.random() < 0.7 else rng.randrange(1, 65536)
            if proto == "tcp" and rng.random() < 0.1:
                p["flags"] = "A"
        out.append(p)
    return out


# ------------------------------------------------------------------------------ the report


def fmt_kernel(ko):
    v = ko["verdict"]
    if v == "forwarded":
        sp = f":{ko['sport']}" if ko.get("sport") is not None else ""
        dp = f":{ko['dport']}" if ko.get("dport") is not None else ""
        return f"forwarded out={ko['out']} {ko['src']}{sp} -> {ko['dst']}{dp}"
    if v in ("rejected", "rejected or delivered"):
        a = ko.get("answer")
        seen = f"answer out={a['out']} {a['src']} -> {a['dst']}" if a else "answer not seen (it died on its way out)"
        return f"{v} ({ko.get('with', 'no answer')}; {seen})"
    if ko.get("answered"):
        a = ko["answered"]
        return f"{v} by a rule (the kernel answered out={a['out']} {a['src']} -> {a['dst']})"
    if ko.get("with"):
        return f"{v} ({ko['with']})"
    return v + (" (dropped or delivered locally: nothing left the node)" if v == "not seen" else "")


def describe_node(node):
    parts = [f"{i['name']} {' '.join(i['addresses']) or '(no address)'}" for i in node["interfaces"]]
    rts = [f"{r['dst']} dev {r['dev']}" + (f" via {r['via']}" if r.get("via") else "") for r in node["routes"]]
    return "; ".join(parts) + (" | routes: " + ", ".join(rts) if rts else "")


def main():
    ap = argparse.ArgumentParser(prog="svcpath verify (kernel side)")
    ap.add_argument("--svcpath", required=True)
    ap.add_argument("--rules", default="")
    ap.add_argument("--rules6", default="")
    ap.add_argument("--ipsets", default="")
    ap.add_argument("--nft", default="")
    ap.add_argument("--node-config", default="")
    ap.add_argument("--packets", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--backend", default="nft", choices=["nft", "legacy", "both"])
    ap.add_argument("--progress", action="store_true")
    a = ap.parse_args()

    read = lambda f: open(f, newline="").read().replace("\r\n", "\n") if f else ""  # noqa: E731
    rules, rules6, sets, nft = read(a.rules), read(a.rules6), read(a.ipsets), read(a.nft)
    if rules6 and not rules:
        rules = ""
    tools = ["ip", "ipset" if sets else "ip"]
    if nft:
        tools.append("nft")
        backends = ["nftables"]
    else:
        backends = {"nft": ["nft"], "legacy": ["legacy"], "both": ["legacy", "nft"]}[a.backend]
        for b in backends:
            tools.append(f"iptables-{b}-restore")
            if rules6:
                tools.append(f"ip6tables-{b}-restore")
        if "nft" in backends:
            tools.append("xtables-monitor")
    try:
        H.check_environment(tuple(tools))
    except H.Unavailable as e:
        print(f"svcpath verify: cannot run here: {e}", file=sys.stderr)
        return EXIT_UNAVAILABLE

    facts = Facts()
    for text in (rules, rules6):
        iptables_facts(text, facts)
    if nft:
        nft_facts(nft, facts)
    for m in re.finditer(r"^add \S+ (\d+\.\d+\.\d+\.\d+(?:/\d+)?)", sets, re.M):
        facts.net(m.group(1))
    v6 = bool(rules6) or (bool(nft) and bool(re.search(r"\btable (ip6|inet) ", nft)) and not re.search(r"\btable (ip|inet) ", nft))
    v4 = bool(rules) or (bool(nft) and bool(re.search(r"\btable (ip|inet) ", nft))) or not v6
    if a.node_config:
        node, dropped = config_node(a.node_config)
        origin = f"from {a.node_config}" + (f" (not recreated here: {', '.join(map(str, dropped))})" if dropped else "")
    else:
        node = derive_node(facts, v4, v6)
        origin = "derived from the dump"
    rng = random.Random(a.seed)
    packets = draw_packets(rng, a.packets, facts, node, v4, v6)

    def progress(i, n):
        if a.progress:
            print(f"\rsvcpath verify: {i}/{n} packets sent", end="" if i < n else "\n", file=sys.stderr, flush=True)

    print(f"node ({origin}): {describe_node(node)}")
    total = agree = 0
    tag = f"v{os.getpid()}"
    if "legacy" in backends:
        try:
            H.KLOG = H.KernelLog()
        except OSError as e:
            print(f"note: legacy TRACE not readable ({e}); legacy compares outcomes only")
    for backend in backends:
        sc = {"name": "verify", "rules": rules, "rules6": rules6, "ipsets": sets, "nft": nft, "node": node,
              "v6": v6 and not rules6, "packets": json.loads(json.dumps(packets)), "progress": progress}
        label = {"nft": "iptables-nft", "legacy": "iptables-legacy", "nftables": "nft"}[backend]
        try:
            results = H.compare(a.svcpath, sc, backend, tag)
        except RuntimeError as e:
            # The namespace names carry the pid: left out, so the report is the same on every run.
            why = re.sub(r"svpd-[a-z]-v\d+", "NODE", str(e))
            print(f"DISAGREE: the kernel ({label}) refused the input that svcpath loads: {why}")
            total += len(packets)
            continue
        for i, r in enumerate(results):
            total += 1
            if not r["problem"]:
                agree += 1
                continue
            print(f"DISAGREE [{label}] packet {i + 1}: {H.spec_of(r['p'])}: {r['problem']}")
            print(f"  kernel:  {fmt_kernel(r['kernel'])}")
            for o in r["svcpath"]:
                print(f"  svcpath: {H.fmt_svcpath(o)}")
            if r["ktrace"] is not None:
                kern, verdict, mine = H.path_lines(backend, r)
                print("  kernel path:")
                for line in kern or ["(none)"]:
                    print("    " + line)
                print(f"  svcpath path ({verdict}):")
                for line in mine or ["(none)"]:
                    print("    " + line)
    if H.KLOG:
        H.KLOG.close()
    traced = "outcome and path" if any(b != "nftables" for b in backends) else "outcome"
    print(f"{agree}/{total} packets agree ({traced}; {', '.join(backends)}; seed {a.seed})")
    return 0 if agree == total else EXIT_DISAGREE


if __name__ == "__main__":
    sys.exit(main())
