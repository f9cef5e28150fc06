"""Side-by-side tables of several ``maximask-evaluate maximask`` reports, with the paper's Table 7.

    python benchmarks/compare_evaluations.py NAME=eval/dir [NAME=eval/dir ...]

Each ``eval/dir`` holds the ``metrics.json`` written by ``maximask-evaluate maximask``. Prints
(markdown) the AUC per class on the all-contaminant set and on the single-contaminant sets, the
TPR at FPR = 1e-3 and the best MCC per class, and the cosmic-ray comparison with LA Cosmic.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from maximask.classes import CLASS_NAMES
from maximask.evaluate.report import PAPER_TABLE7


def _fmt(v, digits=3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("reports", nargs="+", help="NAME=DIR")
    args = p.parse_args(argv)
    reports = {}
    for item in args.reports:
        name, _, d = item.partition("=")
        reports[name] = json.loads((Path(d) / "metrics.json").read_text())
    names = list(reports)
    print("| class | paper all | " + " | ".join(f"{n} all" for n in names) + " | paper single | "
          + " | ".join(f"{n} single" for n in names) + " |")
    print("|---" * (3 + 2 * len(names)) + "|")
    for c in CLASS_NAMES:
        row = [c, _fmt(PAPER_TABLE7["all"][c])]
        row += [_fmt(r["classes"][c]["auc"]) for r in reports.values()]
        row += [_fmt(PAPER_TABLE7["single"].get(c))]
        row += [_fmt((r.get("single_auc") or {}).get(c)) for r in reports.values()]
        print("| " + " | ".join(row) + " |")
    print()
    print("| class | " + " | ".join(f"{n} TPR at FPR 1e-3" for n in names) + " | "
          + " | ".join(f"{n} best MCC" for n in names) + " |")
    print("|---" * (1 + 2 * len(names)) + "|")
    for c in CLASS_NAMES:
        row = [c] + [_fmt(r["classes"][c]["tpr_at_fpr_1e-3"]) for r in reports.values()]
        row += [_fmt(r["classes"][c]["best_mcc"], 2) for r in reports.values()]
        print("| " + " | ".join(row) + " |")
    print()
    print("| set | LA Cosmic TPR | LA Cosmic FPR | " + " | ".join(f"{n} TPR at that FPR | {n} CR AUC" for n in names) + " |")
    print("|---" * (3 + 2 * len(names)) + "|")
    first = next(iter(reports.values()))
    for regime in (first.get("cr_comparison") or {}):
        la = first["cr_comparison"][regime]["lacosmic"]
        row = [regime.replace("_", " "), _fmt(la["tpr"]), f"{la['fpr']:.4f}"]
        for r in reports.values():
            cc = r["cr_comparison"][regime]
            row += [_fmt(cc["maximask_tpr_at_lacosmic_fpr"]), _fmt(cc["maximask_auc"])]
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
