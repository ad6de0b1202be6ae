#!/usr/bin/env python3
"""A deterministic synthetic data set for the scale benchmark, in the siftsmall layout.

Points are drawn from a Gaussian mixture of low intrinsic dimension: a latent vector of
`--latent` dimensions from one of `--clusters` Gaussians, mapped into `--dim` dimensions by a
fixed random linear map, plus small isotropic noise. Queries come from the same distribution
(not from the base set). The ground truth (exact top 100 of each query) is computed here: by L2,
or with `--metric cosine` by cosine similarity (base and queries are then written normalized).

Writes <out>/mix_base.fvecs, mix_query.fvecs, mix_groundtruth.ivecs (what `akidb bench --data`
reads). Needs numpy. Usage: gen_mixture.py OUT --points N [--dim 128] [--queries 200] [--seed 1]
[--metric l2|cosine]
"""
import argparse
import os

import numpy as np


def write_vecs(path, a, dtype):
    a = np.ascontiguousarray(a, dtype=dtype)
    n, d = a.shape
    out = np.empty((n, d + 1), dtype=dtype)
    out[:, 0] = np.array([d], dtype=np.int32).view(dtype)[0]
    out[:, 1:] = a
    out.tofile(path)


def sample(rng, n, centers, spread, proj, noise, dim):
    which = rng.integers(0, len(centers), size=n)
    z = centers[which] + rng.standard_normal((n, centers.shape[1]), dtype=np.float32) * spread
    x = z @ proj
    x += rng.standard_normal((n, dim), dtype=np.float32) * noise
    return x.astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--points", type=int, required=True)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--latent", type=int, default=16)
    ap.add_argument("--clusters", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--metric", choices=["l2", "cosine"], default="l2")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    centers = rng.standard_normal((a.clusters, a.latent), dtype=np.float32) * 3.0
    proj = rng.standard_normal((a.latent, a.dim), dtype=np.float32) / np.sqrt(a.latent)
    spread, noise = 1.0, 0.1
    base = np.empty((a.points, a.dim), dtype=np.float32)
    step = 100_000
    for i in range(0, a.points, step):
        m = min(step, a.points - i)
        base[i : i + m] = sample(rng, m, centers, spread, proj, noise, a.dim)
    queries = sample(rng, a.queries, centers, spread, proj, noise, a.dim)
    if a.metric == "cosine":
        # Unit vectors: the L2 order below is then the cosine order.
        for i in range(0, a.points, step):
            base[i : i + step] /= np.linalg.norm(base[i : i + step], axis=1, keepdims=True)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    # Exact top 100 by L2 (on unit vectors: by cosine), in chunks of the base.
    k = min(100, a.points)
    qn = (queries**2).sum(1)[:, None]
    best_d = np.full((a.queries, 0), np.inf, dtype=np.float32)
    best_i = np.zeros((a.queries, 0), dtype=np.int64)
    for i in range(0, a.points, step):
        b = base[i : i + step]
        d = qn - 2.0 * queries @ b.T + (b**2).sum(1)[None, :]
        cd = np.concatenate([best_d, d], axis=1)
        ci = np.concatenate([best_i, np.arange(i, i + len(b))[None, :].repeat(a.queries, 0)], axis=1)
        top = np.argpartition(cd, k - 1, axis=1)[:, :k] if cd.shape[1] > k else np.arange(cd.shape[1])[None, :].repeat(a.queries, 0)
        best_d = np.take_along_axis(cd, top, 1)
        best_i = np.take_along_axis(ci, top, 1)
    order = np.argsort(best_d, axis=1, kind="stable")
    gt = np.take_along_axis(best_i, order, 1).astype(np.int32)
    write_vecs(os.path.join(a.out, "mix_base.fvecs"), base, np.float32)
    write_vecs(os.path.join(a.out, "mix_query.fvecs"), queries, np.float32)
    write_vecs(os.path.join(a.out, "mix_groundtruth.ivecs"), gt, np.int32)
    print(f"{a.out}: {a.points} x {a.dim} points, {a.queries} queries, top {k} ground truth")


if __name__ == "__main__":
    main()
