#!/usr/bin/env python3
"""Hostile and broken input, one row per case: the input bytes, the svcpath command that reads
them, the exact stderr (file:line[:col]: error: message) and the exit status. Run from a scratch
directory so messages name files as the user typed them.

    tests/cli/bad_input.py BUILD/svcpath [--sanitized]   every case; prints ok/FAIL/SKIP per case

--sanitized: the binary runs under ASan, which needs the address-space cap off; the --max-memory row
is skipped, loudly.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NODES = os.path.join(SRC, "examples/clusters/nodes.yaml")
FIREWALL = os.path.join(SRC, "examples/rulesets/firewall.rules")
PCAP = os.path.join(SRC, "examples/pcaps/basic-node-a.pcap")


def rules(body):
    return b"*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n" + body + b"COMMIT\n"


def pcap_records():
    data = open(PCAP, "rb").read()
    return data[:24], data[24:]


def absurd_caplen():
    hdr, rec = pcap_records()
    sec, frac, _, orig = struct.unpack("<IIII", rec[:16])
    return hdr + struct.pack("<IIII", sec, frac, 0x7FFFFFFF, orig) + rec[16:]


def alias_bomb():
    # 4 KiB of YAML that a naive reader would expand into 200 * 200 * 100 * 100 addresses.
    addrs = "[" + ",".join(f"10.0.{i // 250}.{i % 250 + 1}" for i in range(200)) + "]"
    lines = [
        "kind: List", "items:",
        f"- &a {addrs}",
        "- &e {addresses: *a}",
        "- &es [" + ",".join(["*e"] * 200) + "]",
        "- &s {kind: EndpointSlice, metadata: {name: s, namespace: d, labels: {kubernetes.io/service-name: x}},"
        " addressType: IPv4, endpoints: *es}",
        "- &l1 {kind: List, items: [" + ",".join(["*s"] * 100) + "]}",
        "- {kind: List, items: [" + ",".join(["*l1"] * 100) + "]}",
    ]
    return ("\n".join(lines) + "\n").encode()


SERVICE = b"kind: Service\nmetadata: {name: web, namespace: demo}\nspec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}\n"
CLUSTER = ["rules", "--node", "node-a", "--cluster", NODES, "--cluster", "{f}"]
REPLAY = ["replay", "--rules", FIREWALL, "--pcap", "{f}"]

# (name, file name, bytes, argv with {f} for the file, exact stderr, exit status)
CASES = [
    # iptables-save
    ("iptables: truncated file", "t.rules", b"*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 10.0.0",
     ["rules", "--rules", "{f}"],
     "t.rules:3:13: error: '10.0.0' is not an IP address: expected four decimal octets a.b.c.d\n"
     "t.rules:1: error: table 'filter' opened here has no COMMIT", 1),
    ("iptables: missing COMMIT", "t.rules", b"*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\n",
     ["rules", "--rules", "{f}"], "t.rules:1: error: table 'filter' opened here has no COMMIT", 1),
    ("iptables: rule before table", "t.rules", b"-A INPUT -j ACCEPT\n*filter\nCOMMIT\n",
     ["rules", "--rules", "{f}"], "t.rules:1:1: error: '-A' outside a table: the input must start with *table", 1),
    # -R with nothing after the chain read past the end of the line's words (a garbage column).
    ("iptables: -R without a rule number", "t.rules", rules(b"-R INPUT\n"),
     ["rules", "--rules", "{f}"], "t.rules:4:4: error: -R needs a rule number", 1),
    # kube-proxy refuses a scheduler the kernel does not have (validateIPVSSchedulerMethod).
    ("proxy config: unknown ipvs.scheduler", "pc.yaml",
     b"apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\nipvs:\n  scheduler: fastest\n",
     ["rules", "--node", "node-a", "--cluster", NODES, "--proxy-config", "{f}"],
     "pc.yaml:5:14: error: ipvs.scheduler: unknown scheduler 'fastest' (rr, wrr, lc, wlc, sed, nq, sh, dh, mh)", 1),
    ("iptables: unknown match", "t.rules", rules(b"-A INPUT -m bogus --x 1 -j ACCEPT\n"),
     ["rules", "--rules", "{f}"], "t.rules:4:13: error: unsupported match 'bogus'", 1),
    ("iptables: unknown target", "t.rules", rules(b"-A INPUT -j BOGUS\n"),
     ["rules", "--rules", "{f}"],
     "t.rules:4: error: unsupported target 'BOGUS' (and no chain of that name in table 'filter')", 1),
    ("iptables: bad CIDR", "t.rules", rules(b"-A INPUT -s 10.0.0.0/33 -j ACCEPT\n"),
     ["rules", "--rules", "{f}"], "t.rules:4:13: error: '10.0.0.0/33': prefix length must be 0..32", 1),
    ("iptables: port out of range", "t.rules", rules(b"-A INPUT -p tcp --dport 70000 -j ACCEPT\n"),
     ["rules", "--rules", "{f}"], "t.rules:4:25: error: '70000' is not a port or port range (0-65535, lo:hi)", 1),
    ("iptables: probability out of [0,1]", "t.rules",
     b"*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m statistic --mode random --probability 1.5 -j ACCEPT\nCOMMIT\n",
     ["rules", "--rules", "{f}"], "t.rules:3:56: error: statistic: probability '1.5' is not a number in [0, 1]", 1),
    ("iptables: goto a missing chain", "t.rules", rules(b"-A INPUT -g NOPE\n"),
     ["rules", "--rules", "{f}"],
     "t.rules:4: error: jump to chain 'NOPE', which does not exist in table 'filter'", 1),
    ("iptables: jump loop", "t.rules", rules(b":A - [0:0]\n:B - [0:0]\n-A INPUT -j A\n-A A -j B\n-A B -j A\n"),
     ["rules", "--rules", "{f}"], "t.rules:8: error: jump loop: A -> B -> A (the kernel rejects this table with ELOOP)", 1),
    ("iptables: jumps nested too deep", "t.rules",
     rules(b"".join(b":C%d - [0:0]\n" % i for i in range(100)) + b"-A INPUT -j C0\n" +
           b"".join(b"-A C%d -j C%d\n" % (i, i + 1) for i in range(99))),
     ["rules", "--rules", "{f}"], "t.rules:1: error: table 'filter' nests user-chain jumps 100 deep; svcpath supports at most 60", 1),
    ("iptables: duplicate chain", "t.rules", rules(b":A - [0:0]\n:A - [0:0]\n"),
     ["rules", "--rules", "{f}"],
     "t.rules:5:2: error: chain 'A' is declared twice; previously declared at line 4\n"
     "t.rules:4:2: error: note: chain 'A' previously declared here", 1),
    ("iptables: gigantic line", "t.rules", rules(b"-A INPUT" + b" -s 10.0.0.1" * 100000 + b" -j ACCEPT\n"),
     ["rules", "--rules", "{f}"], "t.rules:4: error: line is 1200018 bytes long; the limit is 65536", 1),
    ("iptables: NUL byte", "t.rules", rules(b"-A INPUT -m comment --comment \"a\0b\" -j ACCEPT\n"),
     ["rules", "--rules", "{f}"], "t.rules:4:33: error: NUL byte in input", 1),
    ("iptables: IPv6 address in an IPv4 dump", "t.rules", rules(b"-A INPUT -d fd00::1 -j ACCEPT\n"),
     ["rules", "--rules", "{f}"], "t.rules:4:13: error: 'fd00::1' is an IPv6 address in an IPv4 ruleset", 1),
    ("iptables: comment longer than the kernel keeps", "t.rules",
     rules(b"-A INPUT -m comment --comment " + b"x" * 300 + b" -j ACCEPT\n"),
     ["rules", "--rules", "{f}"], "t.rules:4:31: error: comment is 300 bytes; the kernel allows at most 255", 1),
    ("iptables: more than --max-memory allows", "big.rules",
     rules(b"".join(b"-A INPUT -s 10.%d.%d.%d -p tcp --dport %d -j ACCEPT\n" % (i >> 16, (i >> 8) & 255, i & 255, i % 65535 + 1)
                    for i in range(300000))),
     ["--max-memory", "100", "rules", "--rules", "{f}"],
     "svcpath: error: out of memory: the input needs more than the 100 MiB cap (--max-memory; 0 lifts it)", 1),
    ("iptables: a directory", ".", None, ["rules", "--rules", "{f}"],
     "--rules: File is actually a directory: .\nRun with --help for more information.", 2),
    # nft -f / nft list ruleset
    ("nft: truncated table", "t.nft", b"table ip t {\n  chain c {\n    ip daddr 10.0.0.1 accept\n",
     ["rules", "--nft", "{f}"], "t.nft:4:1: error: missing '}' at the end of chain c", 1),
    ("nft: jump to a missing chain", "t.nft", b"table ip t {\n  chain c {\n    jump nowhere\n  }\n}\n",
     ["rules", "--nft", "{f}"], "t.nft:3: error: chain c: no chain 'nowhere' in table ip t", 1),
    ("nft: priority name on the wrong hook", "t.nft",
     b"add table ip t\nadd chain ip t c { type filter hook input priority dstnat ; }\n",
     ["rules", "--nft", "{f}"],
     "t.nft:2:52: error: priority 'dstnat' is valid on the prerouting and output hooks only (nft: invalid priority "
     "expression value in this context)", 1),
    ("nft: key of the wrong type", "t.nft",
     b"table ip t {\n  map m {\n    type ipv4_addr . inet_proto . inet_service : verdict\n"
     b"    elements = { 10.0.0.1 . tcp . http-alt : drop }\n  }\n}\n",
     ["rules", "--nft", "{f}"], "t.nft:4:35: error: 'http-alt' is not a port", 1),
    ("nft: expression and set disagree", "t.nft",
     b"table ip t {\n  set s { type ipv4_addr; }\n  chain c { tcp dport @s accept; }\n}\n",
     ["rules", "--nft", "{f}"], "t.nft:3: error: 's' holds ipv4_addr, the expression gives inet_service", 1),
    ("nft: chains nested past the kernel's stack", "t.nft",
     b"table ip t {\n chain b { type filter hook input priority 0; jump c0; }\n" +
     b"".join(b" chain c%d { jump c%d; }\n" % (i, i + 1) for i in range(16)) + b" chain c16 { accept; }\n}\n",
     ["rules", "--nft", "{f}"], "t.nft:2: error: chains below base chain 'b' nest 17 deep; the kernel allows 15 (NFT_JUMP_STACK_SIZE)", 1),
    ("nft: a family svcpath does not simulate", "t.nft", b"table netdev ingress {\n}\n",
     ["rules", "--nft", "{f}"],
     "t.nft:1:7: error: family 'netdev' is not modelled (svcpath simulates the ip, ip6 and inet families)", 1),
    ("nft: NUL byte", "t.nft", b"table ip t {\n  chain c { accept\0; }\n}\n",
     ["rules", "--nft", "{f}"], "t.nft:2:19: error: control character 0x00 in the input", 1),
    ("nft: trace with a broken ruleset", "t.nft", b"add rule ip t c accept\n",
     ["trace", "--nft", "{f}", "--packet", "tcp 10.0.0.1:1 -> 10.0.0.2:80"],
     "t.nft:1:10: error: no table ip t (add it first)", 1),
    # ipset save
    ("ipset: add to a set never created", "s.ipsets", b"add KUBE-X 10.0.0.1\n",
     ["rules", "--ipsets", "{f}"], "s.ipsets:1:5: error: the set 'KUBE-X' does not exist", 1),
    ("ipset: unknown type", "s.ipsets", b"create KUBE-X hash:bogus\n", ["rules", "--ipsets", "{f}"],
     "s.ipsets:1:15: error: unsupported set type 'hash:bogus' (hash:ip, hash:ip,port, hash:ip,port,ip, "
     "hash:ip,port,net, hash:net, hash:net,port, bitmap:port, list:set)", 1),
    ("ipset: bad address in an element", "s.ipsets",
     b"create KUBE-X hash:ip,port,ip family inet\nadd KUBE-X 10.0.0.1,tcp:80,10.0.0.300\n",
     ["rules", "--ipsets", "{f}"], "s.ipsets:2:12: error: '10.0.0.300' is not an IP address: expected four decimal octets a.b.c.d", 1),
    ("ipset: element of the wrong shape", "s.ipsets", b"create KUBE-X hash:ip family inet\nadd KUBE-X 10.0.0.1,tcp:80\n",
     ["rules", "--ipsets", "{f}"], "s.ipsets:2:12: error: '10.0.0.1,tcp:80' has 2 part(s); hash:ip elements have 1", 1),
    ("ipset: more elements than maxelem", "s.ipsets",
     b"create KUBE-X hash:ip family inet maxelem 2\nadd KUBE-X 10.0.0.1\nadd KUBE-X 10.0.0.2\nadd KUBE-X 10.0.0.3\n",
     ["rules", "--ipsets", "{f}"], "s.ipsets:4:12: error: set KUBE-X is full: maxelem 2 reached", 1),
    ("ipset: maxelem beyond 32 bits", "s.ipsets", b"create KUBE-X hash:ip family inet maxelem 99999999999\n",
     ["rules", "--ipsets", "{f}"], "s.ipsets:1:43: error: '99999999999' is not a valid value for maxelem", 1),
    # ipvsadm-save
    ("ipvsadm: unknown scheduler", "v.ipvs", b"-A -t 10.0.0.1:80 -s bogus\n",
     ["trace", "--ipvs", "{f}", "-p", "tcp 1.1.1.1:1 -> 10.0.0.1:80"],
     "v.ipvs:1:22: error: unknown scheduler 'bogus' (rr, wrr, lc, wlc, sed, nq, sh, dh, mh)", 1),
    ("ipvsadm: realserver before its service", "v.ipvs", b"-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 1\n",
     ["trace", "--ipvs", "{f}", "-p", "tcp 1.1.1.1:1 -> 10.0.0.1:80"],
     "v.ipvs:1:1: error: the real server's virtual service does not exist (add it first with -A)", 1),
    ("ipvsadm: port out of range", "v.ipvs", b"-A -t 10.0.0.1:99999 -s rr\n",
     ["trace", "--ipvs", "{f}", "-p", "tcp 1.1.1.1:1 -> 10.0.0.1:80"],
     "v.ipvs:1:7: error: '10.0.0.1:99999': port must be 0..65535", 1),
    # Kubernetes manifests
    ("manifest: YAML syntax error", "k.yaml", b"kind: Service\nmetadata: {name: web\n", CLUSTER,
     "k.yaml:3:1: error: end of map flow not found", 1),
    ("manifest: string where an integer belongs", "k.yaml",
     b"kind: Service\nmetadata: {name: web, namespace: demo}\nspec: {clusterIP: 10.96.0.10, ports: [{port: eighty}]}\n",
     CLUSTER, "k.yaml:3:46: error: spec.ports[0].port: expected integer", 1),
    ("manifest: mapping where a list belongs", "k.yaml",
     b"kind: Service\nmetadata: {name: web, namespace: demo}\nspec: {clusterIP: 10.96.0.10, ports: {port: 80}}\n",
     CLUSTER, "k.yaml:3:38: error: spec.ports: expected a list", 1),
    ("manifest: list where a mapping belongs", "k.yaml", b"kind: Service\nmetadata: [web]\nspec: {}\n", CLUSTER,
     "k.yaml:2:11: error: metadata: expected a mapping", 1),
    ("manifest: scalar where a mapping belongs (fuzz finding)", "k.yaml",
     open(os.path.join(SRC, "tests/data/fuzz/manifest-scalar-spec.yaml"), "rb").read(), CLUSTER,
     "k.yaml:4:7: error: unexpected YAML shape: operator[] call on a scalar (key: \"podCIDRs\")", 1),
    ("manifest: EndpointSlice for a missing Service", "k.yaml",
     b"kind: EndpointSlice\nmetadata: {name: api-1, namespace: demo, labels: {kubernetes.io/service-name: api}}\n"
     b"addressType: IPv4\nendpoints: [{addresses: [10.244.1.9]}]\n", CLUSTER,
     "k.yaml:1: error: EndpointSlice demo/api-1 belongs to Service demo/api, which is not in the input "
     "(give the Service's manifest too)", 1),
    ("manifest: NUL byte", "k.yaml", SERVICE.replace(b"web,", b"w\0b,"), CLUSTER,
     "k.yaml:2:19: error: NUL byte in input", 1),
    ("manifest: invalid UTF-8", "k.yaml", SERVICE.replace(b"web,", b"caf\xe9,"), CLUSTER,
     "k.yaml:2:21: error: byte 0xe9 is not UTF-8 text (YAML and JSON input must be UTF-8)", 1),
    ("manifest: name the API server would refuse", "k.yaml", SERVICE.replace(b"web,", b"\"Web Server\","), CLUSTER,
     "k.yaml:2:18: error: metadata.name: 'Web Server' is not a valid object name "
     "(lowercase letters, digits, '-' and '.', at most 253)", 1),
    ("manifest: alias bomb", "k.yaml", alias_bomb(), CLUSTER,
     "k.yaml:1:1: error: anchors and aliases expand this input past 15576 nodes (4 per byte); "
     "refusing it (an alias bomb?)", 1),
    ("manifest: nested too deep", "k.yaml", b"[" * 1000 + b"]" * 1000 + b"\n", CLUSTER,
     "k.yaml:1:101: error: YAML nested more than 100 levels deep", 1),
    ("manifest: stray comma spins yaml-cpp 0.7 (fuzz finding)", "k.yaml", b"---\n,\n", CLUSTER,
     "k.yaml:2:1: error: unexpected character here (a stray ',', ']' or '}' outside a flow collection?)", 1),
    # node configuration
    ("node config: scalar where a list belongs", "n.yaml", b"interfaces: 5\n",
     ["trace", "--rules", FIREWALL, "--node-config", "{f}", "-p", "tcp 1.2.3.4:1 -> 5.6.7.8:80"],
     "n.yaml:1:13: error: interfaces: expected a list", 1),
    # packet specs
    ("packet spec: port out of range", "p.txt", b"tcp 1.2.3.4:99999 -> 5.6.7.8:80\n",
     ["trace", "--rules", FIREWALL, "--packets", "{f}"], "p.txt:1: error: '1.2.3.4:99999': port must be 0..65535", 1),
    # captures
    ("pcap: bad magic", "c.pcap", b"this is not a capture at all, just text\n", REPLAY,
     "c.pcap: error: not a pcap or pcapng capture (bad magic number)", 1),
    ("pcap: empty file", "c.pcap", b"", REPLAY,
     "c.pcap: error: truncated dump file; tried to read 4 file header bytes, only got 0", 1),
    ("pcap: truncated record", "c.pcap", open(PCAP, "rb").read()[:100], REPLAY,
     "svcpath: warning: c.pcap: frame 2: truncated dump file; tried to read 16 header bytes, only got 14 "
     "(replayed the frames before it)", 3),
    ("pcap: absurd caplen", "c.pcap", absurd_caplen(), REPLAY,
     "svcpath: warning: c.pcap: frame 1: invalid packet capture length 2147483647, bigger than snaplen of 65535 "
     "(replayed the frames before it)", 3),
]

# Accepted on purpose: the kernel's comment match keeps any bytes, so svcpath does too and prints
# them back unchanged (checked below as a round trip, not as an error).
UTF8_COMMENT = rules(b"-A INPUT -m comment --comment \"caf\xe9 \xff\" -j ACCEPT\n")


def noise(line):
    return line.startswith("svcpath: note:") or line.startswith("svcpath: mode ")



def more_rows():
    """Rows kept beside this file, one module per input format (tests/cli/bad_input_rows/*.py, each a
    ROWS list shaped like CASES): formats added later bring their own rows without editing this list."""
    import importlib.util
    import glob
    rows = []
    for path in sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "bad_input_rows", "*.py"))):
        spec = importlib.util.spec_from_file_location("rows_" + os.path.basename(path)[:-3], path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        rows += mod.ROWS
    return rows


CASES += more_rows()

def main():
    binary = os.path.abspath(sys.argv[1])
    sanitized = "--sanitized" in sys.argv[2:]
    failed = skipped = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, fname, data, argv, want_err, want_status in CASES:
            if sanitized and "--max-memory" in argv:
                print(f"SKIP: {name}: the memory cap is off under AddressSanitizer")
                skipped += 1
                continue
            if data is not None:
                with open(os.path.join(tmp, fname), "wb") as f:
                    f.write(data)
            args = [a.replace("{f}", fname) for a in argv]
            try:
                p = subprocess.run([binary] + args, cwd=tmp, capture_output=True, timeout=60)
            except subprocess.TimeoutExpired:
                print(f"FAIL: {name}: no answer within 60 s")
                failed += 1
                continue
            err = "\n".join(l for l in p.stderr.decode(errors="replace").splitlines() if not noise(l))
            problems = []
            if p.returncode != want_status:
                problems.append(f"exit {p.returncode}, expected {want_status}")
            if err != want_err:
                problems.append(f"stderr\n      got: {err!r}\n     want: {want_err!r}")
            if problems:
                failed += 1
                print(f"FAIL: {name}: " + "; ".join(problems))
            else:
                print(f"ok: {name}: {err.splitlines()[0] if err else ''}")

        with open(os.path.join(tmp, "u.rules"), "wb") as f:
            f.write(UTF8_COMMENT)
        p = subprocess.run([binary, "rules", "--rules", "u.rules"], cwd=tmp, capture_output=True, timeout=60)
        if p.returncode == 0 and b"--comment \"caf\xe9 \xff\"" in p.stdout:
            print("ok: iptables: non-UTF-8 comment kept byte for byte, as the kernel keeps it")
        else:
            failed += 1
            print(f"FAIL: iptables: non-UTF-8 comment: exit {p.returncode}, stdout {p.stdout[-200:]!r}")

        # ... and JSON, which must be UTF-8, carries the rule text with U+FFFD in place of the bad bytes.
        with open(os.path.join(tmp, "uo.rules"), "wb") as f:
            f.write(b"*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                    b"-A OUTPUT -m comment --comment \"caf\xe9\" -j ACCEPT\nCOMMIT\n")
        p = subprocess.run([binary, "trace", "--rules", "uo.rules", "--local-ip", "10.0.0.1/24", "--format", "json",
                            "-p", "tcp 10.0.0.1:1 -> 10.0.0.2:80"], cwd=tmp, capture_output=True, timeout=60)
        try:
            hit = [e["detail"] for e in json.loads(p.stdout)["outcomes"][0]["trace"] if e.get("kind") == "rule"]
        except (ValueError, KeyError, IndexError):
            hit = []
        if p.returncode == 0 and hit == ['-A OUTPUT -m comment --comment "caf\ufffd" -j ACCEPT']:
            print("ok: iptables: non-UTF-8 comment in JSON output becomes U+FFFD")
        else:
            failed += 1
            print(f"FAIL: non-UTF-8 comment in JSON: exit {p.returncode}, rules hit {hit!r}, stderr {p.stderr[-300:]!r}")

    print(f"{len(CASES) + 2 - failed - skipped} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
