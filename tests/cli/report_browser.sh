#!/usr/bin/env bash
# The demo's HTML report opened in real headless Chromium: it loads with no console messages at all
# (no scripts, nothing fetched), a screenshot is produced, and the rendered page shows the expected
# sections and the numbers of the replay it was written from. Exit 77 = skipped (no chromium).
set -u
bin=$1
command -v chromium >/dev/null || { echo "SKIP: chromium is not installed (scripts/install-deps installs it)"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fail=$((fail + 1)); }

"$bin" demo --out "$tmp/demo" --sweep 100,1000 > "$tmp/demo.out" 2>&1 || { cat "$tmp/demo.out"; bad "svcpath demo failed"; exit 1; }
report="$tmp/demo/report.html"
[ -s "$report" ] && ok "demo wrote report.html" || bad "no report.html"

chrome=(chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run --disable-extensions
        --user-data-dir="$tmp/profile" --enable-logging=stderr --v=0)
timeout 120 "${chrome[@]}" --window-size=1400,3000 --screenshot="$tmp/shot.png" "file://$report" > /dev/null 2> "$tmp/shot.err"
if [ -s "$tmp/shot.png" ] && [ "$(head -c 8 "$tmp/shot.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; then
  ok "screenshot taken ($(stat -c %s "$tmp/shot.png") bytes of PNG)"
else
  bad "no screenshot"; tail -5 "$tmp/shot.err"
fi
timeout 120 "${chrome[@]}" --dump-dom "file://$report" > "$tmp/dom.html" 2> "$tmp/dom.err"
if grep -h "CONSOLE" "$tmp/shot.err" "$tmp/dom.err" > "$tmp/console"; then
  bad "console messages:"; cat "$tmp/console"
else
  ok "no console messages"
fi
for id in traces summary agreement shares cost diff scaling; do
  grep -q "<section id=\"$id\">" "$tmp/dom.html" && ok "section $id rendered" || bad "section $id missing"
done
# The migration section: its classes are the demo's printed ones, with one picture per class.
want=$(sed -n 's/^Migrating from IPVS to nftables (\([0-9]*\) flows.*: \([0-9]*\) change$/\1 flows, \2 change/p' "$tmp/demo.out")
got=$(python3 -c 'import re,sys; h=open(sys.argv[1]).read(); s=h[h.index("<section id=\"diff\">"):]; s=s[:s.index("</section>")]
m=re.search(r"<p>(\d+) flows .*?<b>(\d+)</b> change", s); print(f"{m.group(1)} flows, {m.group(2)} change")' "$tmp/dom.html" 2>/dev/null)
[ -n "$want" ] && [ "$want" = "$got" ] && ok "migration section: $got, as the demo printed" || bad "migration section: page '$got', demo '$want'"
# Numbers: what the report shows must be what the replay counted.
python3 - "$tmp/demo/replay.json" "$tmp/dom.html" <<'PY' && ok "replay numbers in the page match replay.json" || bad "replay numbers differ"
import json, re, sys
r = json.load(open(sys.argv[1]))
dom = open(sys.argv[2]).read()
row = re.search(r"<tr><td>Packets replayed</td>(.*?)</tr>", dom).group(1)
cells = re.findall(r'<td class="n">(\d+)</td>', row)
want = [str(r["modes"][m]["packets"]) for m in r["modes"]]
assert cells == want, (cells, want)
assert f"{r['capture']['frames']} frames" in dom
PY
grep -q 'data-plot="sweep-ns"' "$tmp/dom.html" && grep -q 'data-plot="cost-new"' "$tmp/dom.html" && ok "plots present" || bad "plots missing"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
