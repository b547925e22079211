"""The CPU fast path of `train_sae` for small SAEs: a compiled step (Numba) that computes every
architecture's loss and gradients by hand.

Why: the toy SAEs of the book are tiny (2 → 5, 5 → 20), so a step of the PyTorch path
(`toy_lib.sae._base.SAEArchitecture.loss` and autograd) spends nearly all its time in the fixed
cost of some forty small tensor operations, several of which (a ``topk`` over 5 latents, a
reduction over the batch axis) cost milliseconds on such shapes. The arithmetic here is the same as
the architectures' ``loss`` methods and their autograd gradients (the tests check every
architecture against them); larger SAEs (where matrix products dominate) and GPUs use the PyTorch
path.

How: each instance's rows are taken `BLOCK` at a time, and every quantity of the block is held
transposed, one row of the work array per latent (or per input dimension) and one column per
input: ``z``, ``f``, ``∂L/∂z`` are ``(d_sae, rows)``, ``x``, ``x̂ - x``, ``∂L/∂x̂`` ``(d_in,
rows)``. Each product with ``W_enc`` or ``W_dec`` is then a loop over their few entries around an
inner loop along the block's rows: a contiguous, vectorised multiply-add whatever ``d_in`` and
``d_sae`` are (a per-row loop over 5 × 20 weights does not vectorise). Rows that are exactly zero
(most of a sparse toy model's inputs) all contribute the same, so they are computed once, as one
row weighted by their count. The step is built from small compiled pieces (`_encode`,
`_reconstruct`, `_through_decoder`, ...), each compiled once for every architecture and cached on
disk (``cache=True``).

The parameters live in one flat ``(instance, n_params)`` buffer (`layout`): ``W_enc``
``(d_in, d_sae)``, ``W_dec`` ``(d_sae, d_in)``, ``b_enc`` ``(d_sae,)``, ``b_dec`` ``(d_in,)``, then
the architecture's extras (``(d_sae,)`` each), each instance's in one row; the gradient buffer has
the same layout.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import _cpu_kernels

#: Architecture codes of the kernel.
CODES = {"relu": 0, "topk": 1, "batchtopk": 2, "gated": 3, "jumprelu": 4}
#: The largest ``d_in × d_sae`` the compiled path takes; above it, matrix products dominate and
#: MKL's are faster than these loops.
MAX_SIZE = 128
#: LLVM may reorder and fuse float operations (to vectorise), but not assume away NaN or infinity:
#: a diverging run must still show a NaN loss.
FAST = {"reassoc", "contract", "arcp"}
#: Rows per block of the compiled step (its work arrays are ``(d_sae, BLOCK)``): a whole batch of
#: 1,024 in one block; each of the block's loops then runs long enough that its fixed cost is small
#: (measured against 128, 256 and 512: `benchmarks/README.md`).
BLOCK = 1024


def available(config, device: torch.device) -> bool:
    """Whether the compiled path trains this configuration on this device."""
    return (
        device.type == "cpu"
        and _cpu_kernels.AVAILABLE
        and config.architecture in CODES
        and config.d_in * config.d_sae <= MAX_SIZE
    )


def layout(d_in: int, d_sae: int, extra: tuple[str, ...]) -> dict[str, tuple[int, int, tuple[int, ...]]]:
    """``{name: (start, stop, shape)}`` of each parameter in a row of the flat buffer."""
    shapes = {"W_enc": (d_in, d_sae), "W_dec": (d_sae, d_in), "b_enc": (d_sae,), "b_dec": (d_in,)}
    shapes.update({name: (d_sae,) for name in extra})
    out, start = {}, 0
    for name, shape in shapes.items():
        size = int(np.prod(shape))
        out[name] = (start, start + size, shape)
        start += size
    return out


def views(flat: torch.Tensor, spots: dict) -> dict[str, torch.Tensor]:
    """The parameters as views ``(instance, *shape)`` of the flat buffer ``(instance, n)``."""
    n_inst = flat.shape[0]
    return {name: flat[:, a:b].view(n_inst, *shape) for name, (a, b, shape) in spots.items()}


if _cpu_kernels.AVAILABLE:
    from numba import njit

    # Every piece below is its own compiled function, called once per block of rows (never per
    # row), so that Numba compiles each piece once, whichever architectures are trained: the
    # compile time is the sum of small functions, not five copies of one large one.

    @njit(cache=True, boundscheck=False)
    def _select(values, allowed, k, chosen):  # pragma: no cover - compiled
        """Mark in ``chosen`` the ``k`` largest ``values`` among the ``allowed`` entries."""
        n = values.shape[0]
        for j in range(n):
            chosen[j] = False
        for _ in range(k):
            best, at = -np.inf, -1
            for j in range(n):
                if allowed[j] and not chosen[j] and values[j] > best:
                    best, at = values[j], j
            if at < 0:
                break
            chosen[at] = True

    @njit(cache=True, boundscheck=False)
    def _nth_smallest(a, m):  # pragma: no cover - compiled
        """The ``m``-th smallest entry of ``a`` (0-based), by quickselect; reorders ``a``."""
        lo, hi = 0, a.shape[0] - 1
        while lo < hi:
            pivot = a[(lo + hi) // 2]
            i, j = lo, hi
            while i <= j:
                while a[i] < pivot:
                    i += 1
                while a[j] > pivot:
                    j -= 1
                if i <= j:
                    a[i], a[j] = a[j], a[i]
                    i += 1
                    j -= 1
            if m <= j:
                hi = j
            elif m >= i:
                lo = i
            else:
                break
        return a[m]

    @njit(cache=True, boundscheck=False)
    def _list_rows(x, i, rows):  # pragma: no cover - compiled
        """Write into ``rows`` the rows of ``x[i]`` that are not exactly zero, then ``-1`` (one row
        standing for all the zero ones) if there are any; return ``(entries, zero rows)``."""
        batch, d = x.shape[1], x.shape[2]
        n = 0
        for r in range(batch):
            nonzero = False
            for c in range(d):
                if x[i, r, c] != 0.0:
                    nonzero = True
            if nonzero:
                rows[n] = r
                n += 1
        n_zero = batch - n
        if n_zero > 0:
            rows[n] = -1
            n += 1
        return n, n_zero

    @njit(cache=True, boundscheck=False)
    def _gather(x, i, rows, q0, nr, n_zero, p, o_bdec, xT, xc, wr):  # pragma: no cover - compiled
        """A block: ``xT[:, q]`` the input of entry ``q0 + q`` of ``rows``, ``xc = xT - b_dec``,
        ``wr[q]`` how many inputs it stands for."""
        for q in range(nr):
            r = rows[q0 + q]
            wr[q] = 1.0 if r >= 0 else n_zero
            for c in range(x.shape[2]):
                v = x[i, r, c] if r >= 0 else np.float32(0.0)
                xT[c, q] = v
                xc[c, q] = v - p[o_bdec + c]

    @njit(cache=True, boundscheck=False, fastmath=FAST)
    def _axpy(y, a, x, nr):  # pragma: no cover - compiled
        """``y[:nr] += a · x[:nr]``: the inner loop of every product below, along a block's rows."""
        for q in range(nr):
            y[q] += a * x[q]

    @njit(cache=True, boundscheck=False, fastmath=FAST)
    def _dot(a, b, nr):  # pragma: no cover - compiled
        """``Σ_q a[q] b[q]`` over a block's rows (float32)."""
        acc = np.float32(0.0)
        for q in range(nr):
            acc += a[q] * b[q]
        return acc

    @njit(cache=True, boundscheck=False, fastmath=FAST)
    def _encode(p, o_enc, o_benc, xc, z, read, nr, d, s, keep_read):  # pragma: no cover - compiled
        """``z[j, :nr] = Σ_c W_enc[c, j] xc[c, :nr] + b_enc[j]`` for a block of rows (``read``: the
        same without ``b_enc``, kept when ``keep_read``)."""
        for j in range(s):
            zj = z[j]
            for q in range(nr):
                zj[q] = 0.0
            for c in range(d):
                _axpy(zj, p[o_enc + c * s + j], xc[c], nr)
            if keep_read:
                rj = read[j]
                for q in range(nr):
                    rj[q] = zj[q]
            b = p[o_benc + j]
            for q in range(nr):
                zj[q] += b

    @njit(cache=True, boundscheck=False, fastmath=FAST)
    def _batch_threshold(x, i, p, o_enc, o_benc, o_bdec, k, flat, xc, z, d, s):  # pragma: no cover
        """BatchTopK: the ``(k · batch)``-th largest ``ReLU(z)`` over instance ``i``'s whole batch,
        computed block by block by `_encode` exactly as the training pass computes it."""
        batch, nb = x.shape[1], z.shape[1]
        for r0 in range(0, batch, nb):
            nr = min(nb, batch - r0)
            for c in range(d):
                b = p[o_bdec + c]
                for q in range(nr):
                    xc[c, q] = x[i, r0 + q, c] - b
            _encode(p, o_enc, o_benc, xc, z, z, nr, d, s, False)
            for q in range(nr):
                for j in range(s):
                    flat[(r0 + q) * s + j] = max(z[j, q], np.float32(0.0))
        return _nth_smallest(flat, batch * s - k * batch)

    @njit(cache=True, boundscheck=False, fastmath=FAST)
    def _latents(
        code, z, read, f, p, o_e2, theta, k, thr, wr, zc, chosen, everyone, nr, s
    ):  # pragma: no cover
        """The latents ``f`` ``(d_sae, rows)`` of a block from ``z`` (``read`` = ``z - b_enc``), per
        architecture; returns the ReLU SAE's ``Σ_q wr_q ||f_q||₁`` (0 for the others)."""
        zero = np.float32(0.0)
        pen = 0.0
        if code == 0:
            for j in range(s):
                zj, fj = z[j], f[j]
                acc = 0.0
                for q in range(nr):
                    v = max(zj[q], zero)
                    fj[q] = v
                    acc += wr[q] * v
                pen += acc
        elif code == 1:
            for q in range(nr):
                for j in range(s):
                    zc[j] = z[j, q]
                _select(zc, everyone, k, chosen)
                for j in range(s):
                    f[j, q] = max(zc[j], zero) if chosen[j] else zero
        elif code == 2:
            for j in range(s):
                zj, fj = z[j], f[j]
                for q in range(nr):
                    a = max(zj[q], zero)
                    fj[q] = a if (a > zero and a >= thr) else zero
        elif code == 3:
            for j in range(s):
                zj, fj, rj = z[j], f[j], read[j]
                th, bm = theta[j], p[o_e2 + j]
                for q in range(nr):
                    mag = rj[q] * th + bm
                    fj[q] = mag if (zj[q] > zero and mag > zero) else zero
        else:
            for j in range(s):
                zj, fj = z[j], f[j]
                th = theta[j]
                for q in range(nr):
                    fj[q] = zj[q] if zj[q] > th else zero
        return pen

    @njit(cache=True, boundscheck=False)
    def _firing(f, active, fired, nr, s):  # pragma: no cover - compiled
        """Mark the latents active in the block (``active``) and ever (``fired``); return the
        smallest positive latent of the block (``inf`` if none).

        The search runs on the float32 bits read as int32: for positive floats their order is the
        bits' order, +0 and negatives are not positive, and NaN's bits lie above infinity's, so
        an integer minimum capped at infinity's bits finds the same latent, and vectorises (a
        float minimum with a condition does not)."""
        inf_bits = np.int32(0x7F800000)
        bits = np.empty(1, dtype=np.int32)
        small = np.inf
        for j in range(s):
            fj = f[j].view(np.int32)
            least = inf_bits
            for q in range(nr):
                b = fj[q]
                least = min(least, b if b > 0 else inf_bits)
            active[j] = least < inf_bits
            if active[j]:
                fired[j] = True
                bits[0] = least
                small = min(small, bits.view(np.float32)[0])
        return small

    @njit(cache=True, boundscheck=False, fastmath=FAST)
    def _reconstruct(p, g, o_dec, o_bdec, f, use, xT, wr, scale, e, gx, nr, d, s, relu):  # pragma: no cover
        """``e = W_dec f + b_dec - x`` ``(d_in, rows)`` over the latents with ``use[j]`` (``f``
        through a ReLU when ``relu``), ``gx = scale · wr · e``, ``Σ_q gx`` added to ``∂L/∂b_dec`` in
        ``g`` when ``relu`` is False; returns ``Σ_q wr_q ||e_q||²``."""
        sq = 0.0
        for c in range(d):
            ec, xcc, gc = e[c], xT[c], gx[c]
            b = p[o_bdec + c]
            for q in range(nr):
                ec[q] = b - xcc[q]
            for j in range(s):
                if use[j]:
                    w = p[o_dec + j * d + c]
                    fj = f[j]
                    if relu:
                        for q in range(nr):
                            ec[q] += w * max(fj[q], np.float32(0.0))
                    else:
                        _axpy(ec, w, fj, nr)
            acc = 0.0
            gsum = np.float32(0.0)
            for q in range(nr):
                acc += wr[q] * ec[q] * ec[q]
                gc[q] = scale * wr[q] * ec[q]
                gsum += gc[q]
            sq += acc
            if not relu:
                g[o_bdec + c] += gsum
        return sq

    @njit(cache=True, boundscheck=False, fastmath=FAST)
    def _through_decoder(p, g, o_dec, f, use, gx, df, add, nr, d, s):  # pragma: no cover - compiled
        """Back through the decoder: ``∂L/∂W_dec[j, c] += Σ_q f[j, q] gx[c, q]`` for the latents with
        ``use[j]``, and ``df[j] = Σ_c W_dec[j, c] gx[c]`` (``∂L/∂f``) for every latent, or, with
        ``add``, added to ``df`` where ``f > 0`` (for the latents with ``use[j]``)."""
        for j in range(s):
            dj, fj = df[j], f[j]
            if use[j]:
                for c in range(d):
                    g[o_dec + j * d + c] += _dot(fj, gx[c], nr)
            if add:
                if use[j]:
                    for c in range(d):
                        w = p[o_dec + j * d + c]
                        gc = gx[c]
                        for q in range(nr):
                            if fj[q] > 0.0:
                                dj[q] += w * gc[q]
            else:
                for q in range(nr):
                    dj[q] = 0.0
                for c in range(d):
                    _axpy(dj, p[o_dec + j * d + c], gx[c], nr)

    @njit(cache=True, boundscheck=False, fastmath=FAST)
    def _aux_k(
        p, g, o_dec, o_bdec, z, dead, aux_k, aux_c, aux_f, e, gx, df, wr, scale, zc, chosen, nr, d, s
    ):  # pragma: no cover
        """TopK's and BatchTopK's AuxK: the ``aux_k`` largest pre-activations among the dead latents
        reconstruct the residual ``x - x̂ = -e``; adds their gradients; returns ``Σ_q wr_q ||·||²``."""
        for q in range(nr):
            for j in range(s):
                zc[j] = z[j, q]
            _select(zc, dead, aux_k, chosen)
            for j in range(s):
                aux_f[j, q] = max(zc[j], np.float32(0.0)) if chosen[j] else np.float32(0.0)
        # e2 = W_dec f_aux - residual = W_dec f_aux + e: `_reconstruct` with x = -e and b_dec 0
        sq = 0.0
        for c in range(d):
            ec, gc = e[c], gx[c]
            for q in range(nr):
                gc[q] = ec[q]
            for j in range(s):
                if dead[j]:
                    _axpy(gc, p[o_dec + j * d + c], aux_f[j], nr)
            acc = 0.0
            for q in range(nr):
                acc += wr[q] * gc[q] * gc[q]
                gc[q] = scale * aux_c * wr[q] * gc[q]
            sq += acc
        _through_decoder(p, g, o_dec, aux_f, dead, gx, df, True, nr, d, s)
        return sq

    @njit(cache=True, boundscheck=False, fastmath=FAST)
    def _to_pre_activations(
        code, z, read, f, df, p, g, o_e1, o_e2, theta, gtheta, lam_b, eps, wr, nr, s
    ):  # pragma: no cover
        """``df``: ``∂L/∂f`` becomes ``∂L/∂z`` (for the gated SAE: ``∂L/∂read`` of its magnitude path,
        whose own parameters' gradients are added to ``g``); returns the L0 count of JumpReLU."""
        zero = np.float32(0.0)
        count = 0.0
        if code == 0:
            for j in range(s):
                zj, dj = z[j], df[j]
                for q in range(nr):
                    dj[q] = (dj[q] + lam_b * wr[q]) if zj[q] > zero else zero
        elif code == 1 or code == 2:
            for j in range(s):
                fj, dj = f[j], df[j]
                for q in range(nr):
                    if fj[q] <= zero:
                        dj[q] = zero
        elif code == 3:
            for j in range(s):
                zj, dj, rj = z[j], df[j], read[j]
                th, bm = theta[j], p[o_e2 + j]
                g_r = np.float32(0.0)
                g_b = np.float32(0.0)
                for q in range(nr):
                    mag = rj[q] * th + bm
                    dm = dj[q] if (zj[q] > zero and mag > zero) else zero
                    g_r += dm * rj[q] * th
                    g_b += dm
                    dj[q] = dm * th
                g[o_e1 + j] += g_r
                g[o_e2 + j] += g_b
        else:
            for j in range(s):
                zj, dj = z[j], df[j]
                th = theta[j]
                g_t = np.float32(0.0)
                acc = 0.0
                for q in range(nr):
                    u = (zj[q] - th) / eps
                    if abs(u) < 0.5:
                        g_t += -(th / eps) * dj[q] - lam_b * wr[q] / eps
                    if zj[q] > th:
                        acc += wr[q]
                    else:
                        dj[q] = zero
                gtheta[j] += g_t
                count += acc
        return count

    @njit(cache=True, boundscheck=False, fastmath=FAST)
    def _gate(
        p, g, o_dec, o_bdec, o_benc, z, df, everyone, xT, e, gx, wr, scale, lam_b, tmp, nr, d, s
    ):  # pragma: no cover
        """The gated SAE's gate path: the L1 penalty on ``ReLU(z)`` and its reconstruction through a
        frozen decoder; adds their ``∂L/∂z`` to ``df`` and ``∂L/∂b_enc`` to ``g``; returns
        ``(Σ_q wr_q ||x - x̂_frozen||², Σ_q wr_q ||ReLU(z_q)||₁)``."""
        zero = np.float32(0.0)
        sq = _reconstruct(p, g, o_dec, o_bdec, z, everyone, xT, wr, scale, e, gx, nr, d, s, True)
        pen = 0.0
        for j in range(s):
            zj, dj = z[j], df[j]
            for q in range(nr):
                tmp[q] = lam_b * wr[q]
            for c in range(d):
                _axpy(tmp, p[o_dec + j * d + c], gx[c], nr)
            acc = 0.0
            g_b = np.float32(0.0)
            for q in range(nr):
                if zj[q] > zero:
                    acc += wr[q] * zj[q]
                    g_b += tmp[q]
                    dj[q] += tmp[q]
            pen += acc
            g[o_benc + j] += g_b
        return sq, pen

    @njit(cache=True, boundscheck=False, fastmath=FAST)
    def _encoder_grads(p, g, o_enc, o_benc, o_bdec, xc, dz, nr, d, s, with_b_enc):  # pragma: no cover
        """Add ``∂L/∂W_enc``, ``∂L/∂b_dec`` (through ``x - b_dec``) and, ``with_b_enc``,
        ``∂L/∂b_enc`` of a block into ``g``, from ``dz = ∂L/∂z`` ``(s, nr)``."""
        for j in range(s):
            dj = dz[j]
            t = np.float32(0.0)
            for q in range(nr):
                t += dj[q]
            if with_b_enc:
                g[o_benc + j] += t
            for c in range(d):
                g[o_enc + c * s + j] += _dot(xc[c], dj, nr)
                g[o_bdec + c] -= p[o_enc + c * s + j] * t

    @njit(cache=True, boundscheck=False)
    def sae_step(
        code, x, P, G, offsets, d_sae, penalty, ks, since, window, settings, loss, smallest, scratch
    ):  # pragma: no cover - compiled
        """Loss and gradients of every instance on batch ``x`` ``(instance, batch, d_in)``.

        ``code``: the architecture (`CODES`). ``P``/``G``: flat parameters/gradients ``(instance,
        n)`` (``offsets``: starts of ``W_enc``, ``W_dec``, ``b_enc``, ``b_dec``, extra 1, extra 2).
        ``penalty`` ``(instance,)``: λ (already warmed up); ``ks`` ``(instance,)``: k; ``since``
        ``(instance, d_sae)``: steps since each latent fired, updated here (a latent is dead at
        ``since >= window``); ``settings``: ``[aux_k, aux_coefficient, jumprelu_bandwidth]``. Writes
        ``loss`` ``(instance,)`` and the smallest non-zero latent of each instance (BatchTopK's
        threshold estimate) into ``smallest``; ``scratch`` ``(instance, batch, d_sae)`` is
        BatchTopK's work space.

        The rows are taken `BLOCK` at a time and every quantity is held latent-major, ``(d_sae,
        rows)`` or ``(d_in, rows)``, so that each inner loop runs along the rows of the block:
        contiguous, vectorised multiply-adds whatever ``d_in`` and ``d_sae`` are. Inputs that are
        exactly zero (most of a sparse toy model's) all contribute the same: they are computed once,
        as one row weighted by their count.
        """
        n_inst, batch, d = x.shape
        s = d_sae
        nb = min(BLOCK, batch)
        o_enc, o_dec, o_benc, o_bdec, o_e1, o_e2 = (
            offsets[0],
            offsets[1],
            offsets[2],
            offsets[3],
            offsets[4],
            offsets[5],
        )
        inv_b = np.float32(1.0 / batch)
        scale = np.float32(2.0 / batch)
        aux_k = int(settings[0])
        aux_c = np.float32(settings[1])
        eps = np.float32(settings[2])
        # the block: inputs, centred inputs, errors and ∂L/∂x̂ (d_in, rows); the rest (d_sae, rows)
        xT = np.empty((d, nb), dtype=np.float32)
        xc = np.empty((d, nb), dtype=np.float32)
        e = np.empty((d, nb), dtype=np.float32)
        gx = np.empty((d, nb), dtype=np.float32)
        z = np.empty((s, nb), dtype=np.float32)
        read = np.empty((s, nb), dtype=np.float32)
        f = np.empty((s, nb), dtype=np.float32)
        df = np.empty((s, nb), dtype=np.float32)  # ∂L/∂f, then ∂L/∂z
        aux_f = np.empty((s, nb), dtype=np.float32)
        wr = np.empty(nb, dtype=np.float32)  # how many inputs each row stands for
        tmp = np.empty(nb, dtype=np.float32)
        rows = np.empty(batch + 1, dtype=np.int64)
        zc = np.empty(s, dtype=np.float32)
        chosen = np.zeros(s, dtype=np.bool_)
        everyone = np.ones(s, dtype=np.bool_)
        dead = np.empty(s, dtype=np.bool_)
        fired = np.empty(s, dtype=np.bool_)
        active = np.empty(s, dtype=np.bool_)
        theta = np.zeros(s, dtype=np.float32)
        gtheta = np.empty(s, dtype=np.float32)
        for i in range(n_inst):
            p, g = P[i], G[i]
            g[:] = 0.0
            lam = np.float32(penalty[i])
            lam_b = lam * inv_b
            k = ks[i]
            for j in range(s):
                dead[j] = since[i, j] >= window
                if code == 3 or code == 4:
                    theta[j] = np.exp(p[o_e1 + j])
            fired[:] = False
            gtheta[:] = 0.0
            n_items, n_zero = _list_rows(x, i, rows)
            thr = np.float32(0.0)
            if code == 2:
                thr = _batch_threshold(x, i, p, o_enc, o_benc, o_bdec, k, scratch[i].reshape(-1), xc, z, d, s)
            sq = 0.0
            pen = 0.0
            aux_sq = 0.0
            small = np.inf
            for q0 in range(0, n_items, nb):
                nr = min(nb, n_items - q0)
                _gather(x, i, rows, q0, nr, n_zero, p, o_bdec, xT, xc, wr)
                _encode(p, o_enc, o_benc, xc, z, read, nr, d, s, code == 3)
                pen += _latents(code, z, read, f, p, o_e2, theta, k, thr, wr, zc, chosen, everyone, nr, s)
                small = min(small, _firing(f, active, fired, nr, s))
                sq += _reconstruct(p, g, o_dec, o_bdec, f, active, xT, wr, scale, e, gx, nr, d, s, False)
                _through_decoder(p, g, o_dec, f, active, gx, df, False, nr, d, s)
                pen += _to_pre_activations(
                    code, z, read, f, df, p, g, o_e1, o_e2, theta, gtheta, lam_b, eps, wr, nr, s
                )
                if (code == 1 or code == 2) and aux_k > 0:
                    aux_sq += _aux_k(
                        p,
                        g,
                        o_dec,
                        o_bdec,
                        z,
                        dead,
                        aux_k,
                        aux_c,
                        aux_f,
                        e,
                        gx,
                        df,
                        wr,
                        scale,
                        zc,
                        chosen,
                        nr,
                        d,
                        s,
                    )
                if code == 3:
                    a_sq, a_pen = _gate(
                        p,
                        g,
                        o_dec,
                        o_bdec,
                        o_benc,
                        z,
                        df,
                        everyone,
                        xT,
                        e,
                        gx,
                        wr,
                        scale,
                        lam_b,
                        tmp,
                        nr,
                        d,
                        s,
                    )
                    aux_sq += a_sq
                    pen += a_pen
                # into the encoder (the gated SAE's b_enc got its gradient from the gate path)
                _encoder_grads(p, g, o_enc, o_benc, o_bdec, xc, df, nr, d, s, code != 3)
            if code == 4:
                for j in range(s):
                    g[o_e1 + j] = gtheta[j] * theta[j]  # ∂/∂ log θ
            total = sq * inv_b
            if code == 0 or code == 3 or code == 4:
                total += lam * pen * inv_b
            if code == 3:
                total += aux_sq * inv_b
            if (code == 1 or code == 2) and aux_k > 0:
                total += aux_c * aux_sq * inv_b
            loss[i] = total
            smallest[i] = small if small < np.inf else 0.0
            for j in range(s):
                since[i, j] = 0.0 if fired[j] else since[i, j] + 1.0


class CpuStep:
    """Calls `sae_step` for one `train_sae` run: the architecture's settings and work buffers.

    Args:
        arch: the architecture object (its config gives the settings).
        spots: the flat layout (`layout`).
        batch_size: rows per instance per step.
    """

    def __init__(self, arch, spots: dict, batch_size: int):
        cfg = arch.config
        self.name = cfg.architecture
        self.code = CODES[self.name]
        extra = [spots[n][0] for n in arch.extra_parameters] + [0, 0]
        self.offsets = np.array(
            [spots["W_enc"][0], spots["W_dec"][0], spots["b_enc"][0], spots["b_dec"][0], extra[0], extra[1]],
            dtype=np.int64,
        )
        self.d_sae = cfg.d_sae
        self.penalty = cfg._penalty().astype(np.float32)
        self.ks = cfg._k_vector() if cfg.k is not None else np.zeros(cfg.n_instances, dtype=np.int64)
        aux_k = getattr(cfg, "aux_k", None) or 0
        self.settings = np.array(
            [aux_k, cfg.aux_coefficient or 0.0, cfg.jumprelu_bandwidth or 1.0], dtype=np.float64
        )
        n = cfg.n_instances
        self.scratch = np.empty((n, batch_size if self.code == 2 else 1, cfg.d_sae), dtype=np.float32)
        self.smallest = np.empty(n, dtype=np.float64)
        self.loss = np.empty(n, dtype=np.float64)

    def __call__(self, x, flat, grad, since, window: int, penalty_scale: float) -> np.ndarray:
        """Fill ``grad`` (flat, like ``flat``) for batch ``x``; update ``since``; return the losses."""
        sae_step(
            self.code,
            x.numpy(),
            flat.detach().numpy(),
            grad.numpy(),
            self.offsets,
            self.d_sae,
            self.penalty * np.float32(penalty_scale),
            self.ks,
            since.numpy(),
            float(window),
            self.settings,
            self.loss,
            self.smallest,
            self.scratch,
        )
        return self.loss
