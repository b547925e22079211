"""Compiled CPU kernels (Numba): the parts of a training step that are not matrix products,
and the whole step of tiny models.

A training step on the CPU spends its time in three kinds of work: drawing the sparse batch,
five matrix products, and the element-wise pass between them. The products go to PyTorch (MKL),
which multiplies these shapes faster than any loop Numba compiles here; the rest is written here
as loops that Numba compiles (`toy_lib.training._CpuStep` calls them):

- `sample_batch` (every instance, on every core) and `sample_instances` (some instances, on the
  calling thread, without the GIL): draw a batch entry by entry from a counter-based random
  number generator (below), or, for very sparse instances, jump from one active entry to the
  next;
- `sample_hidden`: `sample_batch`, then a toy model's hidden vectors ``h = W x`` summed over each
  batch's active entries only (the batches `train_sae` takes from a trained toy model);
- `residual`: turns the pre-activations ``z`` into ``∂L/∂z`` in place and adds up each
  instance's loss, in one pass instead of five;
- `tiny_step`: the whole step of a model with a handful of features (sample, forward, residual,
  gradient), generated for its sizes and kept in registers (see "Tiny models" below).

Random numbers. Entry ``(instance i, step t, row r, feature f)`` of the batch is a pure
function of the seed and of those four integers: a 64-bit key per instance and step
(``mix64(key_i ^ t·M1)``) plus the entry's position times the golden-ratio increment, passed
through ``mix64``, the finaliser of SplitMix64 (Steele, Lea & Flood 2014). This is exactly the
sequence SplitMix64 generates, and counter-based: no state is carried from one entry to the next,
so the loop over features vectorises, instances run in parallel, and the batch is the same
whichever thread draws it. Each 64-bit number gives both the coin and the value of its entry:

- the top 40 bits ``c`` decide activity: active when ``c < p·2^40``, i.e. with probability
  ``p`` exactly for every float32 ``p ≥ 2^-16`` (and within ``2^-41`` below that);
- the low 24 bits ``v`` give the value ``v·2^-24``: uniform on the grid of ``torch.rand``,
  independent of the coin.

Sparse instances (every probability at most `SPARSE_AT_MOST`) are drawn as `BatchSampler` draws
them on a GPU: the gaps between successive successes of Bernoulli(``q``) trials (``q`` the
instance's largest probability) are Geometric(``q``), from 53-bit uniforms by inversion, and a
success at feature ``f`` is kept with probability ``p_f / q`` (thinning). The cost is proportional
to the number of active entries: about 27 ns an active entry against 0.8 ns a coin, so it is
the cheaper below about 3% density (measured: `benchmarks/README.md`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import sys
import tempfile

import numpy as np

try:  # Numba is a dependency; without it toy_lib falls back to its PyTorch path.
    from numba import njit, prange

    AVAILABLE = True
except ImportError:  # pragma: no cover - exercised only where numba is missing
    AVAILABLE = False


_POOL_STARTED = False


def numba_module():
    """The ``numba`` module when the compiled kernels are available, else ``None``.

    The first call starts Numba's thread pool. Its OpenMP layer sets OpenMP's thread count to
    all the cores as it starts, and torch reads the same setting (``torch.get_num_threads``), so
    a ``torch.set_num_threads(1)`` made before would be lost; the call puts torch's setting back.
    """
    global _POOL_STARTED
    if not AVAILABLE:
        return None
    import numba

    if not _POOL_STARTED:
        import torch

        threads = torch.get_num_threads()
        numba.get_num_threads()  # starts the pool
        torch.set_num_threads(threads)
        _POOL_STARTED = True
    return numba


# Instances whose largest probability is at most this jump from one active entry to the next.
SPARSE_AT_MOST = 0.03

#: The CPU step's product path works through the instances in chunks of at most this many
#: batch entries (instance × batch × feature; at least one instance), so that a chunk's batch
#: and its pre-activations (4 bytes an entry each) stay in a core's L2 cache while in use.
CHUNK_NUMBERS = 2**17

GAMMA = np.uint64(0x9E3779B97F4A7C15)  # the golden-ratio increment of SplitMix64
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)
SPARSE_DOMAIN = np.uint64(0xD1B54A32D192ED03)  # separates the candidates' stream from the coins'


def mix64_numpy(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on a uint64 array (NumPy, for the instance keys)."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * M1
        z = (z ^ (z >> np.uint64(27))) * M2
        return z ^ (z >> np.uint64(31))


def instance_keys(seed: int, n_instances: int) -> np.ndarray:
    """One 64-bit key per instance, from a 64-bit seed."""
    with np.errstate(over="ignore"):
        counters = np.uint64(seed) + (np.arange(n_instances, dtype=np.uint64) + np.uint64(1)) * GAMMA
    return mix64_numpy(counters)


def thresholds(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sampler's tables for ``(instance, feature)`` probabilities ``p`` (float64).

    Returns ``p40`` (coin thresholds ``p·2^40``), ``inv_log1m_q`` (``1 / log(1 - q)`` for the
    sparse instances, 0 for the others) and ``thin40`` (``(p / q)·2^40``; all ``2^40`` for
    instances that are not sparse).
    """
    q = p.max(axis=1) if p.shape[1] else np.zeros(p.shape[0])
    sparse = (q > 0) & (q <= float(np.float32(SPARSE_AT_MOST)))  # p arrives as float32
    p40 = np.rint(p * 2.0**40).astype(np.uint64)
    inv_log1m_q = np.zeros(p.shape[0])
    inv_log1m_q[sparse] = 1.0 / np.log1p(-q[sparse])
    ratio = np.ones_like(p)
    ratio[sparse] = p[sparse] / q[sparse][:, None]
    thin40 = np.rint(ratio * 2.0**40).astype(np.uint64)
    return p40, inv_log1m_q, thin40


if AVAILABLE:

    @njit(inline="always")
    def _mix64(z):
        z = (z ^ (z >> np.uint64(30))) * M1
        z = (z ^ (z >> np.uint64(27))) * M2
        return z ^ (z >> np.uint64(31))

    @njit(nogil=True, fastmath=True, cache=True, boundscheck=False)
    def _coin_per_entry(P, key, xi):  # pragma: no cover - compiled
        # fastmath lets LLVM vectorise the conversions; nothing here can be NaN or infinite
        batch, n_feat = xi.shape
        inv24 = np.float32(1.0 / 16777216.0)
        low24 = np.uint64(0xFFFFFF)
        sh24 = np.uint64(24)
        for r in range(batch):
            xr = xi[r]
            c = key + np.uint64(r * n_feat) * GAMMA  # the counter of entry (r, f) is c + f·GAMMA
            for f in range(n_feat):
                u = _mix64(c)
                c += GAMMA  # an induction variable: no 64-bit multiply per entry
                xr[f] = np.float32(u & low24) * inv24 if (u >> sh24) < P[f] else np.float32(0.0)

    @njit(nogil=True, cache=True, boundscheck=False)
    def _jump_between_actives(T, il, key, xi):  # pragma: no cover - compiled
        batch, n_feat = xi.shape
        inv24 = np.float32(1.0 / 16777216.0)
        inv53 = 1.0 / 9007199254740992.0
        low24 = np.uint64(0xFFFFFF)
        sh24 = np.uint64(24)
        sh11 = np.uint64(11)
        key = _mix64(key ^ SPARSE_DOMAIN)
        flat = xi.reshape(-1)
        flat[:] = 0.0
        total = batch * n_feat
        c = np.uint64(0)
        u = _mix64(key)
        # Geometric gaps by inversion: floor(log(1 - u) / log(1 - q)), u on the 2^-53 grid
        pos = int(math.floor(math.log1p(-float(u >> sh11) * inv53) * il))
        while pos < total:
            c += np.uint64(1)
            u = _mix64(key + c * GAMMA)
            if (u >> sh24) < T[pos % n_feat]:  # thinning: keep with probability p_f / q
                flat[pos] = np.float32(u & low24) * inv24
            c += np.uint64(1)
            u = _mix64(key + c * GAMMA)
            pos += 1 + int(math.floor(math.log1p(-float(u >> sh11) * inv53) * il))

    @njit(nogil=True, cache=True, boundscheck=False)
    def _sample_instance(p40, inv_log1m_q, thin40, key, step, xi):  # pragma: no cover - compiled
        key = _mix64(key ^ (np.uint64(step) * M1))
        if inv_log1m_q == 0.0:
            _coin_per_entry(p40, key, xi)
        else:
            _jump_between_actives(thin40, inv_log1m_q, key, xi)

    @njit(parallel=True, cache=True, boundscheck=False)
    def sample_batch(p40, inv_log1m_q, thin40, keys, step, x):  # pragma: no cover - compiled
        """Fill ``x`` ``(instance, batch, feature)`` with batch number ``step`` (see the module)."""
        for i in prange(x.shape[0]):
            _sample_instance(p40[i], inv_log1m_q[i], thin40[i], keys[i], step, x[i])

    @njit(nogil=True, cache=True, boundscheck=False)
    def _hidden(xi, Wti, hi):  # pragma: no cover - compiled
        """``hi = xi Wti`` ``(batch, hidden)`` from the sparse batch ``xi`` ``(batch, feature)`` and
        ``Wti`` ``(feature, hidden)``, over the active entries only: a first pass lists them
        (without a branch: every entry is written, the count advances on the active ones), a
        second adds ``x[r, f] · Wti[f]`` into row ``r`` of ``hi``. Each row is summed in feature
        order, and a row without active features is exactly zero."""
        n_feat, n_hid = xi.shape[1], hi.shape[1]
        xf, hf = xi.reshape(-1), hi.reshape(-1)
        active = np.empty(xf.shape[0], dtype=np.int32)
        m = 0
        for e in range(xf.shape[0]):
            active[m] = e
            m += xf[e] != 0.0
        hf[:] = 0.0
        for t in range(m):
            e = active[t]
            r = e // n_feat
            f = e - r * n_feat
            v = xf[e]
            for k in range(n_hid):
                hf[r * n_hid + k] += v * Wti[f, k]

    @njit(parallel=True, cache=True, boundscheck=False)
    def sample_hidden(p40, inv_log1m_q, thin40, keys, step, x, Wt, h):  # pragma: no cover - compiled
        """`sample_batch` into ``x`` ``(instance, batch, feature)``, then the toy model's hidden
        vectors ``h = x Wt`` ``(instance, batch, hidden)`` (``Wt`` ``(instance, feature, hidden)``)
        from each instance's batch while it is in cache: a sparse product over its active entries
        (`_hidden`) instead of a dense one over mostly-zero ``x``."""
        for i in prange(x.shape[0]):
            _sample_instance(p40[i], inv_log1m_q[i], thin40[i], keys[i], step, x[i])
            _hidden(x[i], Wt[i], h[i])

    @njit(nogil=True, cache=True, boundscheck=False)
    def sample_instances(p40, inv_log1m_q, thin40, keys, step, x):  # pragma: no cover - compiled
        """`sample_batch` on one thread, without the GIL: the CPU step's workers draw their
        instances with it, each while that instance is in its core's cache."""
        for i in range(x.shape[0]):
            _sample_instance(p40[i], inv_log1m_q[i], thin40[i], keys[i], step, x[i])

    @njit(nogil=True, fastmath=True, cache=True, boundscheck=False)
    def residual(z, x, bias, weight, relu, loss, grad_bias):  # pragma: no cover - compiled
        """The element-wise middle of a training step, in one pass over the batch (one thread,
        without the GIL: the CPU step's workers call it on their instances).

        With ``z`` the products ``Wᵀ W x`` (without the bias), ``x`` the batch (both
        ``(instance, batch, feature)``), ``bias`` ``(instance, feature)`` and ``weight``
        ``w = importance / (batch · feature)`` ``(instance, feature)``, writes, in place,
        ``z := ∂L/∂z = 2 w (act(z + b) - x) act'(z + b)``, each instance's loss
        ``Σ w (act(z + b) - x)²`` into ``loss`` ``(instance,)`` and ``∂L/∂b = Σ_batch ∂L/∂z``
        into ``grad_bias`` ``(instance, feature)``.
        """
        n_inst, batch, n_feat = z.shape
        for i in range(n_inst):
            w = weight[i]
            b = bias[i]
            gb = grad_bias[i]
            gb[:] = 0.0
            total = 0.0
            for r in range(batch):
                zr = z[i, r]
                xr = x[i, r]
                part = np.float32(0.0)
                for f in range(n_feat):
                    zz = zr[f] + b[f]
                    e = (max(zz, np.float32(0.0)) if relu else zz) - xr[f]
                    we = w[f] * e
                    part += we * e
                    d = (we + we) if (zz > 0 or not relu) else np.float32(0.0)
                    zr[f] = d
                    gb[f] += d
                total += part
            loss[i] = total


# ------------------------------------------------------------------------------ tiny models
#
# A model with a handful of features (the phase diagrams' 2 -> 1 and 3 -> 2, the 5 -> 2
# pentagons) does so little arithmetic per sample that MKL's cost per call, five products per
# instance, is most of its step. For these, one generated kernel does the whole step, instance
# by instance: it draws each sample's features from the coin stream above, and
# forms h, z, the residual, the loss and the gradient in registers, with every loop over
# features and hidden units unrolled (the sizes are compiled in), so that the loop over the
# batch's rows is the only loop left and LLVM vectorises it. Numba compiles one kernel per
# (features, hidden, activation); its source is written to a file so that Numba's disk cache
# keeps the compiled code between processes.

#: The CPU step's workers take the instances of a tiny model this many at a time.
TINY_CHUNK = 64
#: Models this small take the tiny kernel: at most this many features, ...
TINY_MAX_FEATURES = 8
#: ... and at most this many weights and biases per instance (features × (hidden + 1)); the
#: compile time grows with the unrolled body (about 2 s for 3 -> 2, 20 s for 8 -> 4).
TINY_MAX_PARAMETERS = 18


def tiny_fits(n_feat: int, n_hidden: int) -> bool:
    """Whether a ``n_feat -> n_hidden`` model trains with the tiny kernel."""
    return n_feat <= TINY_MAX_FEATURES and n_feat * (n_hidden + 1) <= TINY_MAX_PARAMETERS


def tiny_kernel_source(n_feat: int, n_hidden: int, relu: bool) -> str:
    """Python source of the tiny kernel for ``n_feat -> n_hidden`` (see `tiny_step`).

    Scalars are named by position: ``w{k}_{f}`` is ``Wb[i, k, f]`` (row ``k == n_hidden`` is
    the bias) and ``g{k}_{f}`` its gradient; ``x{f}``, ``z{f}`` and ``d{f}`` (``∂L/∂z``) are one
    sample's feature values, ``h{k}`` and ``dh{k}`` (``∂L/∂h``) its hidden values.
    """
    n, m = n_feat, n_hidden
    feats, hids = range(n), range(m)
    out = [
        f"# Generated by toy_lib._cpu_kernels.tiny_kernel_source({n}, {m}, relu={relu}): do not edit.",
        "import numpy as np",
        "from numba import njit",
        "",
        "from toy_lib._cpu_kernels import GAMMA, M1, _mix64",
        "",
        "",
        "@njit(nogil=True, fastmath=True, cache=True, boundscheck=False)",
        "def tiny_step(Wb, p40, keys, batch_number, weight, batch, loss, grad, first, stop):",
        "    inv24 = np.float32(1.0 / 16777216.0)",
        "    low24 = np.uint64(0xFFFFFF)",
        "    sh24 = np.uint64(24)",
        "    zero = np.float32(0.0)",
        f"    row_step = np.uint64({n}) * GAMMA",
        "    for i in range(first, stop):",
        "        # the instance's parameters, coin thresholds and loss weights, as scalars",
    ]
    add = out.append
    for k in range(m + 1):
        add("        " + "; ".join(f"w{k}_{f} = Wb[i, {k}, {f}]" for f in feats))
        add("        " + "; ".join(f"g{k}_{f} = zero" for f in feats))
    add("        " + "; ".join(f"P{f} = p40[i, {f}]" for f in feats))
    add("        " + "; ".join(f"s{f} = weight[i, {f}]" for f in feats))
    add("        total = zero")
    add("        c = _mix64(keys[i] ^ (np.uint64(batch_number) * M1))  # counter of (row 0, feature 0)")
    add("        for r in range(batch):")
    add("            # the sample: feature f is active when the top 40 bits fall below p·2^40")
    for f in feats:
        add(f"            u = _mix64(c + np.uint64({f}) * GAMMA)")
        add(f"            x{f} = np.float32(u & low24) * inv24 if (u >> sh24) < P{f} else zero")
    add("            c += row_step")
    add("            # forward: h = W x, z = Wᵀ h + b")
    for k in hids:
        add(f"            h{k} = " + " + ".join(f"w{k}_{f} * x{f}" for f in feats))
    for f in feats:
        add(f"            z{f} = " + " + ".join([f"w{k}_{f} * h{k}" for k in hids] + [f"w{m}_{f}"]))
    add("            # residual e = act(z) - x; loss Σ w e²; d = ∂L/∂z = 2 w e act'(z)")
    for f in feats:
        act = f"max(z{f}, zero)" if relu else f"z{f}"
        add(f"            e = {act} - x{f}")
        add(f"            we = s{f} * e")
        add("            total += we * e")
        if relu:
            add(f"            d{f} = (we + we) if z{f} > zero else zero")
        else:
            add(f"            d{f} = we + we")
        add(f"            g{m}_{f} += d{f}")
    add("            # backward: ∂L/∂h = W d; ∂L/∂W[k, f] += h[k] d[f] (read-out) + ∂L/∂h[k] x[f] (write-in)")
    for k in hids:
        add(f"            dh{k} = " + " + ".join(f"w{k}_{f} * d{f}" for f in feats))
        for f in feats:
            add(f"            g{k}_{f} += h{k} * d{f} + dh{k} * x{f}")
    add("        loss[i] = total")
    for k in range(m + 1):
        add("        " + "; ".join(f"grad[i, {k}, {f}] = g{k}_{f}" for f in feats))
    return "\n".join(out) + "\n"


_TINY_KERNELS: dict = {}


def _kernel_dirs():
    """Folders for the generated kernels' files, in order of preference."""
    here = os.path.dirname(os.path.abspath(__file__))
    yield os.path.join(here, "__pycache__", "generated_kernels")
    user = os.getuid() if hasattr(os, "getuid") else "user"
    yield os.path.join(tempfile.gettempdir(), f"toy_lib_kernels_{user}")


def tiny_step(n_feat: int, n_hidden: int, relu: bool):
    """The compiled tiny step for ``n_feat -> n_hidden`` models (requires `tiny_fits`).

    ``tiny_step(n, m, relu)(Wb, p40, keys, batch_number, weight, batch, loss, grad, first,
    stop)`` runs instances ``first`` to ``stop - 1`` on the calling thread, without the GIL (the
    CPU step's workers share the instances out). It draws batch number ``batch_number`` of
    ``batch`` samples per instance from the coin stream
    (``p40``, ``keys`` as in `sample_batch`; every instance is drawn coin by coin, so an
    instance whose probabilities are all at most `SPARSE_AT_MOST`, which `sample_batch` draws by
    jumps, gets a different, equally distributed batch), and writes each instance's loss into
    ``loss`` ``(instance,)`` and the gradient of ``Wb`` ``(instance, hidden + 1, feature)`` (the
    bias as the last row; ``weight`` as in `residual`) into ``grad``: the same arithmetic as
    `sample_batch` followed by the five products and `residual`, summed in another order.
    """
    key = (n_feat, n_hidden, bool(relu))
    if key in _TINY_KERNELS:
        return _TINY_KERNELS[key]
    source = tiny_kernel_source(*key)
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    name = f"tiny_{n_feat}x{n_hidden}_{'relu' if relu else 'linear'}_{digest}"
    kernel = None
    for folder in _kernel_dirs():
        path = os.path.join(folder, name + ".py")
        try:
            if not os.path.exists(path):  # written once: a new mtime would void Numba's cache
                os.makedirs(folder, exist_ok=True)
                fd, temp = tempfile.mkstemp(dir=folder, suffix=".tmp")
                with os.fdopen(fd, "w") as file:
                    file.write(source)
                os.replace(temp, path)
            spec = importlib.util.spec_from_file_location(f"_toy_lib_{name}", path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module  # Numba's cache finds the function through it
            spec.loader.exec_module(module)
            kernel = module.tiny_step
            break
        except OSError:
            continue
    if kernel is None:  # pragma: no cover - no writable folder: compile from memory, uncached
        namespace: dict = {}
        exec(compile(source.replace("cache=True", "cache=False"), f"<{name}>", "exec"), namespace)
        kernel = namespace["tiny_step"]
    _TINY_KERNELS[key] = kernel
    return kernel
