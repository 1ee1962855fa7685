"""vaekit's disentanglement metrics beside the `disent` package's (PyPI, Michlmayr) on the same codes.

disent is not a vaekit dependency: run this with a scratch environment that has it,

    python -m venv --system-site-packages /tmp/disent-venv
    /tmp/disent-venv/bin/pip install --no-deps disent==0.8.0 && /tmp/disent-venv/bin/pip install h5py
    PYTHONPATH=$PWD /tmp/disent-venv/bin/python benchmarks/disentanglement_crosscheck.py
    PYTHONPATH=$PWD /tmp/disent-venv/bin/python benchmarks/disentanglement_crosscheck.py --smoke  # 300 codes

disent's array-level functions (_compute_mig, _compute_dci, _compute_sap) are loaded by file with
stubs for its dataset and model stack (torchvision, lightning), which they do not use. Both sides get
the same codes and the same 2:1 train/test split. disent's DCI uses GBT (disentanglement_lib's
choice); vaekit's is shown with its default forest and with GBT.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import sys
import types

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from vaekit.disentanglement import check_inputs, dci, mig, sap, train_test_split  # noqa: E402

SMOKE_FIGURE = r"faithful\s+MIG\s+[\d.]+\s+[\d.]+"  # what tests/test_benchmarks.py reads
SMOKE_REQUIRES = ["disent"]  # not a vaekit dependency: the smoke test skips without it


def load_disent():
    import disent

    root = os.path.join(os.path.dirname(disent.__file__), "metrics")
    for name, attrs in {"disent.dataset": {"DisentDataset": object}, "disent.util": {"to_numpy": np.asarray},
                        "disent.util.function": {"wrapped_partial": functools.partial}, "disent.metrics": {}}.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        module.__path__ = []
        sys.modules[name] = module
    loaded = {}
    for name in ("utils", "_mig", "_dci", "_sap"):
        spec = importlib.util.spec_from_file_location(f"disent.metrics.{name}", os.path.join(root, f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        setattr(sys.modules["disent.metrics"], name, module)
        loaded[name] = module
    return loaded


def cases(seed: int = 0, n: int = 3000):
    sizes = (3, 6, 10, 8)  # small enough that disent's GBT DCI runs in a minute
    rng = np.random.default_rng(seed)
    factors = np.stack([rng.integers(0, s, n) for s in sizes], axis=1)
    faithful = np.concatenate([factors / np.array(sizes) + rng.normal(0, 0.02, factors.shape),
                               rng.normal(size=(n, 2))], axis=1)
    noisy = faithful + rng.normal(0, 0.1, faithful.shape)
    mixed = faithful.copy()
    mixed[:, 0], mixed[:, 1] = faithful[:, 0] + faithful[:, 1], faithful[:, 0] - faithful[:, 1]
    return factors, {"faithful": faithful, "noisy": noisy, "two mixed": mixed,
                     "random": rng.normal(size=(n, 6)), "faithful ×100": faithful * 100}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="seconds: 300 codes instead of 3,000")
    args = parser.parse_args()
    theirs = load_disent()
    factors, codes_by_case = cases(n=300 if args.smoke else 3000)
    print(f"{'codes':<14}{'metric':<18}{'vaekit':>9}{'vaekit gbt':>12}{'disent':>9}")
    for case, codes in codes_by_case.items():
        codes, labels = check_inputs(codes, factors)
        train, test = train_test_split(len(codes), 0)
        mt, yt, ms, ys = codes[train].T, labels[train].T, codes[test].T, labels[test].T
        ours, ours_gbt = dci(codes, factors), dci(codes, factors, estimator="gbt")
        d_dci = theirs["_dci"]._compute_dci(mt, yt, ms, ys)
        rows = [("MIG", mig(codes, factors), None, theirs["_mig"]._compute_mig(codes.T, labels.T)["mig.discrete_score"]),
                ("DCI disentangle.", ours["disentanglement"], ours_gbt["disentanglement"], d_dci["dci.disentanglement"]),
                ("DCI completeness", ours["completeness"], ours_gbt["completeness"], d_dci["dci.completeness"]),
                ("DCI informative.", ours["informativeness"], ours_gbt["informativeness"], d_dci["dci.informativeness_test"]),
                ("SAP", sap(codes, factors), None, theirs["_sap"]._compute_sap(mt, yt, ms, ys, False)["sap.score"])]
        for metric, value, gbt, reference in rows:
            gbt_text = f"{gbt:12.4f}" if gbt is not None else " " * 12
            print(f"{case:<14}{metric:<18}{value:9.4f}{gbt_text}{reference:9.4f}")


if __name__ == "__main__":
    main()
