"""After the first structural error in a dump, the errors that only follow from it are not reported
(issue 21): one line says what is wrong, not one per line after it."""

# (name, file name, bytes, argv with {f} for the file, exact stderr, exit status)
ROWS = [
    ("iptables: a table opened before the last was COMMITted reads its own lines", "t.rules",
     b"*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\n*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
     b"-A PREROUTING -p tcp -j DNAT --to-destination 10.0.0.1\n-A POSTROUTING -j MASQUERADE\nCOMMIT\n",
     ["rules", "--rules", "{f}"], "t.rules:4:1: error: '*nat' starts a table before table 'filter' (line 1) was COMMITted", 1),
    ("iptables: a run of lines outside a table is one error", "t.rules",
     b"hello\nworld\n-A INPUT -j ACCEPT\n*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j BOGUS\nCOMMIT\n-A INPUT -j DROP\n",
     ["rules", "--rules", "{f}"],
     "t.rules:1:1: error: 'hello' outside a table: the input must start with *table "
     "(2 further lines outside a table, up to line 3, not reported)\n"
     "t.rules:6: error: unsupported target 'BOGUS' (and no chain of that name in table 'filter')\n"
     "t.rules:8:1: error: '-A' outside a table: the input must start with *table", 1),
    ("ipset: lines adding to a set never created are one error", "s.ipsets",
     b"create S hash:ip\nadd S 1.2.3.4\nadd T 1.2.3.5\nadd T 1.2.3.6\nflush T\nadd U 1.2.3.7\n",
     ["rules", "--ipsets", "{f}"],
     "s.ipsets:3:5: error: the set 'T' does not exist\ns.ipsets:6:5: error: the set 'U' does not exist", 1),
    ("nft: a chain's missing '}' is named, not the table after it", "t.nft",
     b"table ip t {\n  chain c {\n    type filter hook input priority 0;\n    ip daddr 10.0.0.1 accept\n\n"
     b"table ip u {\n  chain d {\n    accept\n  }\n}\n",
     ["rules", "--nft", "{f}"], "t.nft:6:1: error: 'table' inside chain c: the '}' closing the chain (opened at line 2) is missing", 1),
    ("nft: a table's missing '}'", "t.nft", b"table ip t {\n  chain c {\n    accept\n  }\n\ntable ip u {\n}\n",
     ["rules", "--nft", "{f}"], "t.nft:6:1: error: 'table' inside table t: the '}' closing it (opened at line 1) is missing", 1),
]
