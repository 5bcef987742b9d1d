"""Per-kernel table from ncu's raw CSV (`ncu --csv --page raw --metrics gpu__time_duration.sum ...`).
  python3 bench/ncu_table.py FILE.csv [TITLE]
Groups launches by kernel name (templates shortened) and grid, prints count, mean and total microseconds and the
share of the profiled time, largest first."""
import csv
import io
import re
import sys
from collections import defaultdict


def short(name: str) -> str:
    name = re.sub(r"^void ", "", name)
    name = re.sub(r"\(anonymous namespace\)::|mambart::cuda::|mambart::", "", name)
    name = re.sub(r"\(.*$", "", name)
    return name[:70]


def main():
    path = sys.argv[1]
    title = sys.argv[2] if len(sys.argv) > 2 else path
    text = open(path, errors="replace").read()
    start = text.find('"ID"')
    if start < 0:
        print(f"{title}: no ncu rows in {path}")
        print(text[-2000:])
        return
    rows = list(csv.reader(io.StringIO(text[start:])))
    head = rows[0]
    col = head.index("gpu__time_duration.sum")
    name_col, grid_col = head.index("Kernel Name"), head.index("Grid Size")
    units = rows[1][col] if len(rows) > 1 and len(rows[1]) > col else ""
    has_units = not re.match(r"^[\d.,]+$", units)
    scale = {"nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3}.get(units, 1e-3)  # ncu's default unit: ns
    # other metrics asked of ncu (occupancy limits, warps active, waves): their mean per kernel, as extra columns
    extra = [i for i, h in enumerate(head) if ("__" in h and i != col)]
    agg = defaultdict(list)
    ext = defaultdict(lambda: defaultdict(list))
    for r in rows[2 if has_units else 1:]:
        if len(r) <= col:
            continue
        try:
            t = float(r[col].replace(",", "")) * scale
        except ValueError:
            continue
        key = (short(r[name_col]), r[grid_col])
        agg[key].append(t)
        for i in extra:
            try:
                ext[key][head[i]].append(float(r[i].replace(",", "")))
            except (ValueError, IndexError):
                pass
    total = sum(sum(v) for v in agg.values())
    print(f"## {title}: {sum(len(v) for v in agg.values())} launches, {total:.1f} us of kernel time")
    names = [head[i] for i in extra]
    print("| kernel | grid | n | mean us | total us | % |" + "".join(f" {n} |" for n in names))
    print("|---|---|---|---|---|---|" + "---|" * len(names))
    for key, v in sorted(agg.items(), key=lambda kv: -sum(kv[1])):
        cells = "".join(f" {sum(e) / len(e):.3g} |" if (e := ext[key].get(n)) else " - |" for n in names)
        print(f"| {key[0]} | {key[1]} | {len(v)} | {sum(v) / len(v):.2f} | {sum(v):.1f} | {100 * sum(v) / total:.1f} |"
              + cells)


if __name__ == "__main__":
    main()
