#!/usr/bin/env python3
"""The public corpus (tests/data/realworld/) against the real kernel, dump by dump.

For every dump, by format:
  iptables (.rules, .rules6, .S)
    load          svcpath loads it; or, when iptables-restore refuses it on both back ends,
                  svcpath refuses it too, at the same line
    print-legacy  `svcpath rules` prints what iptables-legacy-save prints after
    print-nft     iptables-{legacy,nft}-restore (per table, counters and comments aside)
    verify        `svcpath verify` (iptables-nft, --packets N) agrees with the kernel on every packet
  nftables (.nft)  load, print (`nft -f` then `nft list ruleset`; counters, handles aside), verify
  ipsets (.ipsets) load, print (`ipset restore` then `ipset save`)
  IPVS (.ipvs)     load only: this kernel has no IPVS.
`iptables -S` files (NAME-TABLE.S) reach the kernel as the equivalent restore input (-P/-N/-A
under *TABLE), since iptables-restore reads only the save format.

Known failures live in tests/kernel/corpus-expected-failures.txt, one `DUMP CHECK: reason` a line.
The test fails on any unlisted failure and on any listed check that now passes (so the list only
shrinks), and on list lines naming a dump or check that does not exist.
Each verify report is kept under --out (default ./corpus-reports) for reading the disagreements.
Exit 77 (ctest: skipped) without root, network namespaces or the tools.
"""
import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import time

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CORPUS = os.path.join(SRC, "tests", "data", "realworld")
EXPECTED = os.path.join(SRC, "tests", "kernel", "corpus-expected-failures.txt")
TOOLS = ["ip", "nft", "ipset", "iptables-legacy-restore", "iptables-nft-restore", "iptables-legacy-save",
         "iptables-nft-save", "ip6tables-legacy-restore", "ip6tables-nft-restore", "ip6tables-legacy-save",
         "ip6tables-nft-save", "xtables-monitor"]


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(77)


def run(args, stdin=None, ns=None):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True)


def kind(name):
    for ext, k in ((".rules6", "ip6"), (".rules", "ip4"), (".S", "S"), (".nft", "nft"), (".ipsets", "ipsets"),
                   (".ipvs", "ipvs")):
        if name.endswith(ext):
            return k
    return None


def checks_for(k):
    return {"ip4": ["load", "print-legacy", "print-nft", "verify"], "ip6": ["load", "print-legacy", "print-nft", "verify"],
            "S": ["load", "print-legacy", "print-nft", "verify"], "nft": ["load", "print", "verify"],
            "ipsets": ["load", "print"], "ipvs": ["load"]}[k]


def s_to_restore(text, table):
    """`iptables -S -t TABLE` output as iptables-restore input: the kernel's own reader of the
    same rules (builtin policies and user chains become chain lines, -A lines stay)."""
    heads, rules = [], []
    for line in text.splitlines():
        if line.startswith("-P "):
            _, chain, pol = line.split()
            heads.append(f":{chain} {pol} [0:0]")
        elif line.startswith("-N "):
            heads.append(f":{line.split()[1]} - [0:0]")
        elif line.strip():
            rules.append(line)
    return "\n".join([f"*{table}"] + heads + rules + ["COMMIT", ""])


COUNTERS = re.compile(r"\[\d+:\d+\]")


def save_blocks(text):
    """Save output as comparable lines: comments dropped, counters zeroed, table blocks in a fixed
    order (load order does not matter), CRLF read as LF."""
    blocks, name = {}, ""
    for line in text.replace("\r\n", "\n").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line.startswith("*"):
            name = line
        line = COUNTERS.sub("[0:0]", line)
        if line.startswith("[0:0] "):
            line = line[len("[0:0] "):]
        blocks.setdefault(name, []).append(line)
    return [l for k in sorted(blocks) for l in blocks[k]]


def nft_lines(text):
    text = re.sub(r"counter packets \d+ bytes \d+", "counter packets 0 bytes 0", text)
    text = re.sub(r" # handle \d+", "", text)
    return [l.rstrip() for l in text.splitlines() if l.strip()]


def ipset_lines(text):
    return sorted(re.sub(r" bucketsize \d+ initval 0x[0-9a-f]+", "", l) for l in text.splitlines() if l.strip())


def first_line_no(err):
    """The input line a loader names first: iptables-restore's 'line N' / 'at line: N', nft's
    'file:N:', svcpath's 'file:N:C: error:'."""
    m = re.search(r"(?:line:? |\.\w+6?:)(\d+)", err)
    return int(m.group(1)) if m else None


def diff(a, b, la="kernel", lb="svcpath", limit=12):
    import difflib
    d = list(difflib.unified_diff(a, b, la, lb, lineterm="", n=0))
    return "\n".join(d[:limit]) + (f"\n... {len(d) - limit} more diff lines" if len(d) > limit else "")


class Case:
    def __init__(self, svcpath, path, ns, args):
        self.svcpath, self.path, self.ns, self.args = svcpath, path, ns, args
        self.name = os.path.basename(path)
        self.kind = kind(self.name)
        self.results = {}  # check -> (ok, detail)
        self.notes = []

    def res(self, check, ok, detail=""):
        self.results[check] = (ok, detail)

    def fresh_ns(self):
        run(["ip", "netns", "del", self.ns])
        if run(["ip", "netns", "add", self.ns]).returncode != 0:
            raise RuntimeError(f"cannot create namespace {self.ns}")

    def svc(self, *args):
        return run([self.svcpath, *args])

    def run_all(self):
        t0 = time.monotonic()
        try:
            getattr(self, "do_" + self.kind)()
        finally:
            run(["ip", "netns", "del", self.ns])
        self.seconds = time.monotonic() - t0
        return self

    # iptables family: .rules, .rules6, .S
    def do_ip4(self):
        self.do_iptables("iptables", ["--rules", self.path], ["--rules", self.path])

    def do_ip6(self):
        self.do_iptables("ip6tables", ["-6", "--rules", self.path], ["--rules6", self.path])

    def do_S(self):
        table = re.sub(r"\.S$", "", self.name).rsplit("-", 1)[-1]
        self.do_iptables("iptables", ["--rules", self.path], ["--rules", self.path], s_table=table)

    def do_iptables(self, ipt, rules_args, verify_args, s_table=None):
        text = open(self.path, encoding="utf-8", errors="surrogateescape").read()
        kernel_in = s_to_restore(text, s_table) if s_table else text
        mine = self.svc("rules", *rules_args)
        kernel = {}
        for be in ("legacy", "nft"):
            self.fresh_ns()
            r = run([f"{ipt}-{be}-restore"], stdin=kernel_in, ns=self.ns)
            if r.returncode != 0:
                kernel[be] = (False, (r.stderr or r.stdout).strip())
                continue
            kernel[be] = (True, run([f"{ipt}-{be}-save"], ns=self.ns).stdout)
        accepted = [be for be in kernel if kernel[be][0]]
        if len(accepted) == 1:
            other = "nft" if accepted == ["legacy"] else "legacy"
            self.notes.append(f"back ends differ: only iptables-{accepted[0]} accepts it; "
                              f"iptables-{other}: {kernel[other][1].splitlines()[-1] if kernel[other][1] else ''}")
        if not accepted:
            # The kernel refuses it: svcpath must refuse it at the same line.
            kline = first_line_no(kernel["legacy"][1]) if not s_table else None
            if mine.returncode == 0:
                self.res("load", False, f"svcpath loads what both iptables-restore refuse: {kernel['legacy'][1]}")
            elif s_table or first_line_no(mine.stderr) == kline:
                self.res("load", True, f"refused at line {kline}, as iptables-restore refuses it")
            else:
                self.res("load", False, f"iptables-restore refuses at line {kline} ({kernel['legacy'][1].splitlines()[0]}),"
                                        f" svcpath at {first_line_no(mine.stderr)} ({mine.stderr.splitlines()[0]})")
            for c in ("print-legacy", "print-nft", "verify"):
                self.res(c, True, "n/a: the kernel refuses the dump")
            return
        if mine.returncode != 0:
            self.res("load", False, mine.stderr.strip().splitlines()[0] if mine.stderr.strip() else f"exit {mine.returncode}")
        else:
            self.res("load", True)
        for be in ("legacy", "nft"):
            ok, out = kernel[be]
            if not ok:
                self.res(f"print-{be}", False, f"iptables-{be}-restore refuses it: {out.splitlines()[-1] if out else ''}")
            elif mine.returncode != 0:
                self.res(f"print-{be}", False, "svcpath does not load it")
            else:
                a, b = save_blocks(out), save_blocks(mine.stdout)
                self.res(f"print-{be}", a == b, "" if a == b else f"{ipt}-{be}-save (-) vs svcpath rules (+):\n" + diff(a, b))
        self.verify(verify_args)

    def verify(self, verify_args):
        r = self.svc("verify", *verify_args, "--packets", str(self.args.packets), "--seed", str(self.args.seed))
        with open(os.path.join(self.args.out, self.name + ".verify.txt"), "w") as f:
            f.write(r.stdout + r.stderr)
        last = [l for l in r.stdout.splitlines() if "packets agree" in l]
        summary = last[-1] if last else (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[0]
        if r.returncode == 4:
            self.res("verify", False, f"cannot run here: {summary}")
        else:
            self.res("verify", r.returncode == 0, summary if r.returncode != 1 else f"svcpath refuses the input: {summary}")

    def do_nft(self):
        mine = self.svc("rules", "--nft", self.path)
        self.fresh_ns()
        k = run(["nft", "-f", self.path], ns=self.ns)
        if k.returncode != 0:
            kline = first_line_no(k.stderr)
            if mine.returncode == 0:
                self.res("load", False, f"svcpath loads what nft -f refuses: {k.stderr.strip().splitlines()[0]}")
            else:
                sl = first_line_no(mine.stderr)
                self.res("load", sl == kline, f"nft -f refuses at line {kline}, svcpath at {sl}")
            self.res("print", True, "n/a: the kernel refuses the dump")
            self.res("verify", True, "n/a: the kernel refuses the dump")
            return
        self.res("load", mine.returncode == 0, "" if mine.returncode == 0 else mine.stderr.strip().splitlines()[0])
        if mine.returncode != 0:
            self.res("print", False, "svcpath does not load it")
        else:
            a, b = nft_lines(run(["nft", "list", "ruleset"], ns=self.ns).stdout), nft_lines(mine.stdout)
            self.res("print", a == b, "" if a == b else "nft list ruleset (-) vs svcpath rules (+):\n" + diff(a, b))
        self.verify(["--nft", self.path])

    def do_ipsets(self):
        mine = self.svc("rules", "--ipsets", self.path)
        self.res("load", mine.returncode == 0, "" if mine.returncode == 0 else mine.stderr.strip().splitlines()[0])
        self.fresh_ns()
        k = run(["ipset", "restore"], stdin=open(self.path).read(), ns=self.ns)
        if k.returncode != 0:
            self.res("print", False, f"ipset restore refuses it: {k.stderr.strip()}")
        elif mine.returncode != 0:
            self.res("print", False, "svcpath does not load it")
        else:
            a, b = ipset_lines(run(["ipset", "save"], ns=self.ns).stdout), ipset_lines(mine.stdout)
            self.res("print", a == b, "" if a == b else "ipset save (-) vs svcpath rules (+):\n" + diff(a, b))

    def do_ipvs(self):
        r = self.svc("trace", "--ipvs", self.path, "--packet", "tcp 192.0.2.1:1000 -> 192.0.2.2:80")
        self.res("load", r.returncode == 0, "" if r.returncode == 0 else r.stderr.strip().splitlines()[0])


def read_expected(path):
    exp, problems = {}, []
    for n, line in enumerate(open(path), 1):
        line = line.rstrip("\n")
        if not line.strip() or line.startswith("#"):
            continue
        m = re.match(r"^(\S+) (\S+): (.+)$", line)
        if not m:
            problems.append(f"{path}:{n}: not 'DUMP CHECK: reason': {line}")
            continue
        if (m.group(1), m.group(2)) in exp:
            problems.append(f"{path}:{n}: {m.group(1)} {m.group(2)} listed twice")
        exp[(m.group(1), m.group(2))] = (n, m.group(3))
    return exp, problems


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("svcpath")
    ap.add_argument("--packets", type=int, default=50, help="packets per dump for svcpath verify (default 50)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2, help="dumps checked at once (default 2)")
    ap.add_argument("--only", default="", help="only dumps whose name contains this")
    ap.add_argument("--out", default="corpus-reports", help="directory for the verify reports")
    ap.add_argument("--verbose", action="store_true", help="print the detail of passing checks too")
    args = ap.parse_args()
    args.svcpath = os.path.abspath(args.svcpath)

    if os.geteuid() != 0:
        skip("not root: network namespaces and iptables-restore need root")
    for t in TOOLS:
        if not shutil.which(t):
            skip(f"{t} is not installed (scripts/install-deps installs it)")
    probe = f"svcpath-corpus-{os.getpid()}-probe"
    if run(["ip", "netns", "add", probe]).returncode != 0:
        skip("cannot create a network namespace")
    run(["ip", "netns", "del", probe])
    os.makedirs(args.out, exist_ok=True)

    expected, problems = read_expected(EXPECTED)
    names = sorted(n for n in os.listdir(CORPUS) if kind(n) and args.only in n)
    t0 = time.monotonic()
    cases = [Case(args.svcpath, os.path.join(CORPUS, n), f"svcpath-corpus-{os.getpid()}-{i}", args)
             for i, n in enumerate(names)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        done = list(pool.map(Case.run_all, cases))

    fails, fixed, counts = [], [], {"ok": 0, "expected": 0}
    for c in done:
        for note in c.notes:
            print(f"note: {c.name}: {note}")
        for check in checks_for(c.kind):
            ok, detail = c.results.get(check, (False, "not run"))
            key = (c.name, check)
            if key in expected:
                line, reason = expected.pop(key)
                if ok:
                    fixed.append(f"{c.name} {check}: passes now; remove line {line} of the expected-failure list ({reason})")
                    print(f"FIXED: {c.name} {check} ({detail})" if detail else f"FIXED: {c.name} {check}")
                else:
                    counts["expected"] += 1
                    print(f"xfail: {c.name} {check}: {reason}")
                    if args.verbose and detail:
                        print("  " + detail.replace("\n", "\n  "))
            elif ok:
                counts["ok"] += 1
                print(f"ok: {c.name} {check}" + (f" ({detail})" if detail and (args.verbose or "n/a" not in detail) else ""))
            else:
                fails.append(f"{c.name} {check}")
                print(f"FAIL: {c.name} {check}: " + detail.replace("\n", "\n  "))
        print(f"   ({c.name}: {c.seconds:.1f}s)")
    if not args.only:
        for (name, check), (line, reason) in sorted(expected.items()):
            problems.append(f"{EXPECTED}:{line}: {name} {check} names no dump or check of the corpus")
    for p in problems:
        print(f"FAIL: {p}")
    for f in fixed:
        print(f"FAIL: {f}")
    total = counts["ok"] + counts["expected"] + len(fails) + len(fixed)
    print(f"{len(done)} dumps, {total} checks: {counts['ok']} pass, {counts['expected']} expected failures, "
          f"{len(fails)} unexpected failures, {len(fixed)} listed failures now passing "
          f"({time.monotonic() - t0:.0f}s, {args.jobs} jobs, {args.packets} packets per verify)")
    return 1 if fails or fixed or problems else 0


if __name__ == "__main__":
    sys.exit(main())
