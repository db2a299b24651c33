"""svcpath verify: its argument errors, and bad input refused by svcpath's loaders before anything
reaches the kernel (no root needed: these rows never get that far)."""

GOOD = b"*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"

# (name, file name, bytes, argv with {f} for the file, exact stderr, exit status)
ROWS = [
    ("verify: no dump", "unused", None, ["verify"],
     "verify: error: give the dump to verify: --rules FILE, --rules6 FILE or --nft FILE", 1),
    ("verify: unknown match refused before the kernel", "v.rules",
     b"*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m bogus -j ACCEPT\nCOMMIT\n", ["verify", "--rules", "{f}"],
     "v.rules:3:13: error: unsupported match 'bogus'", 1),
    ("verify: --packets 0", "v.rules", GOOD, ["verify", "--rules", "{f}", "--packets", "0"],
     "--packets: Value 0 not in range 1 to 100000\nRun with --help for more information.", 2),
    ("verify: unknown --backend", "v.rules", GOOD, ["verify", "--rules", "{f}", "--backend", "fast"],
     "--backend: fast not in {nft,legacy,both}\nRun with --help for more information.", 2),
    ("verify: bad node config", "n.yaml", b"interfaces:\n  - name: eth0\n    addresses: [10.0.0.300/24]\n",
     ["verify", "--nft", "/dev/null", "--node-config", "{f}"],
     "n.yaml:3:17: error: interfaces[0].addresses[0]: '10.0.0.300' is not an IP address: expected four decimal octets a.b.c.d", 1),
]
