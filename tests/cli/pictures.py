#!/usr/bin/env python3
"""Every example picture through tests/cli/svg_check.py: the example clusters in all three modes
side by side (ClusterIP from a pod, NodePort from outside, a local process, a hairpin to the pod
itself, a localhost NodePort over loopback, a Service without endpoints, IPv6), plain dumps
(iptables, nftables), the demo's traces.svg and report, and trace's html; plus what the checker
cannot see: the legend in the dot form, IPVS mode's INPUT -> OUTPUT edge, three panels.

    pictures.py path/to/svcpath
"""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svg_check  # noqa: E402

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EX = os.path.join(SRC, "examples")
BASIC = ["--cluster", f"{EX}/clusters/basic.yaml", "--cluster", f"{EX}/clusters/nodes.yaml", "--node", "node-a"]
DUAL = ["--cluster", f"{EX}/clusters/dual-stack.yaml", "--cluster", f"{EX}/clusters/nodes.yaml", "--node", "node-a"]
NP = ["--cluster", f"{EX}/networkpolicy/cluster.yaml", "--node", "node-a"]
MODES = ["--mode", "iptables,ipvs,nftables"]
PACKETS = [
    "tcp 10.244.1.10:40000 -> 172.30.0.41:80",  # ClusterIP from a pod
    "tcp 192.168.1.50:40000 -> 10.0.0.10:30080",  # NodePort from outside
    "tcp 10.0.0.10:40000 -> 172.30.0.41:80",  # a local process
    "tcp 127.0.0.1:40000 -> 127.0.0.1:30080",  # localhost NodePort: loopback
    "tcp 10.244.1.10:40000 -> 172.30.0.99:80",  # no endpoints: rejected
    "udp 10.244.1.10:40000 -> 172.30.0.10:53",
]
HAIRPIN = "tcp 10.244.1.5:40000 -> 172.30.0.41:80"  # web-1 to its own Service: one outcome is itself


def run(bin_, args, out=None):
    p = subprocess.run([bin_] + args, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"svcpath {' '.join(args)}: exit {p.returncode}\n{p.stderr}")
    if out:
        with open(out, "w", encoding="utf-8") as f:
            f.write(p.stdout)
    return p.stdout


# The estimate against the drawing: in headless Chromium, every text's rendered extent must lie in
# its hook box and its panel (skipped without chromium; report_browser.sh needs it too).
MEASURE = """<!DOCTYPE html><html><body style="margin:0">%s<pre id="out"></pre><script>
const bad = [];
const inside = (a, b) => a.left >= b.left - 0.5 && a.right <= b.right + 0.5;
for (const pn of document.querySelectorAll("g.panel")) {
  const frame = pn.querySelector("rect.frame").getBoundingClientRect();
  for (const t of pn.querySelectorAll("text"))
    if (!inside(t.getBoundingClientRect(), frame)) bad.push("panel: " + t.textContent);
  for (const h of pn.querySelectorAll("g.hook")) {
    const box = h.querySelector("rect").getBoundingClientRect();
    for (const t of h.querySelectorAll("text"))
      if (!inside(t.getBoundingClientRect(), box)) bad.push(h.dataset.hook + " box: " + t.textContent);
  }
}
document.getElementById("out").textContent = "measured:" + JSON.stringify(bad);
</script></body></html>"""


def measured(tmp, svgs):
    import shutil
    chrome = shutil.which("chromium")
    if not chrome:
        print("note: chromium missing, the drawn extents are not measured")
        return []
    errs = []
    for svg in svgs:
        page = os.path.join(tmp, os.path.basename(svg) + ".measure.html")
        with open(page, "w", encoding="utf-8") as f:
            f.write(MEASURE % open(svg, encoding="utf-8").read())
        p = subprocess.run([chrome, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
                            "--dump-dom", "file://" + page], capture_output=True, text=True, timeout=120)
        m = re.search(r"measured:(\[.*?\])</pre>", p.stdout, re.S)
        if not m:
            errs.append(f"{svg}: chromium measured nothing")
        elif m.group(1) != "[]":
            errs.append(f"{svg}: drawn text beyond its box: {m.group(1)[:400]}")
    return errs


def main(bin_):
    tmp = tempfile.mkdtemp(prefix="svcpath-pictures-")
    files, errs = [], []

    def picture(name, args, fmt="svg"):
        path = os.path.join(tmp, f"{name}.{fmt}")
        run(bin_, ["trace"] + args + ["--format", fmt], path)
        files.append(path)
        return open(path, encoding="utf-8").read()

    pk = [a for p in PACKETS for a in ("-p", p)]
    three = picture("basic-three-modes", BASIC + MODES + pk)
    for n in (1, 2, 3):  # each backend the hairpin packet may take, the pod itself among them
        picture(f"hairpin-{n}", BASIC + MODES + ["-p", HAIRPIN, "--enumerate", "--outcome", str(n)])
    picture("dual-stack-v6", DUAL + MODES + ["-p", "tcp [fd00:244:0:1::10]:40000 -> [fd00:30::a]:80"])
    picture("networkpolicy", NP + MODES + ["-p", "tcp 10.244.1.10:40000 -> 10.96.0.54:5432 in=cni0",
                                            "-p", "tcp 10.244.1.30:40001 -> 10.96.0.54:5432 in=cni0"])
    picture("rules", ["--rules", f"{EX}/rulesets/kube-clusterip.rules", "--node-config", f"{EX}/nodes/kube-node.yaml",
                      "-p", "tcp 10.244.1.5:40000 -> 172.30.0.41:80 in=veth-web"])
    picture("nft", ["--nft", f"{EX}/rulesets/nat-gateway.nft", "--node-config", f"{EX}/nodes/nat-gateway.yaml",
                    "-p", "tcp 198.51.100.9:55555 -> 203.0.113.7:8080 in=wan0"])
    picture("html", BASIC + MODES + pk[:4], "html")
    demo = os.path.join(tmp, "demo")
    run(bin_, ["demo", "--out", demo])
    files += [os.path.join(demo, "traces.svg"), os.path.join(demo, "report.html")]

    for f in files:
        errs += svg_check.check_file(f)

    # Three panels side by side in each picture, IPVS mode's ClusterIP path INPUT -> OUTPUT.
    root = svg_check.svgs_of(three)[0]
    for pic in root.iter(svg_check.SVG + "g"):
        if "picture" in svg_check.classes(pic):
            modes = [g.get("data-mode") for g in pic if "panel" in svg_check.classes(g)]
            if modes != ["iptables", "ipvs", "nftables"]:
                errs.append(f"basic-three-modes picture {pic.get('data-index')}: panels {modes}")
    if not re.search(r'data-mode="ipvs".*?data-from="INPUT" data-to="OUTPUT"', three, re.S):
        errs.append("basic-three-modes: no INPUT -> OUTPUT edge in ipvs mode")
    dot = run(bin_, ["trace"] + BASIC + MODES + ["-p", PACKETS[0], "--format", "dot"])
    if dot.count("digraph") != 3 or dot.count("Orange: the packet's path") != 3:
        errs.append("dot: want three digraphs, each with the legend")

    errs += measured(tmp, [os.path.join(tmp, "basic-three-modes.svg"), os.path.join(demo, "traces.svg")])

    for e in errs:
        print(e)
    print(f"{len(files)} pictures: " + ("ok" if not errs else f"{len(errs)} problems"))
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
