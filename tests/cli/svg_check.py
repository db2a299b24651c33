#!/usr/bin/env python3
"""Geometry checks for svcpath's hook pictures (cli/picture.cpp), on the SVG as drawn.

A picture fits (the <svg>'s width at most --max-width, panels side by side without overlapping,
every panel's content inside its frame), its text fits (no text's estimated extent leaves the box it
is in), and the packet's path tells the truth (no segment of it crosses a hook box - the ones the
packet did not visit above all - nor runs over any text). Each picture carries a one-line legend.

    svg_check.py FILE...          check every picture in each SVG or HTML file
    svg_check.py --selftest       show that each check can fail

Text extents are estimated with DejaVu Sans' advance widths (Debian's sans-serif, as Chromium
measures them with canvas measureText), DejaVu Sans Mono's 0.602 em, bold sans as 1.2 times.
"""
import re
import sys
import xml.etree.ElementTree as ET

SVG = "{http://www.w3.org/2000/svg}"

# Thousandths of an em for ' '..'~'.
SANS = [
    318, 401, 460, 838, 636, 950, 780, 275, 390, 390, 500, 838, 318, 361, 318, 337, 636, 636, 636, 636, 636, 636, 636,
    636, 636, 636, 337, 337, 838, 838, 838, 531, 1000, 684, 686, 698, 770, 632, 575, 775, 752, 295, 295, 656, 557, 863,
    748, 787, 603, 787, 695, 635, 611, 732, 684, 989, 685, 611, 685, 390, 337, 390, 838, 500, 500, 613, 635, 550, 635,
    615, 352, 635, 634, 278, 278, 579, 278, 974, 634, 612, 635, 635, 411, 521, 392, 634, 592, 818, 592, 592, 525, 636,
    337, 636, 838]

# The text classes the pictures use: (font, size in px). A text of another class is an error, so a
# new kind of text cannot slip past the checks unmeasured.
FONTS = {
    "title": ("bold", 14), "legend": ("sans", 11), "mode": ("bold", 13), "proctext": ("sans", 11),
    "end": ("sans", 11), "hookname": ("bold", 11), "row": ("sans", 11), "badgenum": ("bold", 10),
    "step": ("mono", 11), "outcome": ("mono", 11), "alt": ("mono", 11),
}
EPS = 0.5


def text_width(s, font, size):
    if font == "mono":
        return len(s) * 0.602 * size
    em = sum(SANS[ord(c) - 32] / 1000 if 32 <= ord(c) < 127 else 1.0 for c in s)
    return em * size * (1.2 if font == "bold" else 1.0)


def shown_text(el):
    """The text drawn: the element's and its tspans', without hover <title>s."""
    out = [el.text or ""]
    for child in el:
        if child.tag != SVG + "title":
            out.append(shown_text(child))
        out.append(child.tail or "")
    return "".join(out)


def classes(el):
    return (el.get("class") or "").split()


def translate(el):
    m = re.fullmatch(r"\s*translate\(\s*([-\d.]+)[ ,]+([-\d.]+)\s*\)\s*", el.get("transform") or "translate(0,0)")
    if not m:
        raise ValueError(f"unsupported transform {el.get('transform')!r}")
    return float(m.group(1)), float(m.group(2))


class Box:
    def __init__(self, x0, y0, x1, y1):
        self.x0, self.y0, self.x1, self.y1 = x0, y0, x1, y1

    def within(self, o):
        return self.x0 >= o.x0 - EPS and self.x1 <= o.x1 + EPS and self.y0 >= o.y0 - EPS and self.y1 <= o.y1 + EPS

    def overlaps(self, o):
        return self.x0 < o.x1 - EPS and o.x0 < self.x1 - EPS and self.y0 < o.y1 - EPS and o.y0 < self.y1 - EPS

    def __repr__(self):
        return f"({self.x0:g},{self.y0:g})-({self.x1:g},{self.y1:g})"


def text_box(el, dx, dy):
    cls = [c for c in classes(el) if c in FONTS]
    if not cls:
        raise ValueError(f"text {shown_text(el)!r} has no known class ({el.get('class')!r})")
    font, size = FONTS[cls[0]]
    w = text_width(shown_text(el), font, size)
    x, y = float(el.get("x")) + dx, float(el.get("y")) + dy
    anchor = el.get("text-anchor", "start")
    x0 = x - w if anchor == "end" else x - w / 2 if anchor == "middle" else x
    return Box(x0, y - 0.76 * size, x0 + w, y + 0.24 * size)


def rect_box(el, dx, dy):
    x, y = float(el.get("x")) + dx, float(el.get("y")) + dy
    return Box(x, y, x + float(el.get("width")), y + float(el.get("height")))


def crosses(a, b, box):
    """Whether segment a-b passes through the open interior of box (Liang-Barsky clipping)."""
    (x0, y0), (x1, y1) = a, b
    dx, dy = x1 - x0, y1 - y0
    t0, t1 = 0.0, 1.0
    for p, q in ((-dx, x0 - box.x0), (dx, box.x1 - x0), (-dy, y0 - box.y0), (dy, box.y1 - y0)):
        if p == 0:
            if q <= EPS:
                return False
        else:
            t = q / p
            if p < 0:
                t0 = max(t0, t)
            else:
                t1 = min(t1, t)
    if t0 >= t1:
        return False
    # Some length inside, not just a touch of the border.
    return (t1 - t0) * (abs(dx) + abs(dy)) > EPS


def walk(el, dx, dy, out):
    """(element, dx, dy) for el's subtree, translations applied."""
    out.append((el, dx, dy))
    tx, ty = translate(el) if el.get("transform") else (0, 0)
    for child in el:
        if child.tag == SVG + "title" or child.tag == SVG + "tspan":
            continue
        walk(child, dx + tx, dy + ty, out)
    return out


def check_svg(root, max_width, where):
    errs = []
    width = float(root.get("width"))
    vb = [float(v) for v in root.get("viewBox").split()]
    if width > max_width + EPS:
        errs.append(f"{where}: the picture is {width:g} px wide, more than {max_width:g}")
    if abs(width / vb[2] - float(root.get("height")) / vb[3]) > 0.01:
        errs.append(f"{where}: width and height scale the viewBox differently")
    pictures = [g for g in root.iter(SVG + "g") if "picture" in classes(g)]
    if not pictures:
        errs.append(f"{where}: no picture")
    canvas = Box(vb[0], vb[1], vb[0] + vb[2], vb[1] + vb[3])
    for pic in pictures:
        pname = f"{where} picture {pic.get('data-index')}"
        px, py = translate(pic)
        legends = [t for t in pic if t.tag == SVG + "text" and "legend" in classes(t)]
        if len(legends) != 1 or not shown_text(legends[0]).strip():
            errs.append(f"{pname}: {len(legends)} legend lines, want one")
        for t in pic:
            if t.tag == SVG + "text" and not text_box(t, px, py).within(canvas):
                errs.append(f"{pname}: {shown_text(t)!r} runs off the picture")
        panels = [g for g in pic if g.tag == SVG + "g" and "panel" in classes(g)]
        frames = []
        for pn in panels:
            name = f"{pname} {pn.get('data-mode')} panel"
            items = walk(pn, px, py, [])
            frame = [rect_box(e, dx, dy) for e, dx, dy in items if e.tag == SVG + "rect" and "frame" in classes(e)]
            if len(frame) != 1:
                errs.append(f"{name}: {len(frame)} frames")
                continue
            frame = frame[0]
            for e, _, _ in items:
                if e.tag == SVG + "desc" and "unrouted" in classes(e):
                    errs.append(f"{name}: {e.text}")
            if not frame.within(canvas):
                errs.append(f"{name}: frame {frame} outside the picture {canvas}")
            frames.append((name, frame))
            texts, boxes, paths = [], [], []
            for e, dx, dy in items:
                if e.tag == SVG + "text":
                    tb = text_box(e, dx, dy)
                    texts.append((shown_text(e), tb))
                    if not tb.within(frame):
                        errs.append(f"{name}: text {shown_text(e)!r} {tb} outside the panel {frame}")
                elif e.tag == SVG + "rect" and "frame" not in classes(e):
                    if not rect_box(e, dx, dy).within(frame):
                        errs.append(f"{name}: a rect outside the panel")
                elif e.tag == SVG + "polyline" and "path" in classes(e):
                    pts = [tuple(float(v) for v in p.split(",")) for p in e.get("points").split()]
                    pts = [(x + dx, y + dy) for x, y in pts]
                    paths.append((e, pts))
                    for x, y in pts:
                        if not Box(x, y, x, y).within(frame):
                            errs.append(f"{name}: the path leaves the panel at ({x:g},{y:g})")
                elif e.tag == SVG + "g" and "hook" in classes(e):
                    rects = [c for c in e if c.tag == SVG + "rect"]
                    hb = rect_box(rects[0], dx + translate(e)[0], dy + translate(e)[1])
                    boxes.append((e.get("data-hook"), "visited" in classes(e), hb))
                    for t in e.iter(SVG + "text"):
                        tb = text_box(t, dx, dy)
                        if not tb.within(hb):
                            errs.append(f"{name}: {shown_text(t)!r} {tb} runs off the {e.get('data-hook')} box {hb}")
            for e, pts in paths:
                edge = f"{e.get('data-from')} -> {e.get('data-to')}"
                for a, b in zip(pts, pts[1:]):
                    for hook, visited, hb in boxes:
                        if crosses(a, b, hb):
                            what = "a box it visits" if visited else "a box it did not visit"
                            errs.append(f"{name}: path {edge} segment {a}-{b} crosses {hook}, {what}")
                    for s, tb in texts:
                        if crosses(a, b, tb):
                            errs.append(f"{name}: path {edge} segment {a}-{b} runs over the text {s!r}")
        for i, (n1, f1) in enumerate(frames):
            for n2, f2 in frames[i + 1:]:
                if f1.overlaps(f2):
                    errs.append(f"{n1} overlaps {n2}")
    return errs


def svgs_of(text):
    """The pictures' <svg> documents in an SVG or HTML file (a report also holds gnuplot's)."""
    out = []
    for m in re.finditer(r"<svg\b.*?</svg>", text, re.S):
        if 'class="picture"' in m.group(0):
            out.append(ET.fromstring(m.group(0)))
    return out


def check_file(path, max_width=1400):
    text = open(path, encoding="utf-8").read()
    roots = svgs_of(text)
    if not roots:
        return [f"{path}: no picture in it"]
    errs = []
    for i, r in enumerate(roots):
        errs += check_svg(r, max_width, f"{path}#{i + 1}")
    return errs


SELF = """<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="100" viewBox="0 0 {w} 100">
<g class="picture" data-index="1" transform="translate(0,0)"><text class="legend" x="10" y="10">legend</text>
<g class="panel" data-mode="m" transform="translate(0,20)">{desc}<rect class="frame" x="0" y="0" width="300" height="80"/>
<g class="hook" data-hook="FORWARD"><rect x="100" y="10" width="60" height="40"/>
<text class="row" x="104" y="30">{row}</text></g>
<text class="end" x="2" y="70">in eth0</text>
<polyline class="path" points="{path}"/></g></g></svg>"""


def selftest():
    good = dict(w=300, row="filter 0", path="2,60 200,60", desc="")
    cases = [
        ({}, None),
        ({"w": 1500}, "wide"),
        ({"row": "a very long row label indeed"}, "runs off the FORWARD box"),
        ({"path": "2,5 200,40"}, "did not visit"),
        ({"path": "2,66 60,66"}, "runs over the text"),
        ({"path": "2,60 400,60"}, "leaves the panel"),
        ({"desc": '<desc class="unrouted">1 edges of the path could not be drawn</desc>'}, "could not be drawn"),
    ]
    bad = 0
    for change, want in cases:
        svg = SELF.format(**{**good, **change})
        errs = check_svg(ET.fromstring(svg), 1400, "selftest")
        ok = not errs if want is None else any(want in e for e in errs)
        if not ok:
            bad += 1
            print(f"selftest {change}: want {want or 'no error'}, got {errs}")
    print("selftest ok" if not bad else f"selftest: {bad} failures")
    return 1 if bad else 0


def main(argv):
    if argv[1:] == ["--selftest"]:
        return selftest()
    errs = []
    for path in argv[1:]:
        errs += check_file(path)
    for e in errs:
        print(e)
    print(f"{len(argv) - 1} files: " + ("ok" if not errs else f"{len(errs)} problems"))
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
