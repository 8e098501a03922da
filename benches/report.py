#!/usr/bin/env python3
"""Turns scripts/bench.sh's results.csv into results.md (tables, ratios, the
issue's targets) and plot.svg (time against account count for sync, status and
one change; log-log), with nothing but the standard library.

  report.py RESULTS.csv RESULTS.md PLOT.svg MACHINE HASH_METHOD
"""

import csv
import math
import sys

ARGON2_DEFAULT_MIB = 19  # 19456 KiB


def load(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def find(rows, group, case_start, accounts=None):
    for r in rows:
        if r["group"] == group and r["case"].startswith(case_start):
            if accounts is None or int(r["accounts"]) == accounts:
                return r
    return None


def secs(r):
    return float(r["seconds"]) if r else float("nan")


def ms(x):
    return f"{x * 1000:.1f} ms" if x < 1 else f"{x:.2f} s"


def rss_kib(r):
    note = r["note"] if r else ""
    return int(note.split()[2]) if note.startswith("peak RSS") else 0


def verdict(ok):
    return "**met**" if ok else "**not met**"


def service(rows):
    """Section 5: the service (credsyncd)."""
    api = [r for r in rows if r["group"] == "api"]
    out = []
    if api:
        n = int(api[0]["accounts"])
        out.append(f"### 5. The service (`credsyncd`), {n:,} accounts\n")
        out.append("| clients | Verify calls/s | floor (cores / one Argon2id) | floor / measured | p50 | p99 |")
        out.append("|---:|---:|---:|---:|---:|---:|")
        for clients in (1, 8, 64):
            tput = find(rows, "api", f"Verify throughput, {clients} clients")
            if not tput:
                continue
            floor = float(tput["note"].split()[1].rstrip("/s:"))
            measured = secs(tput)
            p50 = secs(find(rows, "api", f"Verify p50, {clients} clients"))
            p99 = secs(find(rows, "api", f"Verify p99, {clients} clients"))
            out.append(f"| {clients} | {measured:.1f} | {floor:.1f} | {floor / measured:.2f}x | {ms(p50)} | {ms(p99)} |")
        out.append("")
        for case in ("one Argon2id check", "one Argon2id hash", "Verify p50 beyond one Argon2id", "Verify with the cheapest", "SetPassword, one call",
                     "SetPassword beyond", "event after a SetPassword", "event after credsync recover"):
            r = find(rows, "api", case)
            if r:
                note = f" ({r['note']})" if r["note"] else ""
                out.append(f"- {r['case']}: {ms(secs(r))}{note}")
        out.append("")
    return out


def fleet(rows):
    """Section 6: fleet mode (benches/fleet_scale.rs)."""
    rows = [r for r in rows if r["group"] == "fleet"]
    if not rows:
        return []
    n = int(rows[0]["accounts"])
    out = [f"### 6. Fleet mode, {n:,} simulated nodes, 3-member etcd with TLS\n"]
    for r in rows:
        if r["seconds"]:
            note = f" ({r['note']})" if r["note"] else ""
            out.append(f"- {r['case']}: {float(r['seconds']):.3f} s{note}")
        else:
            out.append(f"- {r['case']}: {r['note']}")
    out.append("")
    return out


def markdown(rows, machine, method):
    out = []
    sizes = sorted({int(r["accounts"]) for r in rows if r["group"] in ("sync", "status")})
    if not sizes:  # scripts/bench.sh --service-only
        return "\n".join([f"Machine: {machine}.\n"] + service(rows) + fleet(rows)) + "\n"
    largest = sizes[-1]
    out.append(f"Machine: {machine}. Linux hash: {method} (the host's pam_unix setting, "
               "used by both tools). Each time is hyperfine's median.\n")

    out.append("### 1. `import` against `chpasswd`\n")
    out.append("| Argon2 cost | batch | credsync | chpasswd | credsync / chpasswd | "
               "chpasswd / credsync | hashing floor | credsync / floor |")
    out.append("|---|---|---|---|---|---|---|---|")
    ratios = {}
    for cost in ("minimum", "default"):
        cred = find(rows, "import", f"credsync ({cost}")
        chp = find(rows, "import", f"chpasswd ({cost}")
        flo = find(rows, "import", f"hashing floor ({cost}")
        if not cred:
            continue
        c, h, f = secs(cred), secs(chp), secs(flo)
        ratios[cost] = (c / h, h / c, c / f)
        out.append(f"| {cost} | {cred['note']} into {cred['accounts']} accounts | {ms(c)} | "
                   f"{ms(h)} | {c / h:.2f} | {h / c:.2f}× faster | {ms(f)} | {c / f:.2f} |")
    out.append("")

    out.append("### 2. `sync` and `status --json`\n")
    out.append("| accounts | sync, no drift | status --json |")
    out.append("|---|---|---|")
    for n in sizes:
        out.append(f"| {n:,} | {ms(secs(find(rows, 'sync', 'no drift', n)))} | "
                   f"{ms(secs(find(rows, 'status', 'status', n)))} |")
    for r in rows:
        if r["group"] == "sync" and "drift (" in r["case"]:
            out.append(f"| {int(r['accounts']):,}, {r['case']} | {ms(secs(r))} | |")
    out.append("")

    out.append("### 3. One self-service `passwd --stdin`\n")
    hashing = [r for r in rows if r["group"] == "hash"]
    hashing_total = sum(secs(r) for r in hashing)
    parts = ", ".join(f"{r['case']} {ms(secs(r))}" for r in hashing)
    cheap = find(rows, "hash-cheap", "")
    out.append(f"Hashing in one change at the default costs: {ms(hashing_total)} ({parts}), "
               "measured apart (benches/hash_floor.rs). The last column is the same change "
               "with the cheapest hashes (yescrypt cost 1, Argon2id at its minimum, "
               f"{ms(secs(cheap))} of hashing, subtracted): what credsync adds, without "
               "subtracting two figures taken at different moments.\n")
    out.append("| accounts | time | minus hashing | peak RSS | RSS − Argon2 memory | "
               "beyond hashing (cheapest hashes) |")
    out.append("|---|---|---|---|---|---|")
    for n in sizes:
        total = find(rows, "passwd", "one change", n)
        extra = find(rows, "passwd", "one change minus", n)
        bare = find(rows, "passwd", "one change, cheapest", n)
        rss = rss_kib(total) / 1024
        out.append(f"| {n:,} | {ms(secs(total))} | {ms(secs(extra))} | {rss:.1f} MiB | "
                   f"{rss - ARGON2_DEFAULT_MIB:.1f} MiB | {ms(secs(bare))} |")
    out.append("")

    pam_sizes = sorted({int(r["accounts"]) for r in rows if r["group"] == "pam"})
    if pam_sizes:
        out.append("### 4. Real `passwd` (root, through PAM), with and without `pam_credsync.so`\n")
        out.append("| accounts | without the module | with it | added | added beyond one Argon2id hash |")
        out.append("|---:|---:|---:|---:|---:|")
        argon2 = find(rows, "hash", "Argon2id")
        for n in pam_sizes:
            without = secs(find(rows, "pam", "passwd, without", n))
            with_ = secs(find(rows, "pam", "passwd, with ", n))
            beyond = (with_ - without - secs(argon2)) if argon2 else float("nan")
            out.append(f"| {n:,} | {ms(without)} | {ms(with_)} | {ms(with_ - without)} | {ms(beyond)} |")
        out.append("")

    out.extend(service(rows))
    out.extend(fleet(rows))

    out.append("### Targets\n")
    out.append("| target | measured | |")
    out.append("|---|---|---|")
    if "minimum" in ratios:
        speedup = ratios["minimum"][1]
        out.append(f"| import, minimum Argon2 cost: ≥ 1.8× faster than chpasswd | "
                   f"{speedup:.2f}× | {verdict(speedup >= 1.8)} |")
    if "default" in ratios:
        over = ratios["default"][2]
        out.append(f"| import, default cost: within 1.2× of the hashing floor | "
                   f"{over:.2f}× | {verdict(over <= 1.2)} |")
    s = secs(find(rows, "sync", "no drift", largest))
    out.append(f"| sync of {largest:,} accounts, no drift: under 1 s | {ms(s)} | {verdict(s < 1)} |")
    ten = find(rows, "passwd", "one change, cheapest", 10000)
    ten_sub = find(rows, "passwd", "one change minus", 10000)
    if ten:
        out.append(f"| one change beyond hashing at 10,000 accounts: under 20 ms | "
                   f"{ms(secs(ten))} (default costs, hashing subtracted: {ms(secs(ten_sub))}) | "
                   f"{verdict(secs(ten) < 0.020)} |")
    worst = max(rss_kib(find(rows, "passwd", "one change", n)) for n in sizes) / 1024
    out.append(f"| one change, peak memory under 64 MiB + Argon2 ({ARGON2_DEFAULT_MIB} MiB) | "
               f"{worst:.1f} MiB at {largest:,} | {verdict(worst < 64 + ARGON2_DEFAULT_MIB)} |")
    out.append("")
    return "\n".join(out)


def plot(rows, path):
    series = [
        ("sync, no drift", "sync", "no drift", "#1f77b4", ""),
        ("status --json", "status", "status", "#2ca02c", ""),
        ("one change", "passwd", "one change", "#d62728", ""),
        ("one change beyond hashing", "passwd", "one change, cheapest hashes, minus them",
         "#d62728", "6,4"),
    ]
    points = []
    for label, group, case, color, dash in series:
        pts = sorted(
            (int(r["accounts"]), secs(r) * 1000)
            for r in rows
            if r["group"] == group
            and (r["case"] == case or (case == "status" and r["case"].startswith("status")))
            and secs(r) > 0
        )
        if pts:
            points.append((label, color, dash, pts))
    width, height, left, right, top, bottom = 720, 440, 70, 210, 30, 50
    xs = [x for _, _, _, pts in points for x, _ in pts]
    ys = [y for _, _, _, pts in points for _, y in pts]
    x0, x1 = math.log10(min(xs)), math.log10(max(xs))
    if x1 == x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    y0 = math.floor(math.log10(min(ys)))
    y1 = math.ceil(math.log10(max(ys)))
    if y1 == y0:
        y1 += 1

    def px(x):
        return left + (math.log10(x) - x0) / (x1 - x0) * (width - left - right)

    def py(y):
        return height - bottom - (math.log10(y) - y0) / (y1 - y0) * (height - top - bottom)

    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>']
    for e in range(y0, y1 + 1):
        y = py(10 ** e)
        svg.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#ddd"/>')
        label = f"{10 ** e:g} ms" if e < 3 else f"{10 ** (e - 3):g} s"
        svg.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    for x in sorted(set(xs)):
        svg.append(f'<line x1="{px(x):.1f}" y1="{top}" x2="{px(x):.1f}" y2="{height - bottom}" stroke="#ddd"/>')
        svg.append(f'<text x="{px(x):.1f}" y="{height - bottom + 18}" text-anchor="middle">{x:,}</text>')
    svg.append(f'<text x="{(left + width - right) / 2}" y="{height - 10}" text-anchor="middle">'
               "accounts (log scale)</text>")
    svg.append(f'<text x="14" y="{(top + height - bottom) / 2}" text-anchor="middle" '
               f'transform="rotate(-90 14 {(top + height - bottom) / 2})">time, median (log scale)</text>')
    for i, (label, color, dash, pts) in enumerate(points):
        d = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        svg.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="2"{dash_attr}/>')
        for x, y in pts:
            svg.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"/>')
        ly = top + 10 + 22 * i
        lx = width - right + 14
        svg.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 24}" y2="{ly}" stroke="{color}" '
                   f'stroke-width="2"{dash_attr}/>')
        svg.append(f'<text x="{lx + 30}" y="{ly + 4}">{label}</text>')
    svg.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(svg) + "\n")


def main(argv):
    rows = load(argv[1])
    with open(argv[2], "w") as f:
        f.write(markdown(rows, argv[4], argv[5]))
    if any(r["group"] == "sync" for r in rows):
        plot(rows, argv[3])


if __name__ == "__main__":
    main(sys.argv)
