#!/usr/bin/env python3
"""nftables' own rule tests (tests/py/{any,ip,ip6,inet}/*.t, copied under tests/conformance/nftables/)
as svcpath's conformance suite.

The .t format (as nftables' tests/py/nft-test.py reads it):
  :CHAIN;CONFIG          a chain, created with `add chain TABLE CHAIN { CONFIG; }`
  *FAMILY;TABLE;C1,C2    a table the following rules go into, in each of its chains (tables accumulate)
  !SET type T [. T]... [timeout X] [flags F];ok    a named set in every table
  ?SET E1,E2;ok          elements added to it
  %OBJ type KIND SPEC;ok a stateful object (counter, quota, limit, ct helper ...)
  RULE;ok                loads and lists back as RULE
  RULE;ok;PRINTED        loads and lists back as PRINTED
  RULE;fail              refused
  -RULE;...              disabled upstream; skipped here too
Only the ip, ip6 and inet tables are used (svcpath models those families); arp, bridge and netdev
tables in the any/ files are left out.

Each (rule line, table, chain) becomes one small `nft -f` file: the table, the chain, the sets,
elements and objects declared above the line, then `add rule ...` as its last line. It goes through
  - this machine's nft (one throwaway network namespace, one `nft -f` per file, then one
    `nft list ruleset` and one `nft -s -p list ruleset` for all of them; nft-test.py lists with
    stateless and numeric-protocol output, so the file is compared with the -s -p listing), and
  - `svcpath rules --nft FILE`, which prints back as plain `nft list ruleset` does.
The reference for svcpath is the local nft: an ok line must load and print as the local plain listing
does; a fail line must be refused with `FILE:LINE:COL: error:` at the rule's line. Where the local nft
disagrees with the file the line is listed as drift: a userspace disagreement (version drift) keeps the
local nft as the reference; a kernel refusal ("Could not process rule", a module this kernel lacks)
keeps the file's text as the reference. Anonymous set elements compare in any order, as nft-test.py
does. A line passes when every (table, chain) it runs in passes.

Known failures: tests/conformance/nftables-expected-failures.txt, one `FILE:LINE reason` a line.
Exit 1 on any failing line not listed, any listed line that passes, or a listed line that is not a
test; exit 77 (ctest: skipped) without root, network namespaces or nft.
"""
import argparse
import concurrent.futures
import ctypes
import ctypes.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SUITE = os.path.join(SRC, "tests", "conformance", "nftables")
EXPECTED = os.path.join(SRC, "tests", "conformance", "nftables-expected-failures.txt")
FAMILIES = ("ip", "ip6", "inet")
KERNEL_REFUSAL = re.compile(r"Could not process rule|Operation not supported|No such file or directory")


class Unit:
    """One rule line in one table and chain: the nft -f file both tools load."""

    def __init__(self, test, family, table, chain, text, rule_line):
        self.test, self.family, self.table, self.chain = test, family, table, chain
        self.text, self.rule_line = text, rule_line
        self.real_rc = self.svc_rc = None
        self.real_err = self.svc_err = ""
        self.real_plain = self.real_sp = self.svc_text = self.svc_line = None


class Test:
    def __init__(self, path, lineno, rule, state, expected):
        self.path, self.lineno, self.rule, self.state, self.expected = path, lineno, rule, state, expected
        self.units = []
        self.drift = None  # None, "version drift" or "kernel: ..."
        self.problem = None  # why svcpath does not pass, or None


def parse_suite_file(rel):
    """The tests of one .t file, each with the units nft-test.py would run it in."""
    chains, tables, decls, tests = {}, [], [], []
    with open(os.path.join(SUITE, rel), encoding="utf-8") as f:
        lines = f.read().split("\n")
    for n, raw in enumerate(lines, 1):
        line = raw.rstrip()
        if not line.strip() or line[0] == "#":
            continue
        if line[0] == ":":
            name, _, config = line[1:].partition(";")
            chains[name] = config
        elif line[0] == "*":
            family, name, cs = line[1:].split(";")
            if family in FAMILIES:
                tables.append((family, name, cs.split(",")))
        elif line[0] == "!":
            spec, _, state = line[1:].rpartition(";")
            if state == "ok":
                decls.append(("set", set_body(spec)))
        elif line[0] == "?":
            spec, _, state = line[1:].rpartition(";")
            if state == "ok":
                name, _, elems = spec.partition(" ")
                decls.append(("element", f"{name} {{ {', '.join(e.strip() for e in elems.split(','))} }}"))
        elif line[0] == "%":
            brace = line.rfind("}")
            spec, state = (line[1:brace + 1], line[brace + 2:]) if brace >= 0 else line[1:].rsplit(";", 1)
            if state.strip() == "ok":
                decls.append(("obj", obj_command(spec)))
        elif line[0] == "-":
            continue
        else:
            fields = line.split(";")
            if len(fields) not in (2, 3) or fields[1].strip() not in ("ok", "fail"):
                continue
            expected = fields[2] if len(fields) == 3 else fields[0]
            t = Test(rel, n, fields[0], fields[1].strip(), expected.rstrip())
            for family, table, cs in tables:
                for c in cs:
                    t.units.append(make_unit(t, family, table, c, chains.get(c, ""), decls))
            if t.units:
                tests.append(t)
    return tests


def set_body(spec):
    tokens = spec.split(" ")
    name, stype, i = tokens[0], tokens[2], 3
    while len(tokens) > i + 1 and tokens[i] == ".":
        stype += " . " + tokens[i + 1]
        i += 2
    body = f"type {stype};"
    if len(tokens) >= i + 2 and tokens[i] == "timeout":
        body += f" timeout {tokens[i + 1]};"
        i += 2
    if len(tokens) >= i + 2 and tokens[i] == "flags":
        body += f" flags {tokens[i + 1]};"
    return f"{name} {{ {body} }}"


def obj_command(spec):
    tokens = spec.split(" ")
    name, kind, rest = tokens[0], tokens[2], tokens[3:]
    if kind == "ct" and rest and rest[0] in ("helper", "timeout", "expectation"):
        kind, rest = "ct " + rest[0], rest[1:]
    return kind, name, " ".join(rest)


def make_unit(test, family, table, chain, config, decls):
    out = [f"add table {family} {table}"]
    out.append(f"add chain {family} {table} {chain}" + (f" {{ {config}; }}" if config else ""))
    for kind, body in decls:
        if kind == "set":
            out.append(f"add set {family} {table} {body}")
        elif kind == "element":
            out.append(f"add element {family} {table} {body}")
        else:
            okind, name, spec = body
            out.append(f"add {okind} {family} {table} {name} {spec}".rstrip())
    out.append(f"add rule {family} {table} {chain} {test.rule}")
    return Unit(test, family, table, chain, "\n".join(out) + "\n", len(out))


def chain_rules(listing, family, table, chain):
    """The rules of one chain in an `nft list ruleset` listing, joined by spaces; None if absent."""
    m = re.search(rf"^table {re.escape(family)} {re.escape(table)} {{\n(.*?)^}}", listing, re.S | re.M)
    if not m:
        return None
    c = re.search(rf"^\tchain {re.escape(chain)} {{\n(.*?)^\t}}", m.group(1), re.S | re.M)
    if not c:
        return None
    lines = [l.strip() for l in c.group(1).split("\n") if l.strip()]
    lines = [l for l in lines if not re.match(r"type \S+ hook ", l)]
    return " ".join(lines)


def norm(text, loose=False):
    """Whitespace collapsed; elements of innermost braces in sorted order. Loose (nft-test.py's set
    compare, for the file against nft): spaces inside the braces do not count either."""
    text = re.sub(r"\s+", " ", text.strip())

    def sort_elems(m):
        elems = [re.sub(r"\s", "", e) if loose else e.strip() for e in m.group(1).split(",")]
        return "{ " + ", ".join(sorted(elems)) + " }"

    return re.sub(r"\{([^{}]*)\}", sort_elems, text)


def run_real(units, work, meanwhile):
    """Every unit through this machine's nft in one throwaway namespace; fills the real_* fields.
    meanwhile() runs while the helper does (svcpath's side), as the two are independent."""
    ns = f"svcpath-conf-nft-{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", ns], capture_output=True).returncode != 0:
        return False
    try:
        paths = []
        for i, u in enumerate(units):
            p = os.path.join(work, f"real-{i}.nft")
            with open(p, "w") as f:
                f.write(u.text)
            paths.append(p)
        jobs, out = os.path.join(work, "real-jobs.json"), os.path.join(work, "real-out.json")
        with open(jobs, "w") as f:
            json.dump(paths, f)
        helper = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__),
                                   "--real-helper", jobs, out], stderr=subprocess.PIPE, text=True)
        meanwhile()
        _, err = helper.communicate()
        if helper.returncode != 0:
            sys.exit(f"the nft helper failed: {err.strip()}")
        with open(out) as f:
            results = json.load(f)
        for u, (rc, err, plain, sp) in zip(units, results):
            u.real_rc, u.real_err = rc, err.strip()
            if rc == 0:
                u.real_plain = chain_rules(plain, u.family, u.table, u.chain)
                u.real_sp = chain_rules(sp, u.family, u.table, u.chain)
        return True
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def real_helper(jobs, out):
    """Inside the namespace: `nft -f`, `nft list ruleset`, `nft -s -p list ruleset`, `nft flush ruleset`
    per file, through libnftables (the library the nft command is a thin front of), in this one process
    so that thousands of files take seconds."""
    lib = ctypes.CDLL(ctypes.util.find_library("nftables") or "libnftables.so.1")
    lib.nft_ctx_new.restype = ctypes.c_void_p
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    for fn in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
        getattr(lib, fn).restype = ctypes.c_char_p
        getattr(lib, fn).argtypes = [ctypes.c_void_p]
    lib.nft_run_cmd_from_filename.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
    lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
    ctx = lib.nft_ctx_new(0)
    lib.nft_ctx_buffer_output(ctx)
    lib.nft_ctx_buffer_error(ctx)
    stateless, numeric_proto = 1 << 2, 1 << 7

    def cmd(run, arg, flags=0):
        lib.nft_ctx_output_set_flags(ctx, flags)
        rc = run(ctx, arg.encode())
        return rc, lib.nft_ctx_get_output_buffer(ctx).decode(), lib.nft_ctx_get_error_buffer(ctx).decode()

    results = []
    with open(jobs) as f:
        paths = json.load(f)
    for p in paths:
        rc, _, err = cmd(lib.nft_run_cmd_from_filename, p)
        plain = sp = ""
        if rc == 0:
            plain = cmd(lib.nft_run_cmd_from_buffer, "list ruleset")[1]
            sp = cmd(lib.nft_run_cmd_from_buffer, "list ruleset", stateless | numeric_proto)[1]
        cmd(lib.nft_run_cmd_from_buffer, "flush ruleset")
        results.append((0 if rc == 0 else 1, err, plain, sp))
    with open(out, "w") as f:
        json.dump(results, f)


def run_svcpath(svcpath, units, work, tag):
    """One .t file's units through `svcpath rules --nft`, as few runs as it takes: all of them in one file
    (each in its own table), then again without those refused, until the rest loads. svcpath collects
    its errors, so a refused unit is known by the lines its errors name."""
    pending, round_ = list(units), 0
    while pending:
        round_ += 1
        p = os.path.join(work, f"svc-{tag}-{round_}.nft")
        text, owner, first = [], {}, {}
        for i, u in enumerate(pending):
            first[id(u)] = len(text)
            for line in u.text.splitlines():
                text.append(line.replace(f" {u.family} {u.table}", f" {u.family} u{i}-{u.table}", 1))
                owner[len(text)] = (u, len(text) - first[id(u)])
        with open(p, "w") as f:
            f.write("\n".join(text) + "\n")
        r = subprocess.run([svcpath, "rules", "--nft", p], capture_output=True, text=True)
        if r.returncode == 0:
            for i, u in enumerate(pending):
                u.svc_rc, u.svc_text = 0, chain_rules(r.stdout, u.family, f"u{i}-{u.table}", u.chain)
            return
        refused = {}
        for line in r.stderr.splitlines():
            m = re.match(rf"{re.escape(p)}:(\d+)(:\d+)?: error: (.*)", line)
            if m and int(m.group(1)) in owner:
                u, rel = owner[int(m.group(1))]
                refused.setdefault(id(u), (u, rel, f"{rel}{m.group(2) or ''}: error: {m.group(3)}"))
        if not refused:  # an error no unit owns: the units one by one
            if len(pending) == 1:
                u = pending[0]
                u.svc_rc, u.svc_line = r.returncode, None
                u.svc_err = r.stderr.strip().replace(p + ":", "") or "exit %d" % r.returncode
                return
            for j, u in enumerate(pending):
                run_svcpath(svcpath, [u], work, f"{tag}-{round_}-{j}")
            return
        for u, rel, msg in refused.values():
            u.svc_rc, u.svc_line, u.svc_err = r.returncode, rel, msg
        pending = [u for u in pending if id(u) not in refused]


def judge(t):
    """Drift (the local nft against the file) and svcpath's result (against the reference)."""
    for u in t.units:
        real_ok = u.real_rc == 0
        if t.state == "ok" and not real_ok:
            if KERNEL_REFUSAL.search(u.real_err):
                t.drift = t.drift or "kernel: " + first_error(u.real_err)
            else:
                t.drift = t.drift or "version drift"
        elif t.state == "ok" and norm(u.real_sp or "", True) != norm(t.expected, True):
            t.drift = t.drift or "version drift"
        elif t.state == "fail" and real_ok:
            t.drift = t.drift or "version drift"
    for u in t.units:
        kernel = t.drift is not None and t.drift.startswith("kernel")
        want_ok = t.state == "ok" if kernel else u.real_rc == 0
        if want_ok:
            want = t.expected if kernel else u.real_plain
            if u.svc_rc != 0:
                t.problem = f"refused: {u.svc_err.splitlines()[0]}"
                return
            got = u.svc_text or ""
            if kernel:  # the file's text is stateless
                got = re.sub(r" packets \d+ bytes \d+", "", got)
            if norm(got) != norm(want or ""):
                t.problem = f"prints `{got}`, want `{want}`"
                return
        else:
            if u.svc_rc == 0:
                t.problem = "loads, but the rule is refused by " + ("the file" if kernel else "nft")
                return
            if u.svc_line is None or not re.match(r"\d+:\d+: error: ", u.svc_err):
                t.problem = f"refused without a line and column: {u.svc_err.splitlines()[0]}"
                return
            if u.svc_line != u.rule_line:
                t.problem = f"refused at a declaration, not the rule: {u.svc_err}"
                return


def first_error(err):
    for line in err.splitlines():
        if "Error:" in line:
            return line.split("Error:", 1)[1].strip()
    return err.splitlines()[0] if err else "refused"


def load_expected():
    listed = {}
    if os.path.exists(EXPECTED):
        with open(EXPECTED, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                line = line.rstrip("\n")
                if not line.strip() or line.startswith("#"):
                    continue
                key, _, reason = line.partition(" ")
                listed[key] = (reason, n)
    return listed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("svcpath", nargs="?")
    ap.add_argument("--only", help="run only .t files whose path contains this")
    ap.add_argument("--markdown", action="store_true", help="print docs/conformance-nftables.md's tables")
    ap.add_argument("--verbose", "-v", action="store_true", help="print every failing line's detail")
    ap.add_argument("--write-expected", action="store_true",
                    help="print an expected-failures list for the lines failing now (for review)")
    ap.add_argument("--real-helper", nargs=2, metavar=("JOBS", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.real_helper:
        real_helper(*args.real_helper)
        return 0
    if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"):
        print("SKIP: needs root, ip and nft")
        return 77
    files = sorted(os.path.relpath(os.path.join(d, f), SUITE)
                   for d, _, fs in os.walk(SUITE) for f in fs if f.endswith(".t"))
    if args.only:
        files = [f for f in files if args.only in f]
    tests = [t for f in files for t in parse_suite_file(f)]
    units = [u for t in tests for u in t.units]
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="svcpath-conf-nft-") as work:
        def svcpath_side():
            with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
                by_file = {}
                for t in tests:
                    by_file.setdefault(t.path, []).extend(t.units)
                list(pool.map(lambda iu: run_svcpath(args.svcpath, iu[1], work, iu[0]), enumerate(by_file.values())))

        if not run_real(units, work, svcpath_side):
            print("SKIP: cannot create a network namespace")
            return 77
        for t in tests:
            judge(t)
    listed = load_expected()
    per_file = {}
    bad = []
    for t in tests:
        key = f"{t.path}:{t.lineno}"
        s = per_file.setdefault(t.path, {"lines": 0, "pass": 0, "drift": 0})
        s["lines"] += 1
        s["pass"] += t.problem is None
        s["drift"] += t.drift is not None
        if t.problem is None and key in listed:
            bad.append(f"{key}: passes now; delete it from {os.path.relpath(EXPECTED, SRC)}")
        elif t.problem is not None and key not in listed:
            bad.append(f"{key}: {t.problem}  [{t.rule}]")
    keys = {f"{t.path}:{t.lineno}" for t in tests}
    if not args.only:
        for key, (_, n) in listed.items():
            if key not in keys:
                bad.append(f"{os.path.relpath(EXPECTED, SRC)}:{n}: {key} is not a test line")
    if args.write_expected:
        for t in tests:
            if t.problem is not None:
                problem = re.sub(r"\d+(:\d+)?: error: ", "", t.problem)
                reason = t.drift if t.drift and t.drift.startswith("kernel") else "svcpath: " + problem
                print(f"{t.path}:{t.lineno} {reason}")
        return 0
    if args.markdown:
        print_markdown(tests, per_file, listed)
        return 0
    total = sum(s["lines"] for s in per_file.values())
    passed = sum(s["pass"] for s in per_file.values())
    for f, s in per_file.items():
        print(f"{f:28} {s['pass']:4}/{s['lines']:<4} pass  ({s['drift']} drift)")
    drift = [t for t in tests if t.drift]
    print(f"\nlines where this machine's nft disagrees with the file ({len(drift)}):")
    for t in drift:
        print(f"  {t.path}:{t.lineno} {t.drift}  [{t.rule}]")
    if args.verbose:
        print("\nlines svcpath does not pass:")
        for t in tests:
            if t.problem:
                print(f"  {t.path}:{t.lineno} {t.problem}  [{t.rule}]")
    print(f"\n{passed}/{total} lines pass ({len(units)} rulesets, {time.time() - started:.1f}s)")
    for b in bad:
        print("FAIL", b)
    return 1 if bad else 0


def print_markdown(tests, per_file, listed):
    total = sum(s["lines"] for s in per_file.values())
    passed = sum(s["pass"] for s in per_file.values())
    print("""# Conformance with nftables' own rule tests

nftables ships one test file per expression and statement (`tests/py/*/*.t`): a rule, and how
`nft list ruleset` prints it back, or that `nft` refuses it. The ones for the ip, ip6 and inet
families, from nftables 1.0.6 (this machine's `nft`), are svcpath's conformance suite:
`tests/conformance/nftables/` (source and licence in its README).

Run it (root; a throwaway network namespace holds the real `nft`'s side):

    python3 tests/conformance/run_nftables.py build/dev/svcpath      # or: cd build/dev && ctest -R conformance-nftables
    python3 tests/conformance/run_nftables.py build/dev/svcpath --only ip/dnat -v

Each (line, table, chain) is one `nft -f` file (table, chain, the sets, elements and objects declared
above the line, then the rule). An ok line passes when svcpath loads it and prints the rule as this
machine's `nft list ruleset` does; a fail line passes when svcpath refuses it with
`FILE:LINE:COL: error:` at the rule. Where this machine's nft disagrees with the file (compared as
nftables' own runner does: `nft -s -p` listing, set elements in any order) the line is listed as drift:
version drift keeps the local nft as the reference; a kernel refusal (a module this kernel lacks) keeps
the file's text. Lines that do not pass are listed, with a reason, in
`tests/conformance/nftables-expected-failures.txt`; the test fails on any other failing line and on any
listed line that passes. This page is generated: `run_nftables.py build/dev/svcpath --markdown`.

## Pass counts
""")
    print(f"**{passed} of {total} lines pass.**\n")
    print("| file | lines | pass | drift |\n| --- | ---: | ---: | ---: |")
    for f, s in per_file.items():
        print(f"| {f} | {s['lines']} | {s['pass']} | {s['drift']} |")
    print("\n### Where this machine's nft 1.0.6 disagrees with the file\n")
    print("| line | rule | local nft |\n| --- | --- | --- |")
    for t in tests:
        if t.drift:
            print(f"| {t.path}:{t.lineno} | `{md(t.rule)}` | {md(t.drift)} |")
    print("\n### Lines svcpath does not pass\n")
    print("| line | rule | reason |\n| --- | --- | --- |")
    for t in tests:
        if t.problem:
            reason = listed.get(f"{t.path}:{t.lineno}", ("(not listed) " + t.problem, 0))[0]
            print(f"| {t.path}:{t.lineno} | `{md(t.rule)}` | {md(reason)} |")


def md(s):
    return s.replace("|", "\\|").replace("`", "'")


if __name__ == "__main__":
    sys.exit(main())
