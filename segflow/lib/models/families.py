"""The four candidate families of the segmentation sweep, and the stored rules that assign rows.

Every fitted candidate is a *rule*: plain JSON-able parameters that assign any row, so the winner is
stored without pickle and re-assigning with it is exact.

- ``kmeans``: k-means over k (MiniBatchKMeans above ``minibatch_above`` fit rows); nearest centroid.
- ``ward``: agglomerative Ward on a seeded sample of ``ward_sample`` rows, cut at every k from one
  tree; extended to every row by nearest centroid.
- ``hdbscan``: HDBSCAN on a seeded sample of ``hdbscan_sample`` rows over minimum cluster size (a share
  of the sample) and metric. Clusters are extended by nearest centroid within the cluster's radius (the
  farthest member); anything farther, like HDBSCAN's own noise, is the noise segment, which is counted
  as a segment (the last id) in ``k``, the shares and the indices.
- ``gmm``: Gaussian mixture over components and covariance type, fitted on ``gmm_fit_rows`` rows;
  a row goes to its most probable component.
"""

from __future__ import annotations

import numpy as np

FAMILY_ORDER = ("kmeans", "ward", "hdbscan", "gmm")
FAMILY_NAMES = {"kmeans": "k-means", "ward": "Ward", "hdbscan": "HDBSCAN", "gmm": "Gaussian mixture"}


def nearest(matrix: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid per row (ties go to the lower index, deterministically)."""
    out = np.empty(len(matrix), dtype=np.int64)
    for start in range(0, len(matrix), 100_000):  # chunked: n x k x d at once would not fit at 1M+
        block = matrix[start : start + 100_000]
        out[start : start + len(block)] = (
            ((block[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
        )
    return out


def predict(rule: dict, matrix: np.ndarray) -> np.ndarray:
    """Segment index per row of a scaled design matrix under a stored rule."""
    centroids = np.asarray(rule["centroids"], dtype=np.float64)
    if rule["kind"] == "centroid":
        return nearest(matrix, centroids)
    if rule["kind"] == "centroid_noise":
        ids = np.array([i for i in range(len(centroids)) if i != rule["noise_id"]])
        radii = np.array([np.inf if r is None else r for r in rule["radii"]])
        labels = ids[nearest(matrix, centroids[ids])]
        for start in range(0, len(matrix), 100_000):
            block, lab = matrix[start : start + 100_000], labels[start : start + 100_000]
            dist = np.sqrt(((block - centroids[lab]) ** 2).sum(axis=1))
            labels[start : start + len(block)] = np.where(dist > radii[lab], rule["noise_id"], lab)
        return labels
    if rule["kind"] == "gmm":
        logp = np.empty((len(matrix), len(centroids)))
        for j, (mu, cov, w) in enumerate(zip(centroids, rule["covariances"], rule["weights"], strict=True)):
            chol = np.linalg.cholesky(np.asarray(cov))
            z = np.linalg.solve(chol, (matrix - mu).T)
            logp[:, j] = np.log(w) - np.log(np.diag(chol)).sum() - 0.5 * (z**2).sum(axis=0)
        return logp.argmax(axis=1)
    raise ValueError(f"unknown rule kind {rule['kind']!r}")


def permute(rule: dict, order: list[int]) -> dict:
    """The same rule with segment ``order[i]`` renumbered ``i``."""
    out = dict(rule, centroids=[rule["centroids"][i] for i in order])
    if rule["kind"] == "gmm":
        out["covariances"] = [rule["covariances"][i] for i in order]
        out["weights"] = [rule["weights"][i] for i in order]
    if rule["kind"] == "centroid_noise":
        out["radii"] = [rule["radii"][i] for i in order]
        out["noise_id"] = order.index(rule["noise_id"])
    return out


def apply(rule: dict, matrix: np.ndarray) -> np.ndarray:
    """Alias of ``predict``: segment ids per row under a stored rule."""
    return predict(rule, matrix)


def _means(matrix: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    return np.vstack(
        [
            matrix[labels == c].mean(axis=0) if (labels == c).any() else np.zeros(matrix.shape[1])
            for c in range(k)
        ]
    )


def fit_family(
    family: str, grid: list[dict], matrix: np.ndarray, seed: int, n_init: int, minibatch_above: int
) -> list[dict | None]:
    """Fit every parameter set in ``grid`` of one family on ``matrix``; a rule per set (None: degenerate)."""
    rules: list[dict | None] = []
    if family == "kmeans":
        from sklearn.cluster import KMeans, MiniBatchKMeans

        cls = MiniBatchKMeans if len(matrix) > minibatch_above else KMeans
        for p in grid:
            if p["k"] >= len(matrix):
                rules.append(None)
                continue
            est = cls(n_clusters=p["k"], n_init=n_init, random_state=seed).fit(matrix)
            rules.append({"kind": "centroid", "centroids": est.cluster_centers_.tolist()})
    elif family == "ward":
        from scipy.cluster.hierarchy import fcluster, linkage

        tree = linkage(matrix, method="ward")
        for p in grid:
            labels = fcluster(tree, t=p["k"], criterion="maxclust") - 1
            k = int(labels.max()) + 1
            rules.append(
                {"kind": "centroid", "centroids": _means(matrix, labels, k).tolist()} if k == p["k"] else None
            )
    elif family == "hdbscan":
        from sklearn.cluster import HDBSCAN

        for p in grid:
            size = max(5, int(round(p["min_cluster_share"] * len(matrix))))
            labels = HDBSCAN(min_cluster_size=size, metric=p["metric"], copy=True).fit_predict(matrix)
            k = int(labels.max()) + 1
            if k < 2:
                rules.append(None)
                continue
            centroids = _means(matrix, labels, k)
            radii = [
                float(np.sqrt(((matrix[labels == c] - centroids[c]) ** 2).sum(axis=1)).max())
                for c in range(k)
            ]
            noise = matrix[labels < 0].mean(axis=0) if (labels < 0).any() else centroids.mean(axis=0)
            rules.append(
                {
                    "kind": "centroid_noise",
                    "centroids": [*centroids.tolist(), noise.tolist()],
                    "radii": [*radii, None],
                    "noise_id": k,
                }
            )
    elif family == "gmm":
        from sklearn.mixture import GaussianMixture

        for p in grid:
            if p["k"] >= len(matrix):
                rules.append(None)
                continue
            est = GaussianMixture(
                n_components=p["k"], covariance_type=p["covariance_type"], random_state=seed, reg_covar=1e-4
            ).fit(matrix)
            rules.append(
                {
                    "kind": "gmm",
                    "centroids": est.means_.tolist(),
                    "weights": est.weights_.tolist(),
                    "covariances": _full_covariances(
                        est.covariances_, p["covariance_type"], p["k"], matrix.shape[1]
                    ).tolist(),
                }
            )
    else:
        raise ValueError(f"unknown model family {family!r}")
    return rules


def _full_covariances(cov: np.ndarray, kind: str, k: int, d: int) -> np.ndarray:
    if kind == "full":
        return cov
    if kind == "tied":
        return np.repeat(cov[None], k, axis=0)
    if kind == "diag":
        return np.stack([np.diag(v) for v in cov])
    return np.stack([np.eye(d) * v for v in cov])  # spherical


def grids(settings) -> dict[str, list[dict]]:
    """The parameter sets swept per enabled family, in a fixed order."""
    ks = list(range(settings.k_min, settings.k_max + 1))
    all_grids = {
        "kmeans": [{"k": k} for k in ks],
        "ward": [{"k": k} for k in ks],
        "hdbscan": [
            {"min_cluster_share": s, "metric": m}
            for m in settings.hdbscan_metrics
            for s in settings.hdbscan_min_cluster_shares
        ],
        "gmm": [{"k": k, "covariance_type": c} for c in settings.gmm_covariance_types for k in ks],
    }
    return {f: all_grids[f] for f in FAMILY_ORDER if f in settings.families}
