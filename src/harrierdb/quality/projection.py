"""Maps of vectors: a 2-D projection (PCA, or UMAP when ``umap-learn`` is installed) as a PNG.

:func:`project` turns ``(n, dim)`` vectors into ``(n, 2)`` coordinates; :func:`plot_map` draws
them as a scatter coloured by one value per point: a colour bar for numbers, a legend for
labels (strings, booleans, or a few distinct integers).
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harrierdb.errors import ParamError

METHODS = ("auto", "pca", "umap")
MAX_LEGEND_ENTRIES = 12


@dataclasses.dataclass
class Projection:
    """2-D coordinates, the method that made them, and (PCA) the variance each axis explains."""

    coords: np.ndarray
    method: str
    explained_variance: tuple[float, float] | None = None

    def axis_labels(self) -> tuple[str, str]:
        if self.explained_variance is None:
            return f"{self.method.upper()} 1", f"{self.method.upper()} 2"
        a, b = self.explained_variance
        return f"PC 1 ({a:.1%} of variance)", f"PC 2 ({b:.1%} of variance)"


def principal_axes(vectors: Any, count: int = 2) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """(mean, ``(count, dim)`` principal directions, share of variance of each), by NumPy SVD.

    Directions beyond the data's rank are zero rows, with a share of 0.
    """
    x = _check(vectors)
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    axes = np.zeros((count, x.shape[1]))
    axes[:min(count, len(vt))] = vt[:count]
    total = float((s ** 2).sum())
    shares = [float(s[i] ** 2) / total if i < len(s) and total > 0 else 0.0 for i in range(count)]
    return mean, axes, shares


def pca(vectors: Any) -> Projection:
    """The first two principal components of ``vectors``."""
    x = _check(vectors)
    mean, axes, shares = principal_axes(x)
    return Projection((x - mean) @ axes.T, "pca", (shares[0], shares[1]))


def project(vectors: Any, method: str = "auto", seed: int = 0) -> Projection:
    """2-D coordinates by ``method``: "pca", "umap" (needs umap-learn), or "auto" (UMAP if installed)."""
    if method not in METHODS:
        raise ParamError(f"method must be one of {METHODS}, got {method!r}")
    has_umap = importlib.util.find_spec("umap") is not None
    if method == "umap" and not has_umap:
        raise ParamError("method='umap' needs umap-learn: pip install umap-learn (or use method='pca')")
    x = _check(vectors)
    if method == "pca" or not has_umap or len(x) < 10:  # UMAP needs a neighbourhood to work with
        return pca(x)
    import umap

    reducer = umap.UMAP(n_components=2, random_state=seed, n_neighbors=min(15, len(x) - 1))
    return Projection(np.asarray(reducer.fit_transform(x), dtype=np.float64), "umap")


def _check(vectors: Any) -> np.ndarray:
    try:
        x = np.asarray(vectors, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParamError(f"vectors must be a 2-D numeric array, got {type(vectors).__name__}") from None
    if x.ndim != 2 or len(x) == 0:
        raise ParamError(f"vectors must be a non-empty 2-D array (rows, dim), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ParamError("vectors contain NaN or inf")
    return x


def is_categorical(values: Sequence[Any]) -> bool:
    """Labels (strings, booleans, None, or at most 12 distinct integers) rather than a scale."""
    present = [v for v in values if v is not None]
    if any(isinstance(v, (str, bool)) for v in present):
        return True
    if not all(isinstance(v, (int, float, np.integer, np.floating)) for v in present):
        return True
    integral = all(float(v).is_integer() for v in present)
    return integral and len(set(present)) <= MAX_LEGEND_ENTRIES


def plot_map(projection: Projection, values: Sequence[Any] | None, path: str | Path, *,
             title: str = "Embedding map", color_label: str = "value") -> Path:
    """Write the scatter to ``path`` (PNG): colour bar for numbers, legend for labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    coords = projection.coords
    if values is not None and len(values) != len(coords):
        raise ParamError(f"{len(values)} colour values for {len(coords)} points")
    fig, ax = plt.subplots(figsize=(9, 7))
    size = 30 if len(coords) < 500 else 10
    if values is None:
        ax.scatter(coords[:, 0], coords[:, 1], s=size, alpha=0.7, label=f"{len(coords)} vectors")
        ax.legend()
    elif is_categorical(values):
        labels = ["(null)" if v is None else str(v) for v in values]
        shown = [label for label, _ in Counter(labels).most_common()]
        if len(shown) > MAX_LEGEND_ENTRIES:  # the most frequent labels, the rest as "(other)"
            shown = shown[:MAX_LEGEND_ENTRIES - 1]
            labels = [label if label in shown else "(other)" for label in labels]
            shown.append("(other)")
        cmap = plt.get_cmap("tab20" if len(shown) > 10 else "tab10")
        array = np.array(labels)
        for i, label in enumerate(shown):
            mask = array == label
            ax.scatter(coords[mask, 0], coords[mask, 1], s=size, alpha=0.7, color=cmap(i % cmap.N),
                       label=f"{label} ({int(mask.sum())})")
        ax.legend(title=color_label, fontsize="small", markerscale=1.5)
    else:
        numbers = np.array([np.nan if v is None else float(v) for v in values])
        missing = np.isnan(numbers)
        if missing.any():
            ax.scatter(coords[missing, 0], coords[missing, 1], s=size, color="lightgray", label="(null)")
            ax.legend()
        points = ax.scatter(coords[~missing, 0], coords[~missing, 1], c=numbers[~missing], s=size,
                            alpha=0.8, cmap="viridis")
        fig.colorbar(points, ax=ax, label=color_label)
    xlabel, ylabel = projection.axis_labels()
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
