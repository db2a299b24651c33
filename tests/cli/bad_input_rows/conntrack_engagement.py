"""Conntrack engagement: a node config (or snapshot) says conntrack is attached through
net.netfilter.nf_conntrack_count, a count (a busy node's is in the millions)."""

PKT = "tcp 1.1.1.1:1 -> 2.2.2.2:2"

# (name, file name, bytes, argv with {f} for the file, exact stderr, exit status)
ROWS = [
    ("node config: nf_conntrack_count that is no number", "n.yaml", b"sysctls:\n  net.netfilter.nf_conntrack_count: many\n",
     ["trace", "--rules", "/dev/null", "--node-config", "{f}", "--packet", PKT],
     "n.yaml:2:3: error: sysctl net.netfilter.nf_conntrack_count needs a number, not 'many'", 1),
    ("node config: nf_conntrack_count below zero", "n.yaml", b"sysctls:\n  net.netfilter.nf_conntrack_count: -1\n",
     ["trace", "--rules", "/dev/null", "--node-config", "{f}", "--packet", PKT],
     "n.yaml:2:3: error: sysctl net.netfilter.nf_conntrack_count needs a number, not '-1'", 1),
]
