"""Sparse Bezier keys fitted to dense samples (numpy only, no bpy): each key's value and slope are
solved by least squares over every frame, so one segment covers what automatic handles (which go
through the samples with slopes set by the neighbouring keys) need several keys for.

A key's handles sit a third of the way to its neighbours in time, so each segment is a cubic in time
(Hermite form: values and slopes at its two keys) and Blender evaluates it as numpy does here; the two
handles of a key are collinear (one slope), so an artist editing it keeps the curve smooth."""

from __future__ import annotations

import numpy as np

# The fit aims inside the tolerance (float32 keys and Blender's own evaluation may add a little).
MARGIN = 0.97
# Reweighting rounds per fit (Lawson's: weights grow where the error is largest, towards the smallest
# maximum error rather than the smallest squared error).
REWEIGHTS = 6
# Each slope is pulled towards the samples' own slope with this weight (per key, relative): it keeps
# segments without samples between their keys determined, and is too weak to cost accuracy.
SLOPE_PRIOR = 1e-3
# Greedy refinement: at most this many passes (each adds the worst frame of every stretch still out
# of tolerance; a 30-s clip at 60 fps needs about log2(1800) = 11).
MAX_PASSES = 24


def group_error(kind: str, target: np.ndarray, got: np.ndarray, unit: float) -> np.ndarray:
    """Per-frame error of one bone's channel group: for quaternions the angle (degrees) of the joint's
    rotation error (sign-blind, the curve normalised as Blender does), for locations the distance
    (metres: `unit` metres per armature unit)."""
    if kind == "rotation_quaternion":
        q = got / np.maximum(np.linalg.norm(got, axis=-1, keepdims=True), 1e-12)
        dot = np.abs((q * target).sum(-1)) / np.maximum(np.linalg.norm(target, axis=-1), 1e-12)
        return np.degrees(2 * np.arccos(np.clip(dot, -1.0, 1.0)))
    return np.linalg.norm(got - target, axis=-1) * unit


def same_hemisphere(quats: np.ndarray) -> np.ndarray:
    """(n, 4) quaternions with each one's sign flipped to its predecessor's side (q and -q are the
    same rotation; a flip between frames would cost keys)."""
    out = np.array(quats, dtype=float)
    for t in range(1, len(out)):
        if (out[t] * out[t - 1]).sum() < 0:
            out[t] = -out[t]
    return out


def basis(frames: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """(n, 2m) cubic Hermite basis: columns [0, m) a key's value, [m, 2m) its slope (per frame); the
    dense form of `_segments`, which the fit uses."""
    seg, w = _segments(frames, keys)
    m = len(keys)
    a = np.zeros((len(frames), 2 * m))
    rows = np.arange(len(frames))
    a[rows, seg], a[rows, m + seg] = w[:, 0], w[:, 1]
    a[rows, seg + 1], a[rows, m + seg + 1] = w[:, 2], w[:, 3]
    return a


def _segments(frames: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each frame's segment (n,) and its Hermite weights (n, 4) on (value, slope) of the segment's first
    key and (value, slope) of its second: the rows of `basis`, packed."""
    kf = frames[keys]
    seg = np.clip(np.searchsorted(kf, frames, side="right") - 1, 0, len(keys) - 2)
    h = kf[seg + 1] - kf[seg]
    u = (frames - kf[seg]) / h
    return seg, np.stack(
        [2 * u**3 - 3 * u**2 + 1, (u**3 - 2 * u**2 + u) * h, 3 * u**2 - 2 * u**3, (u**3 - u**2) * h], -1
    )


def _solve(
    seg: np.ndarray, b: np.ndarray, w: np.ndarray, values: np.ndarray, prior: float, slope: np.ndarray
):
    """Key values and slopes (m, c) minimising the weighted squared error plus `prior` times the slopes'
    squared distance from `slope` (m, c). The normal equations are block tridiagonal (a key's 2x2 block
    couples only with its neighbours'), solved by block elimination: numpy alone, no threaded LAPACK
    (which spun 20 times longer than the work on a busy 2-core machine), and the elimination in Python
    floats (numpy's overhead per call on 2x2 blocks was several times their arithmetic)."""
    m = len(slope)
    wb = w[:, None] * b
    s = _sum_by(seg, wb[:, :, None] * b[:, None, :], m - 1)
    r = _sum_by(seg, wb[:, :, None] * values[:, None, :], m - 1)
    d = np.zeros((m, 2, 2))
    d[:-1] += s[:, :2, :2]
    d[1:] += s[:, 2:, 2:]
    d[:, 1, 1] += prior
    rhs = np.zeros((m, 2, values.shape[1]))
    rhs[:-1] += r[:, :2]
    rhs[1:] += r[:, 2:]
    rhs[:, 1] += prior * slope
    ups = s[:, :2, 2:].reshape(m - 1, 4).tolist()  # (a key's block coupled with the next key's)
    # The 2x2 blocks of the elimination (lower[k] = up[k-1].T @ inv[k-1]), then each channel's
    # forward elimination and back substitution.
    inv, lower = [_inv2(*d[0].ravel().tolist())], [None]
    for (p, q, t, u), (a0, a1, a2, a3) in zip(d[1:].reshape(m - 1, 4).tolist(), ups, strict=True):
        i0, i1, i2, i3 = inv[-1]
        l0, l1, l2, l3 = a0 * i0 + a2 * i2, a0 * i1 + a2 * i3, a1 * i0 + a3 * i2, a1 * i1 + a3 * i3
        lower.append((l0, l1, l2, l3))
        inv.append(
            _inv2(
                p - (l0 * a0 + l1 * a2),
                q - (l0 * a1 + l1 * a3),
                t - (l2 * a0 + l3 * a2),
                u - (l2 * a1 + l3 * a3),
            )
        )
    z = np.empty((values.shape[1], m, 2))
    for ch, (first, second) in enumerate(np.moveaxis(rhs, 2, 0).transpose(0, 2, 1).tolist()):
        y0, y1 = first[0], second[0]
        ys = [(y0, y1)]
        for (l0, l1, l2, l3), x0, x1 in zip(lower[1:], first[1:], second[1:], strict=True):
            y0, y1 = x0 - (l0 * y0 + l1 * y1), x1 - (l2 * y0 + l3 * y1)
            ys.append((y0, y1))
        i0, i1, i2, i3 = inv[-1]
        z0, z1 = i0 * y0 + i1 * y1, i2 * y0 + i3 * y1
        out = [(z0, z1)]
        for (a0, a1, a2, a3), (y0, y1), (i0, i1, i2, i3) in zip(
            ups[::-1], ys[-2::-1], inv[-2::-1], strict=True
        ):
            e0, e1 = y0 - (a0 * z0 + a1 * z1), y1 - (a2 * z0 + a3 * z1)
            z0, z1 = i0 * e0 + i1 * e1, i2 * e0 + i3 * e1
            out.append((z0, z1))
        z[ch] = out[::-1]
    return z[:, :, 0].T, z[:, :, 1].T


def _sum_by(seg: np.ndarray, x: np.ndarray, m: int) -> np.ndarray:
    """(m, ...) sums of the rows of `x` (n, ...) by `seg` (n,), frame by frame in order (np.add.at's
    sums) by one np.bincount over the flattened entries."""
    size = x[0].size
    idx = (seg[:, None] * size + np.arange(size)).ravel()
    return np.bincount(idx, weights=x.ravel(), minlength=m * size).reshape((m, *x.shape[1:]))


def _inv2(p: float, q: float, r: float, t: float) -> tuple[float, float, float, float]:
    """The inverse of the 2x2 matrix ((p, q), (r, t)), row by row."""
    det = p * t - q * r
    return t / det, -q / det, -r / det, p / det


def fit(
    frames: np.ndarray, values: np.ndarray, keys: np.ndarray, kind: str, unit: float, tol: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Key values (m, c) and slopes (m, c) at the frames `keys` (indices, first and last included)
    fitting `values` (n, c); returns (values, slopes, per-frame error) of the fit whose largest error
    relative to `tol` (n,) is smallest over the reweighting rounds."""
    seg, b = _segments(frames, keys)
    slope = np.gradient(values, frames, axis=0)[keys]
    prior = (SLOPE_PRIOR * np.diff(frames[keys]).mean()) ** 2
    w = np.ones(len(frames))
    best = None
    for _ in range(REWEIGHTS):
        p, sl = _solve(seg, b, w, values, prior, slope)
        got = (b[:, :, None] * np.stack([p[seg], sl[seg], p[seg + 1], sl[seg + 1]], 1)).sum(1)
        err = group_error(kind, values, got, unit)
        ratio = err / tol
        if best is None or ratio.max() < best[0]:
            best = (ratio.max(), p, sl, err)
        if ratio.max() <= MARGIN:
            break
        w = w * (ratio + 1e-3)  # (Lawson: weight each frame by its error relative to the tolerance)
        w /= w.mean()
    return best[1], best[2], best[3]


def select_keys(
    frames: np.ndarray, values: np.ndarray, kind: str, unit: float, tol: np.ndarray
) -> np.ndarray:
    """(n,) mask of the frames to key so that the fitted curve stays within MARGIN of `tol` (n,) on
    every frame: first and last frame, then the worst frame of every stretch out of tolerance until
    none is, then every key whose removal the refitted curve tolerates is dropped."""
    n = len(frames)
    keep = np.zeros(n, bool)
    keep[[0, n - 1]] = True
    for _ in range(MAX_PASSES):
        err = fit(frames, values, np.flatnonzero(keep), kind, unit, tol)[2]
        excess = err - MARGIN * tol
        if not (excess > 0).any():
            break
        split(keep, excess)
    else:
        return np.ones(n, bool)  # (never leave a curve out of tolerance)
    return prune(frames, values, kind, unit, tol, keep)


def split(keep: np.ndarray, excess: np.ndarray) -> None:
    """Add a key (in place) to every stretch between keys where `excess` (n,) is positive: at its worst
    frame, or at its middle when that frame is in the outer quarter of a longer stretch (a fitted curve
    need not pass through its keys, and one long segment fitted to a sharp stretch erred most right next
    to its key: a key per frame walked one frame a pass and never reached the end of a fast run)."""
    idx = np.flatnonzero(keep)
    for lo, hi in zip(idx[:-1], idx[1:], strict=True):
        stretch = excess[lo + 1 : hi]
        if stretch.size and stretch.max() > 0:
            at = lo + 1 + int(stretch.argmax())
            if hi - lo > 4 and min(at - lo, hi - at) < (hi - lo) / 4:
                at = (lo + hi) // 2
            keep[at] = True


def prune(
    frames: np.ndarray, values: np.ndarray, kind: str, unit: float, tol: np.ndarray, keep: np.ndarray
) -> np.ndarray:
    """Drop every interior key the refitted curve can do without (refinement adds some that later keys
    made redundant)."""
    keep = keep.copy()
    for key in np.flatnonzero(keep)[1:-1]:
        keep[key] = False
        err = fit(frames, values, np.flatnonzero(keep), kind, unit, tol)[2]
        if (err > MARGIN * tol).any():
            keep[key] = True
    return keep


def handles(frames: np.ndarray, slopes: np.ndarray, key_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) handles (m, 2) of one channel's keys at `frames` (m,): a third of the way to the
    neighbouring key in time along the key's slope (the ends mirror their one neighbour)."""
    gap = np.diff(frames)
    left_dt = np.concatenate([gap[:1], gap]) / 3.0
    right_dt = np.concatenate([gap, gap[-1:]]) / 3.0
    left = np.stack([frames - left_dt, key_values - slopes * left_dt], -1)
    right = np.stack([frames + right_dt, key_values + slopes * right_dt], -1)
    return left, right
