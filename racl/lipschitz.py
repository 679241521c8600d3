"""Lipschitz constants of operations (paper Sec. 3.2, Eqs. 6-9).

For a linear map A (a convolution, a chain of convolutions and inference-mode batch norm,
average pooling) the l2 Lipschitz constant is the largest singular value ||A||_2. We
estimate it by power iteration on the *actual operator*: v <- A^T A v / ||A^T A v||, with
A v computed by running the layers on v and A^T u by back-propagating u through them (a
vector-Jacobian product), so padding, stride, dilation and groups are all accounted for.
The vectors persist between calls (one iteration per training step, as in spectral
normalisation), so the estimate tracks the weights as they change.

Power iteration approaches ||A||_2 from below; the op constants are products over the op's
parts (:meth:`racl.operations.LipschitzOp.lipschitz_parts`), which bounds the op's constant
from above once the estimates have converged. ``tests/test_lipschitz.py`` checks both
against exact singular values and empirical ratios ||f(x) - f(y)|| / ||x - y||.
"""

from __future__ import annotations

import weakref
from collections import deque
from typing import Callable, Optional

import torch

from .operations import DepthwiseConv2d, FactorizedReduce, LipschitzOp, Part


def power_iteration(
    fn: Callable[[torch.Tensor], torch.Tensor], v: torch.Tensor, n_iter: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``n_iter`` power iterations of A^T A for the linear map ``fn`` from vector ``v``.

    Returns (sigma, v): the estimate ||A v|| for the unit vector v, and the new vector.
    """
    v = v.detach()
    for _ in range(n_iter):
        with torch.enable_grad():
            v = v.requires_grad_(True)
            u = fn(v)
            (g,) = torch.autograd.grad(u, v, grad_outputs=u.detach())
        v = (g / g.norm().clamp_min(1e-30)).detach()
    with torch.no_grad():
        sigma = fn(v).norm()
    return sigma, v


def power_iteration_fused(
    fn: Callable[[torch.Tensor], torch.Tensor], v: torch.Tensor, n_iter: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`power_iteration` without its closing forward pass (the fast path
    ``power_iteration_fused``): the estimate is read off the last iteration itself,
    ||A^T A v|| / ||A v|| for the unit vector v that iteration started from.

    That ratio is a lower bound on ||A||_2 as well (||A^T u|| <= ||A||_2 ||u||), and it is
    at least ||A v|| (Cauchy-Schwarz: ||A v||^2 = <v, A^T A v> <= ||A^T A v||), so it lies
    between the estimate of the iteration's start vector and the one :func:`power_iteration`
    returns for its end vector: half an iteration behind the latter, for two passes instead
    of three. ``n_iter = 0`` falls back to one forward pass on ``v``."""
    v = v.detach()
    sigma = None
    for _ in range(n_iter):
        with torch.enable_grad():
            v = v.requires_grad_(True)
            u = fn(v)
            (g,) = torch.autograd.grad(u, v, grad_outputs=u.detach())
        g_norm = g.norm()
        sigma = (g_norm / u.detach().norm().clamp_min(1e-30)).detach()
        v = (g / g_norm.clamp_min(1e-30)).detach()
    if sigma is None:
        with torch.no_grad():
            sigma = fn(v).norm()
    return sigma, v


def lanczos(
    fn: Callable[[torch.Tensor], torch.Tensor], v: torch.Tensor, max_steps: int = 10, tol: float = 1e-4
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """||A||_2 of the linear map ``fn`` by the Lanczos method on A^T A started from ``v``
    (the ``lipschitz_method = "lanczos"`` path; :func:`power_iteration` is the paper's).

    Each step costs what one power iteration costs (a forward pass and a vector-Jacobian
    product), but the estimate is the top Ritz value of the whole Krylov space
    span{v, A^T A v, ..., (A^T A)^(k-1) v}, which converges like Chebyshev polynomials of
    the spectral gap (error ~ exp(-2 k sqrt(gap))) where power iteration converges like
    (sigma_2 / sigma_1)^(2k). The layers of a supernet have tops of the spectrum where
    sigma_2 / sigma_1 is 0.94-1.0, so power iteration needs hundreds of iterations to reach
    1e-3 there and Lanczos a handful (``tests/test_fastpaths.py``).

    The Lanczos vectors are fully re-orthogonalised (twice; k is small). The iteration
    stops after ``max_steps`` steps, at an invariant subspace, or once the residual of the
    top Ritz pair (theta, y), ||A^T A y - theta y|| = beta_k |s_k|, is at most
    ``tol * theta``: theta then lies within tol (relative) of an eigenvalue of A^T A, so
    sqrt(theta) within tol / 2 of a singular value of A. Like power iteration the estimate
    is a lower bound on ||A||_2 (a Ritz value lies inside the spectrum).

    Returns (sigma, y, steps): the estimate, the unit top Ritz vector (the next call's warm
    start) and the number of steps taken."""
    if max_steps < 1:
        raise ValueError(f"Lanczos needs at least one step, got max_steps={max_steps}")
    q = v.detach()
    q = q / q.norm().clamp_min(1e-30)
    Q = [q]
    alphas: list[float] = []
    betas: list[float] = []
    T = None
    for k in range(1, max_steps + 1):
        with torch.enable_grad():
            x = Q[-1].detach().requires_grad_(True)
            u = fn(x)
            (w,) = torch.autograd.grad(u, x, grad_outputs=u.detach())
        w = w.detach()
        alphas.append(float((w * Q[-1]).sum()))
        for _ in range(2):  # full re-orthogonalisation, twice ("twice is enough")
            for qi in Q:
                w = w - (w * qi).sum() * qi
        beta = float(w.norm())
        T = torch.diag(torch.tensor(alphas, dtype=torch.float64))
        for i, b in enumerate(betas):
            T[i, i + 1] = T[i + 1, i] = b
        evals, evecs = torch.linalg.eigh(T)
        theta, s = float(evals[-1]), evecs[:, -1]
        if k == max_steps or beta <= 1e-12 * max(abs(theta), 1e-30) or beta * abs(float(s[-1])) <= tol * theta:
            break
        betas.append(beta)
        Q.append(w / beta)
    y = sum(float(si) * qi for si, qi in zip(s, Q))
    y = (y / y.norm().clamp_min(1e-30)).detach()
    sigma = torch.tensor(max(theta, 0.0), dtype=torch.float64).sqrt().to(v.dtype).to(v.device)
    return sigma, y, k


def exact_operator_norm(fn: Callable[[torch.Tensor], torch.Tensor], in_shape) -> float:
    """||A||_2 of a small linear map from its explicit matrix (for tests and the book)."""
    n = 1
    for s in in_shape:
        n *= s
    eye = torch.eye(n, dtype=torch.float64).view(n, *in_shape)
    with torch.no_grad():
        cols = fn(eye).reshape(n, -1).T  # (out, in)
    return torch.linalg.matrix_norm(cols, ord=2).item()


class LipschitzEstimator:
    """Keeps the persistent power-iteration vectors of every linear part of every op.

    ``method`` is ``"power"`` (power iteration, as the paper via [59]) or ``"lanczos"``
    (:func:`lanczos`: ``n_iter`` is then the most Krylov steps per call, ``init_iter`` the
    most the first time, and a call stops early once its residual is below ``tol``).

    ``mode`` is ``"exact"`` (true constants for pooling, see :mod:`racl.operations`) or
    ``"paper"`` (the paper's Sec. 3.2 constants: average pooling S^-0.5 for stride S, max
    pooling 1; see :func:`racl.operations.paper_pool_constant`). ``n_iter`` iterations are run per
    call, ``init_iter`` the first time a vector is created. Every call starts from the
    vector the last call left (warm start). ``fused`` reads each estimate off the last
    iteration (:func:`power_iteration_fused`, two passes per part instead of three).
    ``batched`` lets :meth:`op_constants` iterate the parts of ops of one structure together
    (power iteration only; see there).
    """

    def __init__(self, mode: str = "exact", n_iter: int = 1, init_iter: int = 20, seed: int = 0, fused: bool = False,
                 method: str = "power", tol: float = 1e-4, restart_mix: float = 0.05, batched: bool = False):
        if mode not in ("exact", "paper"):
            raise ValueError(f"Lipschitz mode must be 'exact' or 'paper', got {mode!r}")
        if method not in ("power", "lanczos"):
            raise ValueError(f"Lipschitz method must be 'power' or 'lanczos', got {method!r}")
        self.mode, self.n_iter, self.init_iter = mode, n_iter, init_iter
        self.fused, self.batched = fused, batched
        self.method, self.tol, self.restart_mix = method, tol, restart_mix
        self.steps_taken: deque[int] = deque(maxlen=100_000)  # Lanczos steps of each part, latest calls (for benchmarks)
        self.vectors: dict[str, torch.Tensor] = {}
        self._shapes: dict[str, tuple] = {}
        # op -> its structure (class, configuration, parameter shapes): fixed for a module,
        # so computed once, not at every step (op_constants' grouping)
        self._structures: "weakref.WeakKeyDictionary[torch.nn.Module, tuple]" = weakref.WeakKeyDictionary()
        self._gen = torch.Generator().manual_seed(seed)

    def part_constant(self, key: str, part: Part, in_shape: tuple, like: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """Constant of one part and the shape of its output."""
        if self.mode == "paper" and part.paper_const is not None:
            return like.new_tensor(part.paper_const), self._out_shape(key, part, in_shape, like)
        if part.const is not None:
            c = part.const() if callable(part.const) else like.new_tensor(float(part.const))
            return c.detach().to(like), self._out_shape(key, part, in_shape, like)
        v = self.vectors.get(key)
        n_iter, fresh = self.n_iter, False
        if v is None or tuple(v.shape[1:]) != tuple(in_shape):
            v = torch.randn((1, *in_shape), generator=self._gen, dtype=torch.float32).to(like)
            v = v / v.norm()
            n_iter, fresh = self.init_iter, True
        if self.method == "lanczos":
            # warm start, mixed with a little of a fresh random direction: when the weights
            # have moved, a new top singular vector may be nearly orthogonal to the old one,
            # and the Krylov space must contain some of it to find it
            if not fresh and self.restart_mix > 0:
                r = torch.randn(v.shape, generator=self._gen, dtype=torch.float32).to(like)
                v = v.to(like) + self.restart_mix * r / r.norm()
            sigma, v, k = lanczos(part.fn, v.to(like), max(n_iter, 1), self.tol)
            self.steps_taken.append(k)
        elif self.fused:
            sigma, v = power_iteration_fused(part.fn, v.to(like), n_iter)
        else:
            sigma, v = power_iteration(part.fn, v.to(like), n_iter)
        self.vectors[key] = v
        return sigma, self._out_shape(key, part, in_shape, like)

    def _out_shape(self, key, part, in_shape, like):
        if key not in self._shapes:
            with torch.no_grad():
                self._shapes[key] = tuple(part.fn(like.new_zeros((1, *in_shape))).shape[1:])
        return self._shapes[key]

    def op_constant(self, key: str, op: LipschitzOp, in_shape, like: torch.Tensor | None = None) -> torch.Tensor:
        """Upper bound on the Lipschitz constant of ``op`` acting on inputs of ``in_shape``
        (C, H, W): the product of its parts' constants. ``like`` sets dtype and device
        (default: those of the op's first parameter or buffer, else float32 on the CPU)."""
        if like is None:
            like = next(iter(op.parameters()), None)
            if like is None:
                like = next(iter(op.buffers()), torch.zeros(()))
        like = torch.zeros((), dtype=like.dtype, device=like.device)
        total = like.new_ones(())
        shape = tuple(in_shape)
        for i, part in enumerate(op.lipschitz_parts()):
            c, shape = self.part_constant(f"{key}/{i}", part, shape, like)
            total = total * c
        return total

    def op_constants(self, items: list, like: torch.Tensor) -> list[torch.Tensor]:
        """:meth:`op_constant` of every ``(key, op, in_shape)`` of ``items``, in order.

        With ``batched`` (and power iteration), the linear parts that ops of one structure
        (the same class, configuration, parameter shapes and input shape; every
        ``sep_conv_3x3`` of the stride-1 edges of a cell, say) have at one place of their
        chain are iterated together: :func:`torch.func.vmap` over their stacked weights
        turns each convolution of the part into one grouped convolution for the whole group,
        so the estimator's kernel launches no longer grow with the number of edges. Each
        vector, fresh vector drawn in the same order, iteration count and update is that of
        :meth:`op_constant` (the same arithmetic; the grouped convolution may sum in another
        order, tests/test_lipschitz.py). Parts with a known constant, FactorizedReduce (its
        layout-dependent path) and Lanczos take the per-op path."""
        if not (self.batched and self.method == "power"):
            return [self.op_constant(key, op, shape, like) for key, op, shape in items]
        like = torch.zeros((), dtype=like.dtype, device=like.device)
        consts: dict[str, torch.Tensor] = {}  # part key -> constant
        groups: dict[tuple, list] = {}
        n_parts = []
        for key, op, in_shape in items:
            shape = tuple(in_shape)
            parts = op.lipschitz_parts()
            n_parts.append(len(parts))
            structure = self._structures.get(op)
            if structure is None:
                structure = self._structures[op] = (type(op), repr(op), tuple(
                    (k, tuple(t.shape), t.dtype) for k, t in _state(op).items()))
            for i, part in enumerate(parts):
                pkey = f"{key}/{i}"
                linear = part.const is None and not (self.mode == "paper" and part.paper_const is not None)
                if not linear or isinstance(op, FactorizedReduce):
                    consts[pkey], shape = self.part_constant(pkey, part, shape, like)
                    continue
                v = self.vectors.get(pkey)
                n_iter = self.n_iter
                if v is None or tuple(v.shape[1:]) != shape:  # drawn in op_constant's order
                    v = torch.randn((1, *shape), generator=self._gen, dtype=torch.float32).to(like)
                    self.vectors[pkey] = v / v.norm()
                    n_iter = self.init_iter
                groups.setdefault((structure, i, shape, n_iter), []).append((pkey, op))
                shape = self._out_shape(pkey, part, shape, like)
        for (_, i, _, n_iter), members in groups.items():
            sigmas = self._batched_power_iteration([op for _, op in members], i, [k for k, _ in members], n_iter, like)
            consts.update(zip([k for k, _ in members], sigmas))
        out = []
        for (key, _, _), n in zip(items, n_parts):
            total = like.new_ones(())
            for i in range(n):
                total = total * consts[f"{key}/{i}"]
            out.append(total)
        return out

    def _batched_power_iteration(self, ops: list, i: int, keys: list, n_iter: int, like) -> list[torch.Tensor]:
        """Part ``i`` of every op of ``ops`` (one structure), power-iterated together from
        the vectors of ``keys``: the steps of :func:`power_iteration` (or
        :func:`power_iteration_fused`) for each, under one :func:`torch.func.vmap`."""
        from torch.func import functional_call, vjp, vmap

        template = ops[0]
        call = _PartCall(template, i)
        states = [_state(op) for op in ops]
        state = {"op." + k: torch.stack([s[k].detach() for s in states]) for k in states[0]}
        flags = [(m, m.explicit) for m in template.modules() if isinstance(m, DepthwiseConv2d)]
        for m, _ in flags:  # the plain convolution: an autograd.Function has no vmap rule
            m.explicit = False
        try:
            def f(st, x):
                return functional_call(call, st, (x,))

            def step(st, x):
                u, back = vjp(lambda y: f(st, y), x)
                return u, back(u)[0]

            V = torch.stack([self.vectors[k].to(like) for k in keys])
            n = len(keys)
            sigma = None
            with torch.enable_grad():
                for _ in range(n_iter):
                    u, g = vmap(step)(state, V)
                    g_norm = g.reshape(n, -1).norm(dim=1)
                    if self.fused:
                        sigma = (g_norm / u.reshape(n, -1).norm(dim=1).clamp_min(1e-30)).detach()
                    V = (g / g_norm.clamp_min(1e-30).view(-1, *[1] * (g.dim() - 1))).detach()
            if sigma is None:
                with torch.no_grad():
                    sigma = vmap(f)(state, V).reshape(n, -1).norm(dim=1)
        finally:
            for m, flag in flags:
                m.explicit = flag
        for k, v in zip(keys, V):
            self.vectors[k] = v
        return list(sigma.unbind())

    def state_dict(self) -> dict:
        return {"mode": self.mode, "vectors": {k: v.cpu() for k, v in self.vectors.items()},
                "generator": self._gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        if state.get("mode") != self.mode:
            raise ValueError(f"checkpoint Lipschitz mode {state.get('mode')!r} differs from {self.mode!r}")
        self.vectors = dict(state["vectors"])
        self._gen.set_state(state["generator"])


class _PartCall(torch.nn.Module):
    """Part ``i`` of ``op``'s Lipschitz chain as a module call, for torch.func.functional_call."""

    def __init__(self, op: LipschitzOp, i: int):
        super().__init__()
        self.op, self.i = op, i

    def forward(self, x):
        return self.op.lipschitz_parts()[self.i].fn(x)


def _state(op: torch.nn.Module) -> dict:
    return {**dict(op.named_parameters()), **dict(op.named_buffers())}


def empirical_ratio(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """||f(x) - f(y)|| / ||x - y|| per pair (batch dimension first)."""
    with torch.no_grad():
        num = (f(x) - f(y)).flatten(1).norm(dim=1)
        den = (x - y).flatten(1).norm(dim=1)
    return num / den


def jacobian_norm(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, n_iter: int = 20, seed: int = 0) -> torch.Tensor:
    """Spectral norm of the input Jacobian of ``f`` at each example of ``x``: the local
    Lipschitz constant there, a *lower* bound on the global one. ``f`` must act on each
    example separately (a model in inference mode).

    Power iteration on J^T J with reverse mode only: one forward pass, then per iteration
    J v by the double-backward trick (J v = d/dw <J^T w, v>, on a graph built once) and
    J^T u by an ordinary backward pass. (Forward-mode ``torch.func.jvp`` through
    convolutions is far slower on the CPU.)"""
    g = torch.Generator().manual_seed(seed)
    shape = (-1, *[1] * (x.dim() - 1))
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        out = f(x)
        w = torch.zeros_like(out, requires_grad=True)
        (jt_w,) = torch.autograd.grad(out, x, w, create_graph=True)  # J^T w, linear in w
        v = torch.randn(x.shape, generator=g, dtype=x.dtype).to(x.device)
        v = v / v.flatten(1).norm(dim=1).view(shape)
        u = None
        for _ in range(n_iter):
            (u,) = torch.autograd.grad(jt_w, w, v, retain_graph=True)  # J v
            (back,) = torch.autograd.grad(out, x, u, retain_graph=True)  # J^T J v
            v = back / back.flatten(1).norm(dim=1).clamp_min(1e-30).view(shape)
        (u,) = torch.autograd.grad(jt_w, w, v, retain_graph=False)
    return u.flatten(1).norm(dim=1).detach()
