"""Has the distribution of a collection's vectors moved? Summaries per batch, and a two-sample test.

* :func:`batch_summary`: a small JSON record of one batch of vectors (count, mean vector, norm
  quantiles and histogram, and quantiles of a fixed random-projection sketch, seed recorded),
  meant to be stored with every inserted batch;
* :func:`compare`: reference vectors against current ones: the cosine shift of the centroids
  and the maximum mean discrepancy (MMD, RBF kernel, median-heuristic bandwidth), each with a
  permutation p-value, and the population stability index (PSI) of the norms and of each
  random projection;
* :func:`plot`: the report as a PNG.

``report.is_drift`` is true when any indicator passes its :class:`Thresholds` entry: the MMD
test is significant; the centroid shift is large *and* significant (the centroid of vectors
spread evenly around the origin is short, so its direction is noise); the PSI of the norms,
or the mean PSI of the projections, is large. PSI is bias-corrected: its expected value
between two samples of one distribution, ``(bins - 1) * (1/n + 1/m)``, is subtracted, so
small samples do not raise false alarms.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from harrierdb.errors import ParamError
from harrierdb.quality.projection import principal_axes

SKETCH_SEED = 0
SKETCH_PROJECTIONS = 16
QUANTILES = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)
NORM_BINS = 20


def check_vectors(vectors: Any, label: str = "vectors") -> np.ndarray:
    """``vectors`` as a finite, non-empty 2-D float64 array, or a ParamError."""
    try:
        x = np.asarray(vectors, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParamError(f"{label} must be a 2-D numeric array, got {type(vectors).__name__}") from None
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ParamError(f"{label} must be a non-empty 2-D array (rows, dim), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ParamError(f"{label} contain NaN or inf")
    return x


def projection_matrix(dim: int, count: int = SKETCH_PROJECTIONS, seed: int = SKETCH_SEED) -> np.ndarray:
    """``count`` random unit directions in ``dim`` dimensions, ``(dim, count)``: fixed by the seed."""
    if count < 1:
        raise ParamError(f"the number of projections must be >= 1, got {count!r}")
    p = np.random.default_rng(seed).standard_normal((dim, count))
    return p / np.linalg.norm(p, axis=0, keepdims=True)


# -- per-batch summary --------------------------------------------------------------------------

def batch_summary(vectors: np.ndarray, *, projections: int = SKETCH_PROJECTIONS,
                  seed: int = SKETCH_SEED) -> dict[str, Any]:
    """A JSON-serialisable summary of one batch of vectors (plain floats and lists only)."""
    x = check_vectors(vectors)
    norms = np.linalg.norm(x, axis=1)
    counts, edges = np.histogram(norms, bins=NORM_BINS)
    projected = x @ projection_matrix(x.shape[1], projections, seed)
    return {
        "count": int(x.shape[0]),
        "dim": int(x.shape[1]),
        "mean": _floats(x.mean(axis=0)),
        "norm": {
            "mean": float(norms.mean()), "std": float(norms.std()),
            "quantiles": dict(zip(map(str, QUANTILES), _floats(np.quantile(norms, QUANTILES)))),
            "histogram": {"edges": _floats(edges), "counts": [int(c) for c in counts]},
        },
        "sketch": {
            "seed": int(seed), "projections": int(projections), "probs": list(QUANTILES),
            "mean": _floats(projected.mean(axis=0)), "std": _floats(projected.std(axis=0)),
            "quantiles": [_floats(q) for q in np.quantile(projected, QUANTILES, axis=0).T],
        },
    }


def _floats(a: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


# -- two-sample comparison ----------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Thresholds:
    """When an indicator counts as drift (``None`` switches that indicator's alarm off)."""

    p_value: float | None = 0.01         # permutation tests (MMD, centroid): alarm when p < this
    centroid_shift: float | None = 0.1   # 1 - cos(reference centroid, current centroid), if significant
    psi: float | None = 0.25             # bias-corrected PSI of the norms, or mean over projections

    def __post_init__(self) -> None:
        for name in ("p_value", "centroid_shift", "psi"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or value < 0):
                raise ParamError(f"threshold {name} must be a number >= 0 or None, got {value!r}")


@dataclasses.dataclass
class DriftReport:
    """The indicators of one comparison; the arrays are kept for :func:`plot`."""

    n_reference: int
    n_current: int
    dim: int
    centroid_shift: float
    centroid_p_value: float
    mmd2: float
    mmd_p_value: float
    bandwidth: float
    psi_norm: float
    psi_projections: list[float]
    permutations: int
    seed: int
    thresholds: Thresholds
    null_mmd2: np.ndarray = dataclasses.field(repr=False)
    reference_norms: np.ndarray = dataclasses.field(repr=False)
    current_norms: np.ndarray = dataclasses.field(repr=False)
    reference_sample: np.ndarray = dataclasses.field(repr=False)  # the rows the MMD compared
    current_sample: np.ndarray = dataclasses.field(repr=False)

    @property
    def alarms(self) -> dict[str, bool]:
        """Which indicators pass their threshold."""
        t = self.thresholds
        return {
            "mmd": t.p_value is not None and self.mmd_p_value < t.p_value,
            "centroid_shift": (t.centroid_shift is not None and self.centroid_shift > t.centroid_shift
                               and self.centroid_p_value < (t.p_value if t.p_value is not None else 1.0)),
            "psi_norm": t.psi is not None and self.psi_norm > t.psi,
            "psi_projections": t.psi is not None and self.psi_projections_mean > t.psi,
        }

    @property
    def psi_projections_mean(self) -> float:
        return float(np.mean(self.psi_projections))

    @property
    def is_drift(self) -> bool:
        return any(self.alarms.values())

    def to_dict(self) -> dict[str, Any]:
        """The indicators, thresholds and verdict as JSON-ready values."""
        return {
            "is_drift": self.is_drift, "alarms": self.alarms,
            "n_reference": self.n_reference, "n_current": self.n_current, "dim": self.dim,
            "centroid_shift": self.centroid_shift, "centroid_p_value": self.centroid_p_value,
            "mmd2": self.mmd2, "mmd_p_value": self.mmd_p_value,
            "bandwidth": self.bandwidth, "permutations": self.permutations, "seed": self.seed,
            "psi_norm": self.psi_norm, "psi_projections": list(self.psi_projections),
            "psi_projections_mean": self.psi_projections_mean,
            "thresholds": dataclasses.asdict(self.thresholds),
        }

    def summary(self) -> str:
        """A few lines for a terminal."""
        flags = ", ".join(k for k, v in self.alarms.items() if v) or "none"
        return "\n".join([
            f"{'DRIFT' if self.is_drift else 'no drift'} (alarms: {flags})",
            f"  reference {self.n_reference} vectors, current {self.n_current}, dim {self.dim}",
            f"  centroid cosine shift  {self.centroid_shift:.4f}  (p = {self.centroid_p_value:.4f})",
            f"  MMD^2                  {self.mmd2:.5f}  (p = {self.mmd_p_value:.4f}, "
            f"{self.permutations} permutations, bandwidth {self.bandwidth:.3f})",
            f"  PSI of norms           {self.psi_norm:.4f}",
            f"  PSI of projections     max {max(self.psi_projections):.4f}, "
            f"mean {self.psi_projections_mean:.4f}",
        ])


def compare(reference_vectors: Any, current_vectors: Any, *, projections: int = SKETCH_PROJECTIONS,
            permutations: int = 500, seed: int = 0, thresholds: Thresholds | None = None,
            max_samples: int = 1000, bins: int = 10) -> DriftReport:
    """Compare two sets of vectors of one dimension; see the module docstring for the indicators.

    Each side is subsampled to ``max_samples`` rows for the permutation tests (the MMD's cost
    is quadratic); the centroid shift and PSI reported are those of all the rows.
    """
    ref = check_vectors(reference_vectors, "reference vectors")
    cur = check_vectors(current_vectors, "current vectors")
    if ref.shape[1] != cur.shape[1]:
        raise ParamError(f"reference vectors have dim {ref.shape[1]} but current vectors dim {cur.shape[1]}")
    for name, value, low in (("permutations", permutations, 1), ("max_samples", max_samples, 2),
                             ("bins", bins, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ParamError(f"{name} must be an int >= {low}, got {value!r}")
    if len(ref) < 2 or len(cur) < 2:
        raise ParamError(f"compare needs at least 2 vectors a side, got {len(ref)} and {len(cur)}")
    rng = np.random.default_rng(seed)
    ref_s, cur_s = _subsample(ref, max_samples, rng), _subsample(cur, max_samples, rng)
    labels = split_labels(len(ref_s), len(cur_s), permutations, rng)
    mmd2, p_value, bandwidth, null = mmd_test(ref_s, cur_s, labels)
    _, centroid_p = centroid_test(ref_s, cur_s, labels)
    directions = projection_matrix(ref.shape[1], projections, seed)
    ref_proj, cur_proj = ref @ directions, cur @ directions
    # rounded, so the float noise of normalised vectors' norms (1 +- 1e-7) is not read as a shift
    ref_norms, cur_norms = (np.round(np.linalg.norm(v, axis=1), 6) for v in (ref, cur))
    return DriftReport(
        n_reference=len(ref), n_current=len(cur), dim=ref.shape[1],
        centroid_shift=centroid_shift(ref, cur), centroid_p_value=centroid_p,
        mmd2=mmd2, mmd_p_value=p_value, bandwidth=bandwidth,
        psi_norm=psi(ref_norms, cur_norms, bins),
        psi_projections=[psi(ref_proj[:, j], cur_proj[:, j], bins) for j in range(projections)],
        permutations=permutations, seed=seed, thresholds=thresholds or Thresholds(), null_mmd2=null,
        reference_norms=ref_norms, current_norms=cur_norms,
        reference_sample=ref_s, current_sample=cur_s)


def _subsample(x: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= limit else x[rng.choice(len(x), limit, replace=False)]


def centroid_shift(reference: np.ndarray, current: np.ndarray) -> float:
    """1 - cosine of the two mean vectors (0: same direction; 0 too if either mean is zero)."""
    a, b = reference.mean(axis=0), current.mean(axis=0)
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return 0.0 if denom == 0 else float(1.0 - a @ b / denom)


def split_labels(n: int, m: int, permutations: int, rng: np.random.Generator) -> np.ndarray:
    """``(permutations + 1, n + m)`` 0/1 rows saying which pooled rows form the first sample:
    row 0 is the observed split (the first ``n``), the others random splits of the same sizes."""
    labels = np.zeros((permutations + 1, n + m))
    labels[0, :n] = 1.0
    for row in labels[1:]:
        row[rng.permutation(n + m)[:n]] = 1.0
    return labels


def _p_value(stats: np.ndarray) -> float:
    """Share of permuted statistics (``stats[1:]``) at least the observed one (``stats[0]``)."""
    return float((1 + np.sum(stats[1:] >= stats[0])) / len(stats))


def centroid_test(x: np.ndarray, y: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The centroid cosine shift of ``x`` and ``y`` and its permutation p-value."""
    pooled = np.vstack([x, y])
    n, m = len(x), len(y)
    sums = labels @ pooled
    a, b = sums / n, (pooled.sum(axis=0) - sums) / m
    denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    shifts = 1.0 - np.einsum("ij,ij->i", a, b) / np.where(denom == 0, 1.0, denom)
    shifts[denom == 0] = 0.0
    return float(shifts[0]), _p_value(shifts)


def mmd_test(x: np.ndarray, y: np.ndarray, labels: np.ndarray) -> tuple[float, float, float, np.ndarray]:
    """Unbiased MMD^2 of ``x`` and ``y`` with an RBF kernel, and its permutation p-value.

    The kernel is ``exp(-|a - b|^2 / (2 sigma^2))`` with ``sigma^2`` half the median pairwise
    squared distance of the pooled sample. All splits in ``labels`` (:func:`split_labels`) are
    scored at once: with ``S`` their 0/1 matrix, the within- and cross-sample kernel sums are
    row sums of ``(S @ K) * S`` and ``(S @ K) * (1 - S)``.
    Returns (MMD^2, p-value, sigma, MMD^2 of each permuted split).
    """
    pooled = np.vstack([x, y])
    sq = np.sum(pooled ** 2, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * pooled @ pooled.T, 0.0)
    off_diagonal = d2[np.triu_indices(len(pooled), k=1)]
    median = float(np.median(off_diagonal[off_diagonal > 0])) if np.any(off_diagonal > 0) else 1.0
    kernel = np.exp(-d2 / median)  # 2 sigma^2 = median
    np.fill_diagonal(kernel, 0.0)
    n, m = len(x), len(y)
    total = kernel.sum()
    stats = np.empty(len(labels))
    for start in range(0, len(labels), 256):  # bound memory: 256 splits at a time
        s = labels[start:start + 256]
        sk = s @ kernel
        xx = np.einsum("ij,ij->i", sk, s)
        xy = sk.sum(axis=1) - xx
        yy = total - 2.0 * xy - xx
        stats[start:start + 256] = xx / (n * (n - 1)) + yy / (m * (m - 1)) - 2.0 * xy / (n * m)
    return float(stats[0]), _p_value(stats), math.sqrt(median / 2.0), stats[1:]


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10, corrected: bool = True) -> float:
    """Population stability index on the reference's quantile bins: sum (c - r) ln(c / r).

    Proportions get half a count of smoothing so empty bins stay finite; with ``corrected``
    the null expectation ``(bins - 1) * (1/n + 1/m)`` is subtracted (floored at 0).
    """
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    r = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1) + 0.5
    c = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1) + 0.5
    r, c = r / r.sum(), c / c.sum()
    value = float(np.sum((c - r) * np.log(c / r)))
    if corrected:
        value = max(0.0, value - (len(r) - 1) * (1 / len(reference) + 1 / len(current)))
    return value


# -- picture ------------------------------------------------------------------------------------

def plot(report: DriftReport, path: str | Path, title: str | None = None) -> Path:
    """Write a PNG with four panels: norms, the MMD permutation test, PSI, and two projections."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref_c, cur_c = "tab:blue", "tab:orange"
    fig, ((ax_norm, ax_mmd), (ax_psi, ax_proj)) = plt.subplots(2, 2, figsize=(12, 9))
    verdict = "DRIFT" if report.is_drift else "no drift"
    fig.suptitle(title or f"Embedding drift: {verdict} (MMD p = {report.mmd_p_value:.3g}, "
                          f"centroid shift = {report.centroid_shift:.3g})", fontsize=13)

    edges = np.histogram_bin_edges(np.concatenate([report.reference_norms, report.current_norms]), bins=30)
    ax_norm.hist(report.reference_norms, bins=edges, alpha=0.6, density=True, color=ref_c,
                 label=f"reference (n={report.n_reference})")
    ax_norm.hist(report.current_norms, bins=edges, alpha=0.6, density=True, color=cur_c,
                 label=f"current (n={report.n_current})")
    ax_norm.set(title=f"Vector norms (PSI = {report.psi_norm:.3f})", xlabel="L2 norm (6 decimals)",
                ylabel="density")
    ax_norm.legend()

    ax_mmd.hist(report.null_mmd2, bins=30, color="tab:gray", alpha=0.8, label="permuted splits (null)")
    ax_mmd.axvline(report.mmd2, color="tab:red", linewidth=2, label=f"observed MMD² = {report.mmd2:.4g}")
    ax_mmd.set(title=f"MMD permutation test (p = {report.mmd_p_value:.3g})", xlabel="MMD²",
               ylabel="permutations")
    ax_mmd.legend()

    names = ["norm", "mean"] + [f"p{j}" for j in range(len(report.psi_projections))]
    values = [report.psi_norm, report.psi_projections_mean, *report.psi_projections]
    colors = ["tab:purple", "tab:olive"] + ["tab:green"] * len(report.psi_projections)
    ax_psi.bar(names, values, color=colors)
    if report.thresholds.psi is not None:
        ax_psi.axhline(report.thresholds.psi, color="tab:red", linestyle="--",
                       label=f"threshold {report.thresholds.psi:g}")
    ax_psi.set(title="Population stability index (bias-corrected)",
               xlabel="norms, mean of the projections, each random projection", ylabel="PSI")
    ax_psi.tick_params(axis="x", labelrotation=90)
    ax_psi.legend()

    mean, axes, (a, b) = principal_axes(np.vstack([report.reference_sample, report.current_sample]))
    ax_proj.scatter(*((report.reference_sample - mean) @ axes.T).T, s=8, alpha=0.5, color=ref_c,
                    label="reference")
    ax_proj.scatter(*((report.current_sample - mean) @ axes.T).T, s=8, alpha=0.5, color=cur_c,
                    label="current")
    ax_proj.set(title="Both samples on their first two principal components",
                xlabel=f"PC 1 ({a:.1%} of variance)", ylabel=f"PC 2 ({b:.1%} of variance)")
    ax_proj.legend()

    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
