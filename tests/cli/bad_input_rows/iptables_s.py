"""`iptables -S` output and CRLF files as --rules input: errors at the pasted file's own line and
column (no *table or COMMIT lines are counted), in the table svcpath inferred for the block."""

FILTER = b"-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n"
NAT = b"-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P OUTPUT ACCEPT\n-P POSTROUTING ACCEPT\n"
RULES = ["rules", "--rules", "{f}"]

# (name, file name, bytes, argv with {f} for the file, exact stderr, exit status)
ROWS = [
    ("iptables -S: bad address after the -P lines", "t.S", FILTER + b"-A INPUT -s 10.0.0.300 -j ACCEPT\n", RULES,
     "t.S:4:13: error: '10.0.0.300' is not an IP address: expected four decimal octets a.b.c.d", 1),
    ("iptables -S: second table (raw) jumps to a chain it lacks", "t.S",
     FILTER + b"-P PREROUTING ACCEPT\n-P OUTPUT ACCEPT\n-A OUTPUT -j nowhere\n", RULES,
     "t.S:6: error: jump to chain 'nowhere', which does not exist in table 'raw'", 1),
    ("iptables -S: nat inferred, DNAT in INPUT", "t.S", NAT + b"-A INPUT -p tcp -j DNAT --to-destination 10.0.0.1\n", RULES,
     "t.S:5: error: DNAT is not valid in chain INPUT because it is reached from INPUT; "
     "the kernel allows it only from PREROUTING, OUTPUT", 1),
    ("iptables -S: jump to a chain no -N created", "t.S", FILTER + b"-A FORWARD -j DOCKER\n", RULES,
     "t.S:4: error: unsupported target 'DOCKER' (and no chain of that name in table 'filter')", 1),
    ("iptables -S -v: policy counters cut short", "t.S", b"-P INPUT DROP -c 10\n", RULES,
     "t.S:1:15: error: unexpected text after the policy (only '-c PACKETS BYTES' may follow it)", 1),
    ("iptables -S -v: text after the policy counters", "t.S", b"-P INPUT DROP -c 1 2 3\n", RULES,
     "t.S:1:22: error: unexpected text after the policy's counters", 1),
    ("iptables -S: bad policy", "t.S", b"-P INPUT MAYBE\n", RULES,
     "t.S:1:1: error: -P needs a built-in chain and ACCEPT or DROP", 1),
    ("iptables -S: chain created twice", "t.S", b"-N DOCKER\n-N DOCKER\n", RULES,
     "t.S:2:4: error: chain 'DOCKER' already exists", 1),
    ("iptables -S: unterminated quote", "t.S", b'-P INPUT ACCEPT\n-A INPUT -m comment --comment "open -j ACCEPT\n', RULES,
     "t.S:2:31: error: unterminated quote", 1),
    ("ip6tables -S: IPv4 address after an IPv6 one (family guessed IPv6)", "t.S",
     b"-P INPUT ACCEPT\n-A INPUT -s fe80::/10 -j ACCEPT\n-A INPUT -s 10.0.0.1 -j ACCEPT\n", RULES,
     "t.S:3:13: error: '10.0.0.1' is an IPv4 address in an IPv6 ruleset", 1),
    ("iptables -S: CRLF line ends keep columns", "t.S", b"-P INPUT ACCEPT\r\n-A INPUT -s 1.2.3 -j ACCEPT\r\n", RULES,
     "t.S:2:13: error: '1.2.3' is not an IP address: expected four decimal octets a.b.c.d", 1),
    ("iptables: bare -A after a *table block is restore input's error", "t.rules",
     b"*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n-A INPUT -j ACCEPT\n", RULES,
     "t.rules:4:1: error: '-A' outside a table: the input must start with *table", 1),
    ("iptables: CRLF restore input keeps its table errors", "t.rules", b"*filter\r\n:INPUT ACCEPT [0:0]\r\n", RULES,
     "t.rules:1: error: table 'filter' opened here has no COMMIT", 1),
]
