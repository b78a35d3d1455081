"""PNG plots: the MBAR overlap matrix and the nonequilibrium work distributions."""

from typing import Dict, Sequence, Tuple

import numpy as np


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_overlap(overlap: Sequence[Sequence[float]], lambdas: Sequence[float], path: str, title: str = "") -> None:
    """Heat map of the MBAR overlap matrix (``[n, n]``) written to ``path`` (PNG)."""
    plt = _pyplot()
    matrix = np.asarray(overlap)
    fig, ax = plt.subplots(figsize=(1.0 + 0.5 * len(lambdas), 0.6 + 0.5 * len(lambdas)))
    image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="Blues")
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7, color="black" if matrix[i, j] < 0.5 else "white")
    labels = [f"{v:.2f}" for v in lambdas]
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("lambda_interpolate")
    ax.set_ylabel("lambda_interpolate")
    ax.set_title(title or "MBAR overlap")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_work(forward_work: Sequence[float], reverse_work: Sequence[float], delta_f: float, path: str, title: str = "") -> None:
    """Histograms of forward work and minus reverse work (kT), with the BAR estimate, to ``path``."""
    plt = _pyplot()
    forward = np.asarray(forward_work)
    reverse = -np.asarray(reverse_work)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    bins = np.histogram_bin_edges(np.concatenate([forward, reverse]), bins=max(5, int(np.sqrt(forward.size + reverse.size))))
    ax.hist(forward, bins=bins, alpha=0.6, label="forward W (MM -> ML/MM)")
    ax.hist(reverse, bins=bins, alpha=0.6, label="-reverse W (ML/MM -> MM)")
    ax.axvline(delta_f, color="black", linestyle="--", label=f"BAR {delta_f:.2f} kT")
    ax.set_xlabel("work / kT")
    ax.set_ylabel("count")
    ax.set_title(title or "nonequilibrium work")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_convergence(series: Dict[str, Sequence[Tuple[float, float, float]]], path: str, title: str = "", unit_label: str = "kcal/mol") -> None:
    """The estimates against simulation time: ``series[name] = [(time_ns, value, error), ...]`` to ``path`` (PNG)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, points in series.items():
        if not points:
            continue
        t, value, error = (np.asarray(v, dtype=float) for v in zip(*points))
        ax.errorbar(t, value, yerr=error, marker="o", markersize=3, capsize=2, label=name)
    ax.set_xlabel("simulated time (all replicas / switches), ns")
    ax.set_ylabel(f"dG(MM -> ML/MM), {unit_label}")
    ax.set_title(title or "estimate against simulation time")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_schedule(pilot_lambdas: Sequence[float], sigma: Sequence[float], lambdas: Sequence[float], path: str, title: str = "") -> None:
    """The pilot's spread of beta dU/dlambda (kT) and the chosen windows, to ``path`` (PNG)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.semilogy(pilot_lambdas, sigma, "o-", label="pilot: std of beta dU/dlambda")
    for value in lambdas:
        ax.axvline(value, color="grey", linewidth=0.6)
    ax.set_xlabel("lambda_interpolate (grey: chosen windows)")
    ax.set_ylabel("kT")
    ax.set_title(title or "lambda schedule")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
