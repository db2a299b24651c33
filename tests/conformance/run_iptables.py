#!/usr/bin/env python3
"""iptables' own extension tests (extensions/*.t, copied in tests/conformance/iptables/) run
against svcpath's loader and printer.

Each test line `RULE;EXPECTED;OK|FAIL[;VARIANT[;ALT]]` becomes a minimal iptables-restore dump
(the file's table, its built-in chains, the named user chains, the rule in each named chain).
The same lines go through this machine's iptables-legacy-restore / iptables-legacy-save (and the
nft back end, for information) in a throwaway network namespace. The local legacy tools are the
reference: where they disagree with the upstream expectation the line is listed as version drift
and svcpath is judged against what the local tools did, except where this kernel refused a rule
at COMMIT (a module missing here): there the upstream expectation decides. Needs root (exit 77
otherwise, as ctest's skip).

svcpath passes a line when it refuses what the reference refuses (with `file:line:col: error:`
at the rule's line) and prints back exactly the rules the reference printed.

Usage: run_iptables.py SVCPATH [--markdown FILE] [--only MODULE] [-v] [--nft] [--update-expected]
Exit 1 on a failing line not listed in iptables-expected-failures.txt, or a listed line passing.
"""

import argparse
import collections
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(HERE, "iptables")
EXPECTED = os.path.join(HERE, "iptables-expected-failures.txt")

BUILTIN = {
    "filter": ["INPUT", "FORWARD", "OUTPUT"],
    "nat": ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
    "mangle": ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
    "raw": ["PREROUTING", "OUTPUT"],
    "security": ["INPUT", "FORWARD", "OUTPUT"],
}

# A rule iptables-restore parsed but this machine's kernel refused at COMMIT (a module missing here).
KERNEL = "refused by this kernel at COMMIT"

Case = collections.namedtuple("Case", "file lineno table chains rule expected res variant alt prelude")


def families(name):
    # The upstream runner: libipt_ with iptables, libip6t_ with ip6tables, libxt_ with both.
    if name.startswith("libip6t_"):
        return ["6"]
    if name.startswith("libxt_"):
        return ["4", "6"]
    return ["4"]


def parse(path):
    """The test lines of one .t file, each with the table, chains and % rules in force."""
    name = os.path.basename(path)
    table, chains, prelude, cases = "filter", [], [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            if line.startswith("*"):
                table = line[1:].strip()
                continue
            if line.startswith(":"):
                chains = line[1:].strip().split(",")
                continue
            if line.startswith("%"):
                # `%iptables -I CHAIN RULE` / `-D CHAIN RULE`: a rule other lines depend on.
                words = line[1:].split(None, 3)
                if len(words) == 4 and words[1] in ("-I", "-A"):
                    prelude = prelude + [(words[2], words[3])]
                elif len(words) == 4 and words[1] == "-D":
                    prelude = [p for p in prelude if p != (words[2], words[3])]
                continue
            if line.startswith("@"):
                continue  # an external tool (nfacct, nfct) preparing kernel state; not simulated
            item = line.split(";")
            variant = item[3].strip() if len(item) > 3 else None
            alt = item[4].strip() if len(item) > 4 else None
            cases.append(
                Case(name, lineno, table, tuple(chains), item[0], item[1], item[2].strip(), variant, alt, tuple(prelude))
            )
    return cases


def upstream_res(case):
    """The upstream expectation for the legacy back end (what iptables-test.py's variant_res does)."""
    if case.variant is None or case.variant == "LEGACY":
        return case.res
    if case.alt is not None:
        return case.alt
    return {"OK": "FAIL", "FAIL": "OK", "NOMATCH": "OK"}[case.res]


def expected_line(case, chain):
    return "-A %s %s" % (chain, case.rule if case.expected == "=" else case.expected)


def sentinel(i):
    return "svcpath-conf-%d" % i


def chain_header(table, chains):
    out = ["*" + table]
    for c in BUILTIN.get(table, []):
        out.append(":%s ACCEPT [0:0]" % c)
    for c in chains:
        if c not in BUILTIN.get(table, []):
            out.append(":%s - [0:0]" % c)
    return out


def build_dump(table, entries):
    """entries: (key, case, chain). Returns (text, {dump line: key}).

    A comment rule before each rule marks where its printed rules start in the save output."""
    chains = []
    for _, case, chain in entries:
        if chain not in chains:
            chains.append(chain)
    lines = chain_header(table, chains)
    seen = set()
    for _, case, _ in entries:
        for pchain, prule in case.prelude:
            if (pchain, prule) not in seen and table == "filter":
                seen.add((pchain, prule))
                lines.append("-A %s %s" % (pchain, prule))
    owner = {}
    for i, (key, case, chain) in enumerate(entries):
        lines.append("-A %s -m comment --comment %s" % (chain, sentinel(i)))
        lines.append("-A %s %s" % (chain, case.rule))
        owner[len(lines)] = key
    lines.append("COMMIT")
    return "\n".join(lines) + "\n", owner


def printed_rules(save, table, entries):
    """{key: [printed rule lines]} for the entries, split at the sentinels."""
    out = {key: [] for key, _, _ in entries}
    index = {sentinel(i): key for i, (key, _, _) in enumerate(entries)}
    in_table, current = False, {}
    for line in save.splitlines():
        if line.startswith("*"):
            in_table = line[1:] == table
            continue
        if not in_table or not line.startswith("-A "):
            continue
        chain = line.split()[1]
        m = re.fullmatch(r"-A \S+ -m comment --comment \"?(svcpath-conf-\d+)\"?", line)
        if m:
            current[chain] = index.get(m.group(1))
            continue
        if current.get(chain) is not None:
            out[current[chain]].append(line)
    return out


def run(cmd, text=None):
    return subprocess.run(cmd, input=text, capture_output=True, text=True)


class Local:
    """This machine's iptables (one back end, one family) in the runner's own network namespace."""

    def __init__(self, backend, family):
        pre = "ip6tables" if family == "6" else "iptables"
        self.restore = ["%s-%s-restore" % (pre, backend), "-w"]
        self.save = "%s-%s-save" % (pre, backend)

    def observe(self, table, entries):
        """{key: None (refused) or [printed lines]} for entries of one table."""
        result = {}
        pending = list(entries)
        while pending:
            text, owner = build_dump(table, pending)
            p = run(self.restore, text)
            if p.returncode == 0:
                s = run([self.save, "-t", table])
                got = printed_rules(s.stdout, table, pending)
                for key, _, _ in pending:
                    result[key] = got[key]
                break
            m = re.search(r"Error occurred at line: (\d+)", p.stderr)
            bad = owner.get(int(m.group(1))) if m else None
            if bad is None:
                # Refused at COMMIT (the kernel's checkentry names no line): halve until found.
                if len(pending) == 1:
                    result[pending[0][0]] = KERNEL
                else:
                    half = len(pending) // 2
                    result.update(self.observe(table, pending[:half]))
                    result.update(self.observe(table, pending[half:]))
                break
            result[bad] = None
            pending = [e for e in pending if e[0] != bad]
        return result


def svcpath_observe(svcpath, family, table, entries, tmp):
    """{key: svcpath's view}: None (refused with `file:line:col: error:` at the rule's line) or the
    printed lines. svcpath installs nothing when any rule is refused, so the refused rules are
    taken out and the rest loaded again. A refusal without a position at a rule is recorded as a string (a defect)."""
    result = {}
    pending = list(entries)
    path = os.path.join(tmp, "dump-%s-%s.rules" % (family, table))
    cmd = [svcpath, "rules", "--rules", path] + (["-6"] if family == "6" else [])
    while pending:
        text, owner = build_dump(table, pending)
        with open(path, "w") as f:
            f.write(text)
        p = run(cmd)
        if p.returncode == 0:
            got = printed_rules(p.stdout, table, pending)
            for key, _, _ in pending:
                result[key] = got[key]
            break
        # svcpath reports every error it finds (up to 50), each at its line.
        lines = [int(n) for n in re.findall(r"^%s:(\d+):(?:\d+:)? error: " % re.escape(path), p.stderr, re.M)]
        bad = {owner[n] for n in lines if n in owner}
        if not bad:
            if len(pending) == 1:
                err = p.stderr.strip().replace(path, os.path.basename(path))
                result[pending[0][0]] = "refused without a position at the rule: " + err[:200]
                break
            for e in pending:
                result.update(svcpath_observe(svcpath, family, table, [e], tmp))
            break
        for key in bad:
            result[key] = None
        pending = [e for e in pending if e[0] not in bad]
    return result


def satisfies_upstream(case, obs_by_chain):
    res = upstream_res(case)
    for chain, obs in obs_by_chain.items():
        if res == "FAIL":
            if obs is not None and obs != KERNEL:
                return False
        elif obs is None or isinstance(obs, str):
            return False
        elif (expected_line(case, chain) in obs) != (res == "OK"):
            return False
    return True


def describe(obs):
    if obs is None:
        return "refused"
    if isinstance(obs, str):
        return obs
    return " | ".join(obs) if obs else "(no rule printed)"


def load_expected():
    listed = {}
    if os.path.exists(EXPECTED):
        with open(EXPECTED, encoding="utf-8") as f:
            for raw in f:
                raw = raw.strip()
                if not raw or raw.startswith("#"):
                    continue
                where, _, reason = raw.partition(" ")
                listed[where] = reason
    return listed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("svcpath")
    ap.add_argument("--markdown", help="write the per-module counts and the non-passing lines here")
    ap.add_argument("--only", help="one module (libxt_mac) or file name")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--update-expected", action="store_true", help="rewrite iptables-expected-failures.txt from this run (keeps listed reasons)")
    ap.add_argument("--nft", action="store_true", help="also run iptables-nft and list where it differs")
    ap.add_argument("--no-netns", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    # The local tools are the reference: without root, a namespace or the tools, skip (ctest: 77).
    tools = ["unshare", "iptables-legacy-restore", "iptables-legacy-save", "ip6tables-legacy-restore"]
    if os.geteuid() != 0 or not all(shutil.which(t) for t in tools):
        print("skipped: needs root, unshare and iptables-legacy (the local tools are the reference)")
        return 77
    # The local tools run in a network namespace of our own: re-exec under `unshare -n`.
    if not args.no_netns:
        os.execv(shutil.which("unshare"), ["unshare", "-n", sys.executable] + sys.argv + ["--no-netns"])
    local_ok = True

    files = sorted(f for f in os.listdir(TESTS) if f.endswith(".t"))
    if args.only:
        files = [f for f in files if f in (args.only, args.only + ".t")]
    cases = [c for f in files for c in parse(os.path.join(TESTS, f))]
    svcpath = os.path.abspath(args.svcpath)

    # (case key, family) -> chain -> observation, per observer
    legacy, nft, ours = {}, {}, {}
    entries_by = collections.defaultdict(list)  # (family, table) -> entries
    for c in cases:
        for fam in families(c.file):
            for chain in c.chains:
                entries_by[(fam, c.table)].append(((c.file, c.lineno, fam, chain), c, chain))

    def run_local():
        t0 = time.time()
        for (fam, table), entries in entries_by.items():
            for obs_map, backend in ((legacy, "legacy"), (nft, "nft")) if args.nft else ((legacy, "legacy"),):
                obs_map.update(Local(backend, fam).observe(table, entries))
        if args.verbose:
            print("local tools: %.1f s" % (time.time() - t0))

    def run_ours(tmp):
        t0 = time.time()
        for (fam, table), entries in entries_by.items():
            ours.update(svcpath_observe(svcpath, fam, table, entries, tmp))
        if args.verbose:
            print("svcpath: %.1f s" % (time.time() - t0))

    # svcpath and the local tools side by side: both are dominated by process start-up.
    with tempfile.TemporaryDirectory() as tmp, concurrent.futures.ThreadPoolExecutor(2) as pool:
        jobs = [pool.submit(run_ours, tmp)] + ([pool.submit(run_local)] if local_ok else [])
        for j in jobs:
            j.result()

    listed = load_expected()
    per_module = collections.OrderedDict()
    drift, nft_differs, failures, unexpected, now_passing = [], [], [], [], []
    for c in cases:
        where = "%s:%d" % (c.file, c.lineno)
        module = c.file[:-2]
        counts = per_module.setdefault(module, [0, 0, 0])  # lines, pass, drift
        counts[0] += 1
        ok, why = True, ""
        for fam in families(c.file):
            keys = [(c.file, c.lineno, fam, ch) for ch in c.chains]
            ref = {k[3]: legacy[k] for k in keys} if local_ok else None
            mine = {k[3]: ours[k] for k in keys}
            if ref is not None and not satisfies_upstream(c, ref):
                drift.append((where, fam, describe(next(iter(ref.values())))))
                counts[2] += 1
            if ref is not None and args.nft and any(nft[k] != legacy[k] for k in keys):
                nft_differs.append((where, fam, describe(nft[keys[0]])))
            if ref is not None and KERNEL in ref.values():
                # svcpath models iptables, not this kernel's module set: the upstream file decides.
                good = satisfies_upstream(c, mine)
                want = "upstream %s" % upstream_res(c)
                ref = None
            elif ref is not None:
                good = all(mine[ch] == ref[ch] for ch in ref)
                want = describe(next(iter(ref.values())))
            else:
                good = satisfies_upstream(c, mine)
                want = "upstream %s" % upstream_res(c)
            if not good and ok:
                ok = False
                bad = [ch for ch in c.chains if ref is None or mine[ch] != ref[ch]][0]
                why = "IPv%s %s: want %s; svcpath: %s" % (
                    fam,
                    bad,
                    describe(ref[bad]) if ref else want,
                    describe(mine[bad]),
                )
        if ok:
            counts[1] += 1
            if where in listed:
                now_passing.append(where)
        else:
            failures.append((where, why))
            if where not in listed:
                unexpected.append((where, why))

    total = sum(v[0] for v in per_module.values())
    passed = sum(v[1] for v in per_module.values())
    for module, (n, p, d) in per_module.items():
        if args.verbose or p != n:
            print("%-22s %4d/%-4d%s" % (module, p, n, "  (%d drift)" % d if d else ""))
    print("iptables conformance: %d/%d lines pass in %d modules; %d version drift, %d listed failures" % (
        passed, total, len(per_module), len(drift), len(failures) - len(unexpected)))
    if args.verbose:
        for where, fam, what in drift:
            print("drift %s IPv%s: local tools: %s" % (where, fam, what))
        for where, fam, what in nft_differs:
            print("nft back end differs %s IPv%s: %s" % (where, fam, what))
    for where, why in unexpected:
        print("FAIL %s %s" % (where, why))
    for where in now_passing:
        print("PASSES but listed in iptables-expected-failures.txt: %s (delete the line)" % where)

    if args.update_expected:
        with open(EXPECTED, "w", encoding="utf-8") as f:
            f.write(EXPECTED_HEADER)
            for where, why in failures:
                f.write("%s %s\n" % (where, listed.get(where) or auto_reason(where, why)))
        return 0
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            write_markdown(f, per_module, drift, nft_differs, failures, listed, passed, total)
    if args.only:
        return 1 if unexpected else 0
    return 1 if unexpected or now_passing else 0


EXPECTED_HEADER = """\
# Lines of tests/conformance/iptables/*.t that svcpath does not pass yet: FILE:LINE reason.
# Reasons: `version drift` (the local tools cannot be the reference), `not simulated: ...`,
# `svcpath: ...` (a known gap). run_iptables.py fails when a listed line passes: delete it then.
"""

EXT6 = ("libip6t_frag", "libip6t_ipv6header", "libip6t_hbh", "libip6t_dst", "libip6t_rt")


def auto_reason(where, why):
    if where.startswith(EXT6):
        return "svcpath: ext6 pending"
    mine = why.split("; svcpath: ", 1)[-1]
    if mine.startswith("refused without"):
        return "svcpath: error without the rule's position"
    if mine == "refused":
        return "svcpath: refuses what iptables loads"
    if "want refused" in why:
        return "svcpath: loads what iptables refuses"
    return "svcpath: prints differently"


def write_markdown(f, per_module, drift, nft_differs, failures, listed, passed, total):
    f.write("<!-- generated by tests/conformance/run_iptables.py --markdown; do not edit by hand -->\n")
    f.write("**%d of %d lines pass.**\n\n" % (passed, total))
    f.write("| module | lines | pass | version drift |\n|---|---:|---:|---:|\n")
    for module, (n, p, d) in per_module.items():
        f.write("| %s | %d | %d | %d |\n" % (module, n, p, d))
    f.write("\n### Lines svcpath does not pass\n\n")
    for where, why in failures:
        f.write("- `%s` — %s (%s)\n" % (where, listed.get(where, "not listed"), why.replace("|", "\\|")))
    f.write("\n### Version drift: this machine's iptables 1.8.9 (legacy) disagrees with the 1.8.11 file\n\n")
    f.write("svcpath is judged against the local tools for these lines.\n\n")
    for where, fam, what in drift:
        f.write("- `%s` IPv%s: local tools: %s\n" % (where, fam, what.replace("|", "\\|")))
    if not nft_differs:
        return
    f.write("\n### The nft back end differs from legacy (information only)\n\n")
    for where, fam, what in nft_differs:
        f.write("- `%s` IPv%s: iptables-nft: %s\n" % (where, fam, what.replace("|", "\\|")))


if __name__ == "__main__":
    sys.exit(main())
