"""Inputs as real nodes print them (issue 17): ipset list, skbinfo, the matches real firewalls use,
packet-spec fields for assumed state, --nfqueue, node-config policy routing, snapshots."""

EMPTY = b"*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"
LIST = (b"Name: web\nType: hash:ip\nRevision: 6\nHeader: family inet hashsize 1024 maxelem 65536%s\n"
        b"Size in memory: 200\nReferences: 0\nNumber of entries: 1\nMembers:\n%s\n")
PKT = "tcp 1.1.1.1:1 -> 2.2.2.2:2"

# (name, file name, bytes, argv with {f} for the file, exact stderr, exit status)
ROWS = [
    ("ipset list: bad member, at its column in the listing", "l.txt", LIST % (b"", b"10.0.0.300"),
     ["rules", "--ipsets", "{f}"], "l.txt:9:1: error: '10.0.0.300' is not an IP address: expected four decimal octets a.b.c.d", 1),
    ("ipset list: bad header option, at its column", "l.txt", LIST % (b" bogus 1", b""),
     ["rules", "--ipsets", "{f}"], "l.txt:4:49: error: unknown create option 'bogus'", 1),
    ("ipset: skbmark on a set without skbinfo", "k.ipsets", b"create s hash:ip\nadd s 10.0.0.1 skbmark 0x1\n",
     ["rules", "--ipsets", "{f}"], "k.ipsets:2:24: error: skbmark given for a set created without skbinfo support", 1),
    ("iptables: -m owner where the kernel refuses it", "o.rules",
     b"*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m owner --uid-owner 0 -j DROP\nCOMMIT\n", ["rules", "--rules", "{f}"],
     "o.rules:3: error: owner is not valid in chain INPUT because it is reached from INPUT; the kernel allows it only "
     "from OUTPUT, POSTROUTING", 1),
    ("iptables: -m set naming a set no --ipsets defines (iptables-restore: set doesn't exist)", "s.rules",
     b"*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m set --match-set blocked src -j DROP\nCOMMIT\n", ["rules", "--rules", "{f}"],
     "s.rules:3: error: Set blocked doesn't exist (load it with --ipsets)", 1),
    ("iptables: short MAC address", "m.rules",
     b"*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m mac --mac-source 00:11:22:33:44 -j DROP\nCOMMIT\n",
     ["rules", "--rules", "{f}"], 'm.rules:3:30: error: Bad mac address "00:11:22:33:44"', 1),
    ("packet spec: mac= not a MAC", "e.rules", EMPTY, ["trace", "--rules", "{f}", "--packet", PKT + " mac=zz"],
     "--packet: error: 'mac=zz': mac= takes six hex pairs, e.g. mac=00:11:22:33:44:55", 1),
    ("--nfqueue: neither none nor unknown", "e.rules", EMPTY, ["trace", "--rules", "{f}", "--nfqueue", "maybe", "--packet", PKT],
     "--nfqueue: error: 'maybe': expected 'none' (no listener) or 'unknown'", 1),
    ("node config: a rule's table that is no table", "n.yaml", b"rules:\n  - {priority: 5, table: nowhere}\n",
     ["trace", "--rules", "/dev/null", "--node-config", "{f}", "--packet", PKT],
     "n.yaml:2:26: error: rules[0].table: 'nowhere' (main, local, default or a number)", 1),
    ("snapshot: not an archive", "s.tar.gz", b"junk\n", ["trace", "--snapshot", "{f}", "--packet", PKT],
     "s.tar.gz: error: cannot read as a tar.gz snapshot: Unrecognized archive format", 1),
]
