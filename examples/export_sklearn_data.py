"""Write scikit-learn's bundled datasets (nothing is downloaded) as your-own-data examples.

    python examples/export_sklearn_data.py digits data/digits         # 1,797 8×8 PNGs, one folder per digit
    python examples/export_sklearn_data.py breast_cancer data/breast_cancer.csv   # 569 rows × 30 features, a header

Then `vaekit collect images --from data/digits ...` or `vaekit collect arrays --from data/breast_cancer.csv ...`
(docs/domains/images.md, docs/domains/arrays.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def export_digits(folder: Path) -> int:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.rint(digits.images / 16 * 255).astype(np.uint8)  # 17 grey levels 0..16 -> 0..255
    for row, (image, label) in enumerate(zip(pixels, digits.target)):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / str(label) / f"{row:04d}.png")
    return len(pixels)


def export_breast_cancer(path: Path) -> int:
    from sklearn.datasets import load_breast_cancer

    table = load_breast_cancer()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, table.data, delimiter=",", header=",".join(table.feature_names), comments="")
    return len(table.data)


EXPORTS = {"digits": export_digits, "breast_cancer": export_breast_cancer}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in EXPORTS:
        sys.exit(f"usage: python {sys.argv[0]} {{{','.join(EXPORTS)}}} OUT")
    print(f"wrote {EXPORTS[sys.argv[1]](Path(sys.argv[2])):,} items to {sys.argv[2]}")
