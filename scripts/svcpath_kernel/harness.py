"""The kernel side of svcpath's differential checks, shared by `svcpath verify` and
tests/kernel/differential.py: a throwaway node namespace and its peer (Kernel), packets built
byte by byte and captured at the peer, the kernel's own path (xtables-monitor --trace for
iptables-nft, nf_log TRACE lines for iptables-legacy), svcpath's outcomes for the same packets
(`svcpath trace --enumerate --format json`) and the comparison of the two (compare).

Nothing here knows where the packets come from: the differential test draws them from its
scenarios, `svcpath verify` (verify.py) from the user's dump.
"""
import atexit
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

VERBOSE = False
# Test packets are told apart by their IP ID; a per-process base keeps two runs from mixing
# their kernel-log TRACE lines.
IPID_BASE = 1000 + (os.getpid() % 50) * 1200
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))


class Unavailable(Exception):
    """This machine cannot run the kernel side (not root, no namespaces, a tool missing)."""


def check_environment(tools=("ip", "iptables-legacy-restore", "iptables-nft-restore", "ipset", "xtables-monitor", "nft")):
    """Raises Unavailable with the reason when namespaces or tools are missing."""
    if os.geteuid() != 0:
        raise Unavailable("not root: network namespaces need root")
    for t in tools:
        if not shutil.which(t):
            raise Unavailable(f"{t} is not installed (scripts/install-deps installs it)")
    probe = f"svpd-probe-{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode != 0:
        raise Unavailable("cannot create a network namespace")
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)

def sh(*args, ns=None, check=True, input=None):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + [str(a) for a in args]
    p = subprocess.run(cmd, input=input, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {p.stderr.strip()}")
    return p


# ------------------------------------------------------------------------------------ packets

def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def aton(a):
    return bytes(int(x) for x in a.split("."))


def ntoa(b):
    return ".".join(str(x) for x in b)


PROTO = {"tcp": 6, "udp": 17, "icmp": 1, "esp": 50}
FLAGS = {"F": 1, "S": 2, "R": 4, "P": 8, "A": 16}


def is_v6(p):
    return ":" in p["src"]


def ext_chain(text, last):
    """The packet spec's ext= chain (docs/inputs.md) as bytes, written here from the grammar rather
    than by svcpath, so the kernel and svcpath are given the same headers by two hands. Returns
    (first next header, bytes, later fragment?)."""
    hdrs = []
    for h in text.split(","):
        name, *parts = h.split("/")
        kv = dict(x.split("=", 1) if "=" in x else (x, "") for x in parts)
        if name in ("hbh", "dst"):
            body = b""
            for o in parts:
                t, _, ln = o.partition(":")
                t = int(t, 0)
                body += b"\0" if t == 0 else bytes([t, int(ln or "0", 0)]) + bytes(int(ln or "0", 0))
            pad = (8 - (2 + len(body)) % 8) % 8
            body += b"\0" if pad == 1 else (bytes([1, pad - 2]) + bytes(pad - 2) if pad else b"")
            hdrs.append((0 if name == "hbh" else 60, bytes([(2 + len(body)) // 8 - 1]) + body))
        elif name == "rt":
            addrs = [socket.inet_pton(socket.AF_INET6, a) for a in kv["addr"].split("+")] if kv.get("addr") else []
            hdrs.append((43, struct.pack("!BBBI", 2 * len(addrs), int(kv.get("type", 0)), int(kv.get("left", 0)),
                                         int(kv.get("res", "0"), 0)) + b"".join(addrs)))
        elif name == "frag":
            off = int(kv.get("off", 0))
            hdrs.append((44, struct.pack("!BHI", int(kv.get("res", "0"), 0), off | (1 if "more" in kv else 0),
                                         int(kv.get("id", "0"), 0))))
        elif name == "ah":
            ln = int(kv.get("len", 4))
            hdrs.append((51, struct.pack("!BHI", ln, 0, int(kv.get("spi", "0"), 0)) + bytes((ln + 2) * 4 - 8)))
        else:
            raise ValueError(f"unknown extension header {name}")
    out = b""
    for i, (t, rest) in enumerate(hdrs):
        out += bytes([hdrs[i + 1][0] if i + 1 < len(hdrs) else last]) + rest
    later = hdrs[-1][0] == 44 and (out[-6] << 8 | out[-5]) & 0xFFF8 != 0
    return hdrs[0][0], out, later


def proto_num(p):
    return PROTO.get(p["proto"]) or (58 if p["proto"] == "icmp" else int(p["proto"]))


def build_ip6(p, label):
    """IPv6 with the flow label as the packet's identity (NAT keeps it; nf_log prints FLOWLBL)."""
    src, dst = socket.inet_pton(socket.AF_INET6, p["src"]), socket.inet_pton(socket.AF_INET6, p["dst"])
    later = False
    if p.get("ext"):
        later = ext_chain(p["ext"], 0)[2]
    if later:
        nh = proto_num(p)
        l4, ck_at = bytes(16 + p.get("pad", 0)), None  # a later fragment carries payload only
    elif p["proto"] == "esp":
        nh = 50
        l4, ck_at = struct.pack("!II", p.get("spi", 0), 1) + b"\0" * 16, None
    elif p["proto"] not in ("tcp", "udp", "icmp"):
        nh = int(p["proto"])
        l4, ck_at = b"\0" * 16, None
    elif p["proto"] == "tcp":
        nh = 6
        flags = sum(FLAGS[c] for c in p.get("flags", "S"))
        l4 = struct.pack("!HHIIBBHHH", p["sport"], p["dport"], 1000 + label, 0, 5 << 4, flags, 65535, 0, 0)
        ck_at = 16
    elif p["proto"] == "udp":
        nh = 17
        body = b"svcpath" + bytes(p.get("pad", 0))  # pad: make the length a multiple of 8
        l4 = struct.pack("!HHHH", p["sport"], p["dport"], 8 + len(body), 0) + body
        ck_at = 6
    else:
        nh = 58
        l4 = struct.pack("!BBHHH", 128, 0, 0, p.get("sport", 1), 1) + b"svcpath"
        ck_at = 2
    if ck_at is not None:
        pseudo = src + dst + struct.pack("!IxxxB", len(l4), nh)
        c = csum(pseudo + l4) or 0xFFFF
        l4 = l4[:ck_at] + struct.pack("!H", c) + l4[ck_at + 2:]
    first, chain = nh, b""
    if p.get("ext"):
        first, chain, _ = ext_chain(p["ext"], nh)
    hdr = struct.pack("!IHBB", (6 << 28) | (label & 0xFFFFF), len(chain) + len(l4), first, 64) + src + dst
    return hdr + chain + l4


def build_ip(p, ipid):
    if is_v6(p):
        return build_ip6(p, ipid)
    src, dst = aton(p["src"]), aton(p["dst"])
    proto = proto_num(p)
    if p.get("frag"):  # a later fragment: payload only
        l4 = b"\0" * 16
    elif proto == 6:
        flags = sum(FLAGS[c] for c in p.get("flags", "S"))
        l4 = struct.pack("!HHIIBBHHH", p["sport"], p["dport"], 1000 + ipid, 0, 5 << 4, flags, 65535, 0, 0)
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(l4))
        l4 = l4[:16] + struct.pack("!H", csum(pseudo + l4)) + l4[18:]
    elif proto == 17:
        body = b"svcpath"
        l4 = struct.pack("!HHHH", p["sport"], p["dport"], 8 + len(body), 0) + body
        pseudo = src + dst + struct.pack("!BBH", 0, 17, len(l4))
        c = csum(pseudo + l4) or 0xFFFF
        l4 = l4[:6] + struct.pack("!H", c) + l4[8:]
    else:
        l4 = struct.pack("!BBHHH", 8, 0, 0, p.get("sport", 1), 1) + b"svcpath"
        l4 = l4[:2] + struct.pack("!H", csum(l4)) + l4[4:]
    frag = (0x2000 if p.get("mf") else 0) | (1 if p.get("frag") else 0)  # offset 8 bytes for a later fragment
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), ipid, frag, 64, proto, 0, src, dst)
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + l4


def parse_ip6(b):
    if len(b) < 40:
        return None
    nh, off, later = b[6], 40, False
    while nh in (0, 43, 44, 51, 60) and len(b) >= off + 8 and not later:  # to the upper-layer header
        if nh == 44:
            later = struct.unpack("!H", b[off + 2:off + 4])[0] & 0xFFF8 != 0
        ln = 8 if nh == 44 else (b[off + 1] + 2) * 4 if nh == 51 else (b[off + 1] + 1) * 8
        nh, off = b[off], off + ln
    proto = {58: 1}.get(nh, nh)  # ICMPv6 plays ICMP's part below
    d = {"id": struct.unpack("!I", b[0:4])[0] & 0xFFFFF, "proto": proto,
         "src": socket.inet_ntop(socket.AF_INET6, b[8:24]), "dst": socket.inet_ntop(socket.AF_INET6, b[24:40])}
    l4 = b"" if later else b[off:]
    if proto in (6, 17) and len(l4) >= 4:
        d["sport"], d["dport"] = struct.unpack("!HH", l4[:4])
        if proto == 6 and len(l4) >= 14:
            d["flags"] = l4[13]
    elif proto == 1 and len(l4) >= 8:
        d["type"], d["code"] = l4[0], l4[1]
        if d["type"] in (1, 3):
            d["inner"] = parse_ip6(l4[8:])
    return d


def parse_ip(b):
    """An IPv4 or IPv6 packet (from a frame's payload) as a dict, or None."""
    if len(b) >= 40 and b[0] >> 4 == 6:
        return parse_ip6(b)
    if len(b) < 20 or b[0] >> 4 != 4:
        return None
    ihl = (b[0] & 15) * 4
    proto = b[9]
    d = {"id": struct.unpack("!H", b[4:6])[0], "proto": proto, "src": ntoa(b[12:16]), "dst": ntoa(b[16:20])}
    l4 = b[ihl:]
    # A later fragment carries no transport header: its first bytes are payload, not ports.
    later_fragment = struct.unpack("!H", b[6:8])[0] & 0x1FFF
    if proto in (6, 17) and len(l4) >= 4 and not later_fragment:
        d["sport"], d["dport"] = struct.unpack("!HH", l4[:4])
        if proto == 6 and len(l4) >= 14:
            d["flags"] = l4[13]
    elif proto == 1 and len(l4) >= 8:
        d["type"], d["code"] = l4[0], l4[1]
        if d["type"] in (3, 11, 12):
            d["inner"] = parse_ip(l4[8:])
    return d


def spec_of(p):
    s = spec_base(p)
    if p.get("spi") is not None:
        s += f" spi={p['spi']}"
    if p.get("ext"):
        # The length too: reassembly treats a fragment by its length (a multiple of 8 or not).
        s += f" ext={p['ext']} len={len(build_ip6(p, 0))}"
    for flag in ("frag", "mf"):
        if p.get(flag):
            s += f" {flag}"
    return s


def spec_base(p):
    proto = p["proto"]
    if proto == "tcp" and p.get("flags", "S") != "S":
        proto += "/" + p["flags"]
    if p["proto"] == "icmp":
        s = f"{'icmp6' if is_v6(p) else 'icmp'} {p['src']} -> {p['dst']} id={p.get('sport', 1)}"
    elif proto not in ("tcp", "udp") and not proto.startswith("tcp/"):
        s = f"{proto} {('[' + p['src'] + ']') if is_v6(p) else p['src']} -> {('[' + p['dst'] + ']') if is_v6(p) else p['dst']}"
    elif is_v6(p):
        s = f"{proto} [{p['src']}]:{p['sport']} -> [{p['dst']}]:{p['dport']}"
    else:
        s = f"{proto} {p['src']}:{p['sport']} -> {p['dst']}:{p['dport']}"
    return s + (" local" if p.get("in") is None else f" in={p['in']}")


# ---------------------------------------------------------------------------------- the kernel

class KernelLog:
    """The legacy TRACE target logs through nf_log; inside a namespace only with the init
    namespace's net.netfilter.nf_log_all_netns=1, which this turns on for the run and restores."""

    KNOB = "/proc/sys/net/netfilter/nf_log_all_netns"

    def __init__(self):
        self.old = open(self.KNOB).read().strip()
        open(self.KNOB, "w").write("1")
        atexit.register(self.close)
        self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self.fd, 0, os.SEEK_END)

    def read(self):
        """TRACE records logged since the last call: ipid -> [(table, chain, kind, number)]."""
        out = {}
        while True:
            try:
                rec = os.read(self.fd, 8192).decode(errors="replace")
            except BlockingIOError:
                break
            except BrokenPipeError:  # the ring wrapped past us: keep reading from where it is now
                continue
            msg = rec.split(";", 1)[-1]
            m = re.match(r"TRACE: (\w+):(\S+):(rule|return|policy):(\d+) .*? (?:ID|FLOWLBL)=(\d+)", msg)
            if m:
                out.setdefault(int(m.group(5)), []).append((m.group(1), m.group(2), m.group(3), int(m.group(4))))
        return out

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
            # Last one out restores it: another run (its namespaces still exist) may still need it.
            others = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
            if "svpd-" not in others:
                open(self.KNOB, "w").write(self.old if self.old != "1" else "0")


KLOG = None


class Kernel:
    """The node and its peer namespace, set up for one scenario and one iptables back end."""

    def __init__(self, sc, backend, tag):
        self.sc, self.backend = sc, backend
        self.node, self.peer = f"svpd-n-{tag}", f"svpd-p-{tag}"
        self.agents = {}
        self.monitor = None
        self.legacy_traces = {}

    def __enter__(self):
        for ns in (self.node, self.peer):
            sh("ip", "netns", "del", ns, check=False)
            sh("ip", "netns", "add", ns)
        n = self.node
        v6 = bool(self.sc.get("rules6")) or bool(self.sc.get("v6"))
        for ns in (self.node, self.peer):
            # IPv6 only where a scenario needs it (and then without DAD, RAs or router solicitations).
            off = "0" if v6 and ns == self.node else "1"
            for conf in ("all", "default"):
                sh("sysctl", "-qw", f"net.ipv6.conf.{conf}.disable_ipv6={off}", ns=ns)
                if off == "0":
                    sh("sysctl", "-qw", f"net.ipv6.conf.{conf}.accept_dad=0", ns=ns)
                    sh("sysctl", "-qw", f"net.ipv6.conf.{conf}.accept_ra=0", ns=ns)
                    sh("sysctl", "-qw", f"net.ipv6.conf.{conf}.router_solicitations=0", ns=ns)
                    sh("sysctl", "-qw", f"net.ipv6.conf.{conf}.forwarding=1", ns=ns)
            sh("ip", "link", "set", "lo", "up", ns=ns)
        if v6:
            sh("sysctl", "-qw", "net.ipv6.icmp.ratelimit=0", ns=n)
        sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=n)
        sh("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", ns=n)
        sh("sysctl", "-qw", "net.ipv4.conf.default.rp_filter=0", ns=n)
        # REJECT's ICMP errors must not be rate limited away between test packets.
        sh("sysctl", "-qw", "net.ipv4.icmp_ratelimit=0", ns=n)
        sh("sysctl", "-qw", "net.ipv4.icmp_msgs_per_sec=100000", ns=n)
        # A packet forwarded out of the interface it came in on makes the kernel send an ICMP
        # redirect now and then (inet_peer's token bucket): a side packet whose TRACE lines would
        # mix into the packet's own path at random. svcpath does not model redirects.
        for conf in ("all", "default"):
            sh("sysctl", "-qw", f"net.ipv4.conf.{conf}.send_redirects=0", ns=n)
        self.mac = {}
        for itf in self.sc["node"]["interfaces"]:
            name = itf["name"]
            sh("ip", "-n", n, "link", "add", name, "type", "veth", "peer", "name", "p" + name, "netns", self.peer)
            # No ARP anywhere: a frame leaves towards whatever the route says and is captured at
            # the peer; nothing needs to answer.
            sh("ip", "-n", n, "link", "set", name, "arp", "off", "up")
            sh("ip", "-n", self.peer, "link", "set", "p" + name, "arp", "off", "up")
            sh("sysctl", "-qw", f"net/ipv4/conf/{name}/rp_filter=0", ns=n)  # slashes: names may hold dots (eth0.2)
            # Link-local addresses are the kernel's own (from the MAC, made when the link comes up):
            # a saved case's are dropped and the new ones read back below.
            itf["addresses"] = [a for a in itf.get("addresses", []) if not a.lower().startswith("fe80:")]
            for a in itf["addresses"]:
                sh("ip", "-n", n, "addr", "add", a, "dev", name, *(["nodad"] if ":" in a else []))
            info = json.loads(sh("ip", "-n", n, "-j", "link", "show", name).stdout)[0]
            self.mac[name] = info["address"]

        if v6:
            self.read_link_local()
        for r in self.sc["node"].get("routes", []):
            args = ["ip", "-n", n, "route", "replace", r["dst"], "dev", r["dev"]]
            if r.get("via"):
                args += ["via", r["via"], "onlink"]
            sh(*args)
        for k, v in self.sc["node"].get("sysctls", {}).items():
            sh("sysctl", "-qw", f"{k}={v}", ns=n)
        if self.sc.get("ipsets"):
            sh("ipset", "restore", ns=n, input=self.sc["ipsets"])
        if self.backend == "nftables":
            # kube-proxy's nftables mode: its transaction through nft -f, and whatever iptables
            # rules the node also has (a policy engine's) through iptables-nft.
            if self.sc.get("rules"):
                sh("iptables-nft-restore", ns=n, input=self.sc["rules"])
            sh("nft", "-f", "-", ns=n, input=self.sc["nft"])
        else:
            sh(f"iptables-{self.backend}-restore", ns=n, input=self.sc["rules_traced"])
            if v6:
                sh(f"ip6tables-{self.backend}-restore", ns=n, input=self.sc["rules6_traced"])
        for ns in (self.node, self.peer):
            self.agents[ns] = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, os.path.join(HERE, "netns_agent.py")],
                                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.ask(self.peer, {"op": "open", "ifaces": ["p" + i["name"] for i in self.sc["node"]["interfaces"]]})
        for itf in self.sc["node"]["interfaces"]:
            for g in itf.get("multicast_groups", []):
                self.ask(self.node, {"op": "join", "iface": itf["name"], "group": g})
        if self.backend == "nft":
            self.trace_file = tempfile.NamedTemporaryFile("w+", suffix=".trace")
            self.monitor = subprocess.Popen(["ip", "netns", "exec", n, "xtables-monitor", "--trace"],
                                            stdout=self.trace_file, stderr=subprocess.STDOUT)
            time.sleep(0.3)
        return self

    def read_link_local(self):
        """svcpath gets the node as it is, link-local addresses included (its source for answers to
        fe80:: hosts). The kernel makes them once a veth has carrier, which linkwatch reports a
        moment later: wait for every interface's (at most 2 s)."""
        want = {itf["name"]: itf for itf in self.sc["node"]["interfaces"]}
        found = {}
        for _ in range(40):
            for ai in json.loads(sh("ip", "-n", self.node, "-j", "-6", "addr", "show", "scope", "link").stdout or "[]"):
                for a in ai.get("addr_info", []):
                    if ai.get("ifname") in want and a.get("local", "").startswith("fe80:"):
                        found[ai["ifname"]] = f"{a['local']}/{a['prefixlen']}"
            if len(found) == len(want):
                break
            time.sleep(0.05)
        for name, a in found.items():
            want[name]["addresses"].append(a)

    def ask(self, ns, cmd):
        a = self.agents[ns]
        a.stdin.write(json.dumps(cmd) + "\n")
        a.stdin.flush()
        return json.loads(a.stdout.readline())

    def send(self, p, ipid, wait=0.06):
        pkt = build_ip(p, ipid)
        if p.get("in") is None:
            self.ask(self.node, {"op": "ip6" if is_v6(p) else "ip", "hex": pkt.hex()})
        else:
            dst_mac = bytes.fromhex(self.mac[p["in"]].replace(":", ""))
            frame = dst_mac + bytes.fromhex("020000000001") + (b"\x86\xdd" if is_v6(p) else b"\x08\x00") + pkt
            self.ask(self.peer, {"op": "frame", "iface": "p" + p["in"], "hex": frame.hex()})
        frames = self.ask(self.peer, {"op": "drain", "wait": wait})["frames"]
        if self.backend == "legacy" and KLOG:
            for k, v in KLOG.read().items():
                self.legacy_traces.setdefault(k, []).extend(v)
        return [(f["iface"][1:], parse_ip(bytes.fromhex(f["hex"])[14:])) for f in frames
                if bytes.fromhex(f["hex"])[12:14] in (b"\x08\x00", b"\x86\xdd")]

    def own_walk(self, ipid, events):
        """A packet's own TRACE lines: the kernel reuses trace ids (skb addresses), so an answer the
        node sends straight after (an echo reply, a reset) can be logged under the packet's id.
        Such a packet starts at the raw OUTPUT TRACE rule: an arriving packet never meets it, one
        the node sent meets it once."""
        i = ipid - IPID_BASE
        local = 0 <= i < len(self.sc["packets"]) and self.sc["packets"][i].get("in") is None
        seen = 0
        for n, e in enumerate(events):
            if e[0] == "raw" and e[1] == "OUTPUT" and "-j TRACE" in (e[-1] or ""):
                seen += 1
                if seen > (1 if local else 0):
                    return events[:n]
        return events

    def traces(self):
        """ipid -> [(table, chain, kind, rule text or number)]: xtables-monitor for nft, the
        kernel log for legacy (rule numbers, resolved to text from the kernel's own save)."""
        if self.backend == "nftables":
            return None  # nft monitor trace names no rule handles and skips nat chains: outcomes only
        if self.backend == "legacy":
            if not KLOG:
                return None
            time.sleep(0.1)
            for k, v in KLOG.read().items():
                self.legacy_traces.setdefault(k, []).extend(v)
            chains = {}
            for fam, tool in ((4, "iptables-legacy-save"), (6, "ip6tables-legacy-save")):
                table = None
                for line in sh(tool, ns=self.node).stdout.splitlines():
                    if line.startswith("*"):
                        table = line[1:]
                    elif line.startswith("-A "):
                        chains.setdefault((fam, table, line.split()[1]), []).append(line)
            out = {}
            fam_of = {IPID_BASE + i: (6 if is_v6(p) else 4) for i, p in enumerate(self.sc["packets"])}
            for ipid, evs in self.legacy_traces.items():
                lst = []
                for t, c, kind, num in evs:
                    rules = chains.get((fam_of.get(ipid, 4), t, c), [])
                    text = rules[num - 1] if kind != "policy" and 0 < num <= len(rules) else ""
                    lst.append((t, c, kind, num, text))
                out[ipid] = self.own_walk(ipid, lst)
            return out
        if not self.monitor:
            return None
        time.sleep(0.3)
        self.monitor.terminate()
        self.monitor.wait()
        self.trace_file.seek(0)
        raw_text = self.trace_file.read()
        if VERBOSE:
            os.makedirs(os.path.join(SRC, "build/kernel-diff"), exist_ok=True)
            open(os.path.join(SRC, "build/kernel-diff", "last-nft-trace.txt"), "w").write(raw_text)
        by_id, ipid_of = {}, {}
        for line in raw_text.splitlines():
            m = re.match(r"\s*PACKET: \d+ ([0-9a-f]+) .*?\b(?:ID|FLOWLBL)=(\d+)", line)
            if m:
                # The id comes from the skb's address, so a later packet can reuse it: each
                # PACKET line says which packet the following TRACE lines belong to.
                ipid_of[m.group(1)] = int(m.group(2))
                continue
            m = re.match(r"\s*TRACE: \d+ ([0-9a-f]+) (\S+)(?:\s+(.*))?$", line)
            if not m or m.group(1) not in ipid_of:
                continue
            parts = m.group(2).split(":")
            table, chain, kind = parts[0], parts[1], parts[2]
            text = (m.group(3) or "").strip()
            text = re.sub(r"^-[46] -t \S+ ", "", text)
            by_id.setdefault(ipid_of[m.group(1)], []).append((table, chain, kind, text if kind == "rule" else ""))
        return {k: self.own_walk(k, v) for k, v in by_id.items()}

    def __exit__(self, *exc):
        for a in self.agents.values():
            a.stdin.close()
            a.wait()
        if self.monitor and self.monitor.poll() is None:
            self.monitor.kill()
        for ns in (self.node, self.peer):
            sh("ip", "netns", "del", ns, check=False)


def kernel_outcome(p, ipid, captured, trace):
    """What the kernel did with one packet: forwarded (as captured), rejected with the answer that
    reached the wire (a TCP reset or an ICMP error quoting the packet: where it left and its
    addresses), or not seen."""
    for iface, d in captured:
        if d and d["id"] == ipid and d["proto"] == ({58: 1}.get(proto_num(p), proto_num(p)) if is_v6(p) else proto_num(p)):
            return {"verdict": "forwarded", "out": iface, "src": d["src"], "dst": d["dst"],
                    "sport": d.get("sport"), "dport": d.get("dport")}
    for iface, d in captured:
        if not d:
            continue
        inner = d.get("inner")
        answer = {"out": iface, "src": d["src"], "dst": d["dst"]}
        if d["proto"] == 1 and inner and inner["id"] == ipid:
            answer.update({"type": d["type"], "code": d["code"], "quoted_dst": inner["dst"], "quoted_dport": inner.get("dport")})
            return {"verdict": "rejected", "with": f"icmp type {d['type']} code {d['code']}", "answer": answer}
        if d["proto"] == 6 and d.get("flags", 0) & 4 and d["dst"] == p["src"] and d.get("dport") == p.get("sport"):
            answer.update({"sport": d.get("sport"), "dport": d.get("dport")})
            return {"verdict": "rejected", "with": "tcp-reset", "answer": answer}
    return {"verdict": "not seen"}


def kernel_outcome_traced(p, ipid, captured, trace):
    """With the kernel's path known, a reset or ICMP error counts as REJECT only when the path ends
    in a REJECT rule; otherwise it is the local stack answering a delivered packet (no listener).
    A path ending in REJECT with no answer on the wire is "rejected" with answer None: the answer
    died on its own way out (OUTPUT or POSTROUTING dropped it, or it went to a local address)."""
    ko = kernel_outcome(p, ipid, captured, trace)
    if trace is None and ko["verdict"] == "not seen" and p.get("in") is None:
        # A locally sent packet rejected in OUTPUT: the ICMP error goes back to the local stack,
        # never to the wire, so without the path "not seen" may also be a REJECT.
        return {"verdict": "not seen or rejected"}
    if trace is None and ko["verdict"] == "rejected":
        # Without the path, a reset or port-unreachable may be REJECT or the local stack
        # answering a delivered packet that found no listener.
        return {"verdict": "rejected or delivered", "with": ko["with"], "answer": ko["answer"]}
    if ko["verdict"] == "forwarded" or trace is None:
        return ko
    last_text = trace[-1][-1] if trace else ""
    if re.search(r"-j REJECT\b", last_text):
        return {"verdict": "rejected", "with": ko.get("with", "none seen"), "answer": ko.get("answer")}
    # No rule rejected it: nothing left the node, or the kernel itself answered (a forwarded
    # link-local source, ip6_forward's ICMPv6 beyond scope) -- svcpath says dropped, or rejected
    # with that very answer.
    return {"verdict": "not seen", "answered": ko.get("answer")}


# ---------------------------------------------------------------------------------- svcpath

def svcpath_outcomes(binary, sc, workdir, backend=None):
    node = os.path.join(workdir, "node.yaml")
    json.dump(sc["node"], open(node, "w"))
    specs = os.path.join(workdir, "packets")
    open(specs, "w").write("".join(spec_of(p) + "\n" for p in sc["packets"]))
    args = [binary, "trace", "--node-config", node, "--packets", specs, "--format", "json"]
    text = sc.get("svcpath_rules_traced", sc["rules_traced"])
    if text:
        rules = os.path.join(workdir, "rules")
        open(rules, "w").write(text)
        args += ["--rules", rules]
    # The back end the kernel side loaded the dump with: iptables-nft and -legacy differ in which
    # built-in chains exist and where the security table sits.
    if backend in ("nft", "legacy") and (text or sc.get("rules6")):
        args += ["--iptables-backend", backend]
    if sc.get("nft"):
        nft = os.path.join(workdir, "ruleset.nft")
        open(nft, "w").write(sc.get("svcpath_nft", sc["nft"]))
        args += ["--nft", nft]
    if sc.get("rules6"):
        rules6 = os.path.join(workdir, "rules6")
        open(rules6, "w").write(sc["rules6_traced"])
        args += ["--rules6", rules6]
    # Independent packets: every outcome. A connection's packets in order: sampled, so conntrack
    # carries over (those scenarios have one outcome per packet).
    if not sc.get("sequential"):
        args.append("--enumerate")
    if sc.get("ipsets"):
        sets = os.path.join(workdir, "ipsets")
        open(sets, "w").write(sc["ipsets"])
        args += ["--ipsets", sets]
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"svcpath trace failed: {p.stderr.strip()}")
    return [json.loads(l) for l in p.stdout.splitlines() if l.strip()]


def svc_trace_legacy(o):
    """svcpath's path as the legacy kernel logs it: (table, chain, kind, number, rule text), without
    the first TRACE rule (it sets nf_trace, so the kernel logs from the next step on; a packet
    looped back through lo is already marked, and its second TRACE rule is logged)."""
    keep = []
    marked = False
    for e in o["trace"]:
        if e.get("answer"):
            continue
        if e["kind"] not in ("rule", "return", "policy") or e["table"] not in ("raw", "mangle", "nat", "filter", "security"):
            continue
        if not marked and e["table"] == "raw" and e.get("target") == "TRACE":
            marked = True
            continue
        text = e.get("detail", "") if e["kind"] != "policy" else ""
        keep.append((e["table"], e["chain"], e["kind"], e["rule"], text if text.startswith("-A ") else ""))
    return keep


def same_path(backend, o, ktrace):
    return (svc_trace_legacy(o) if backend == "legacy" else svc_trace(o)) == ktrace


def svc_trace(o):
    """svcpath's path in nft's trace vocabulary. svcpath numbers and labels steps as the legacy
    kernel's TRACE does (ipt_do_table calls any unconditional standard verdict "return" in a user
    chain and "policy" in a built-in one, even an explicit `-A F0 -j DROP`, and logs falling off a
    user chain as "return"); nft calls every rule a "rule" and does not report the implicit
    return."""
    keep = []
    for e in o["trace"]:
        if e.get("answer"):
            continue
        if e["kind"] not in ("rule", "return", "policy") or e["table"] not in ("raw", "mangle", "nat", "filter", "security"):
            continue
        text = e.get("detail", "")
        explicit = text.startswith("-A ")
        if e["kind"] == "rule" or explicit:
            keep.append((e["table"], e["chain"], "rule", text))
        elif e["kind"] == "policy":
            keep.append((e["table"], e["chain"], "policy", ""))
    return keep


def split_ep(ep):
    if ep.startswith("["):
        a, _, port = ep[1:].partition("]:")
        return a, int(port)
    if ep.count(":") > 1:
        return ep, None
    a, _, port = ep.rpartition(":")
    return (a, int(port)) if a and port.isdigit() else (ep, None)


def answer_left(o):
    """svcpath's answer to a rejected packet when it reached the wire, else None."""
    a = o.get("answer")
    return a if o["verdict"] == "rejected" and a and a["verdict"] == "forwarded" else None


def answer_matches(ka, o):
    """The kernel's answer on the wire (None: none seen) against svcpath's: the interface, the
    addresses, a reset's ports, an ICMP error's type, code and quoted destination (de-NATed)."""
    a = answer_left(o)
    if ka is None or a is None:
        return ka is None and a is None
    src, sport = split_ep(a["src"])
    dst, dport = split_ep(a["dst"])
    if (ka["out"], ka["src"], ka["dst"]) != (a["out"], src, dst):
        return False
    if "sport" in ka and (ka["sport"], ka["dport"]) != (sport, dport):
        return False
    if "type" in ka:
        if (ka["type"], ka["code"]) != (a.get("icmp_type"), a.get("icmp_code")):
            return False
        qdst, qport = split_ep(a["quoted"]["dst"])
        if ka["quoted_dst"] != qdst or (ka["quoted_dport"] is not None and ka["quoted_dport"] != qport):
            return False
    return True


def matches(k, o):
    if k["verdict"] == "not seen":
        if o["verdict"] == "rejected":
            return answer_matches(k.get("answered"), o)
        return o["verdict"] in ("dropped", "delivered")
    if k["verdict"] == "not seen or rejected":
        return o["verdict"] in ("dropped", "delivered", "rejected")
    if k["verdict"] == "rejected or delivered":
        return o["verdict"] == "delivered" or (o["verdict"] == "rejected" and answer_matches(k["answer"], o))
    if k["verdict"] != o["verdict"]:
        return False
    if k["verdict"] == "rejected":
        return answer_matches(k.get("answer"), o)
    if k["verdict"] != "forwarded":
        return True
    src, sport = split_ep(o["src"])
    dst, dport = split_ep(o["dst"])
    if (k["out"], k["src"], k["dst"]) != (o["out"], src, dst):
        return False
    if k["dport"] is not None and k["dport"] != dport:
        return False
    # A port chosen by SNAT/MASQUERADE (random-fully) is the kernel's pick; anything else must agree.
    return o["snat"] or k["sport"] is None or k["sport"] == sport


def with_trace_rules(rules):
    """The ruleset with -j TRACE first in raw PREROUTING and OUTPUT, for kernel and svcpath alike."""
    out, in_raw, added = [], False, False
    for line in rules.splitlines():
        if line.startswith("*raw"):
            in_raw = True
        if in_raw and line == "COMMIT" and not added:
            out += ["-I PREROUTING 1 -j TRACE", "-I OUTPUT 1 -j TRACE"]
            added = True
        out.append(line)
    text = "\n".join(out) + "\n"
    if not added:
        text = "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -j TRACE\n-A OUTPUT -j TRACE\nCOMMIT\n" + text
    return text


# ---------------------------------------------------------------------------------- the run

def compare(binary, sc, backend, tag):
    """Runs sc's packets through the kernel (one back end: legacy, nft or nftables) and through
    svcpath; one dict per packet: p, ipid, kernel (outcome), ktrace (None when the path is not
    known), svcpath (outcomes), hit (svcpath's outcomes the kernel's matches), problem (None when
    they agree)."""
    sc["rules_traced"] = with_trace_rules(sc["rules"]) if backend != "nftables" else sc["rules"]
    if sc.get("rules6"):
        sc["rules6_traced"] = with_trace_rules(sc["rules6"])
    if "svcpath_rules" in sc:
        sc["svcpath_rules_traced"] = with_trace_rules(sc["svcpath_rules"])
    for i, p in enumerate(sc["packets"]):
        p.setdefault("sport", 20000 + i)
    work = tempfile.mkdtemp(prefix="svpd-")
    try:
        with Kernel(sc, backend, tag) as k:
            captured = []
            for i, p in enumerate(sc["packets"]):
                if "reply_to" in p:  # answer from the backend to wherever the kernel sent the first packet
                    first = captured[p["reply_to"]]
                    fwd = [d for _, d in first if d and d["id"] == IPID_BASE + p["reply_to"]]
                    if fwd:
                        p["dst"], p["dport"] = fwd[0]["src"], fwd[0]["sport"]
                    else:
                        p["dport"] = 1
                captured.append(k.send(p, IPID_BASE + i))
                if sc.get("progress"):
                    sc["progress"](i + 1, len(sc["packets"]))
            traces = k.traces()
        svc = svcpath_outcomes(binary, sc, work, backend)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results = []
    for i, p in enumerate(sc["packets"]):
        ipid = IPID_BASE + i
        ktrace = traces.get(ipid) if traces is not None else None
        if traces is not None and not ktrace and kernel_outcome(p, ipid, captured[i], None)["verdict"] != "not seen":
            # A packet the kernel forwarded or answered met the raw table's TRACE rule, so no event
            # at all means the monitor lost them (netlink overrun or a dropped log line on a loaded
            # machine): compare the outcome only, as for a back end without traces.
            ktrace = None
        if backend == "nft" and is_v6(p):
            # xtables-monitor 1.8.9 cannot print ip6 rules with a protocol match ("unsupported
            # layer 4 protocol value") and stops tracing; legacy's log covers IPv6 paths.
            ktrace = None
        ko = kernel_outcome_traced(p, ipid, captured[i], ktrace)
        outs = svc[i]["outcomes"]
        hit = [o for o in outs if matches(ko, o)]
        problem = None
        if not hit:
            problem = "the kernel's outcome is not one of svcpath's"
        elif ktrace is not None and not any(same_path(backend, o, ktrace) for o in hit):
            problem = "TRACE paths differ"
        results.append({"p": p, "ipid": ipid, "kernel": ko, "ktrace": ktrace, "svcpath": outs, "hit": hit, "problem": problem})
    return results


def path_lines(backend, r):
    """(kernel path, svcpath path) of one compare() result as text lines, in the trace vocabulary
    of the back end; the svcpath side is the outcome the kernel's matched (or the first)."""
    kern = [":".join(str(x) for x in t[:-1]) + " " + t[-1] for t in (r["ktrace"] or [])]
    mine = svc_trace_legacy if backend == "legacy" else svc_trace
    o = (r["hit"] or r["svcpath"])[0]
    return kern, o["verdict"], [":".join(str(x) for x in t[:-1]) + " " + t[-1] for t in mine(o)]


def fmt_svcpath(o):
    """One svcpath outcome for a disagreement report, with its REJECT answer's fate."""
    a = o.get("answer")
    ans = ""
    if a:
        fate = f"left out={a['out']}" if a["verdict"] == "forwarded" else a["verdict"] + (f" at {a['where']}" if a.get("where") else "")
        ans = f"; answer {a['what']} {a['src']} -> {a['dst']} {fate}"
    return f"{o['verdict']} {o['src']} -> {o['dst']} out={o['out']} p={o['probability']:.4f}{ans}"


def run_scenario(binary, sc, backend, tag, report, savedir):
    """compare() with the differential test's report: each disagreement in full, saved under savedir
    as a regression case (no saving when savedir is None). Returns (packets, disagreements)."""
    failures = 0
    for i, r in enumerate(compare(binary, sc, backend, tag)):
        p, ko, ktrace, outs = r["p"], r["kernel"], r["ktrace"], r["svcpath"]
        if VERBOSE:
            report(f"  {spec_of(p)}: kernel {json.dumps(ko)}; trace {len(ktrace or [])} steps: "
                   + " | ".join(":".join(str(x) for x in t[:-1]) for t in (ktrace or [])))
        if not r["problem"]:
            continue
        failures += 1
        report(f"FAIL: {sc['name']} [{backend}] packet {spec_of(p)}: {r['problem']}")
        report(f"  kernel:  {json.dumps(ko)}")
        for o in outs:
            report(f"  svcpath: {fmt_svcpath(o)}")
        if ktrace is not None:
            kern, verdict, mine = path_lines(backend, r)
            report("  kernel trace:")
            for line in kern:
                report("    " + line)
            report("  svcpath trace (" + verdict + "):")
            for line in mine:
                report("    " + line)
        if savedir:
            os.makedirs(savedir, exist_ok=True)
            base = os.path.join(savedir, re.sub(r"[^a-z0-9]+", "-", f"{sc['name']}-{backend}-{i}".lower()))
            json.dump({"scenario": {k2: v for k2, v in sc.items() if k2 not in ("rules_traced", "progress")}, "packet": p,
                       "kernel": ko, "kernel_trace": ktrace, "svcpath": outs}, open(base + ".json", "w"), indent=1)
            report(f"  saved {base}.json")
    return len(sc["packets"]), failures
