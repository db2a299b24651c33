"""`nft -j list ruleset` as --nft input: JSON errors name file:line:col and the path to the value."""

T = b'{"table": {"family": "ip", "name": "t"}}, {"chain": {"family": "ip", "table": "t", "name": "c"}}'


def rule(expr):
    return b'{"nftables": [' + T + b', {"rule": {"family": "ip", "table": "t", "chain": "c", "expr": [' + expr + b']}}]}'


# (name, file name, bytes, argv with {f} for the file, exact stderr, exit status)
ROWS = [
    ("nft json: unmodelled statement", "j.json", rule(b'{"limit": {"rate": 1}}'), ["rules", "--nft", "{f}"],
     "j.json:1:186: error: nftables[2].rule.expr[0].limit: statement 'limit' is not modelled", 1),
    ("nft json: rule in a missing chain, line of the value", "j.json",
     b'{"nftables": [{"table": {"family": "ip", "name": "t"}},\n'
     b' {"rule": {"family": "ip", "table": "t", "chain": "nope", "expr": [{"accept": null}]}}]}',
     ["rules", "--nft", "{f}"], "j.json:2:51: error: nftables[1].rule.chain: no chain 'nope' in table ip t", 1),
    ("nft json: bridge family", "j.json", b'{"nftables": [ {"table": {"family": "bridge", "name": "t"}} ]}',
     ["rules", "--nft", "{f}"],
     "j.json:1:37: error: nftables[0].table.family: family 'bridge' is not modelled "
     "(svcpath simulates the ip, ip6 and inet families)", 1),
    ("nft json: bad address", "j.json",
     rule(b'{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.0.0.300"}}'),
     ["rules", "--nft", "{f}"], "j.json:1:267: error: nftables[2].rule.expr[0].match.right: '10.0.0.300' is not an IPv4 address", 1),
    ("nft json: jump to a missing chain (load-time check, line only)", "j.json", rule(b'{"jump": {"target": "gone"}}'),
     ["rules", "--nft", "{f}"], "j.json:1: error: chain c: no chain 'gone' in table ip t", 1),
    ("nft json: truncated", "j.json", b'{"nftables": [ {"table": ', ["rules", "--nft", "{f}"],
     "j.json:1:26: error: invalid JSON: syntax error while parsing value - unexpected end of input; "
     "expected '[', '{', or a literal", 1),
    ("nft json: not nft's JSON", "j.json", b'{"nft": []}', ["rules", "--nft", "{f}"],
     'j.json:1:1: error: expected {"nftables": [...]}, the form `nft -j list ruleset` prints', 1),
]
