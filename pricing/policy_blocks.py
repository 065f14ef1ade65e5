"""How :func:`pricing.policy.solve_surfaces` runs: padded blocks of rows, one thread per core.

Each block is one compiled program (:func:`_solve`): the backward recursion as one
``lax.scan`` over periods, two matrix products per period (the pmf against a Toeplitz window
of the next period's values, and against one shared ``min(d, n)`` matrix for the expected
sales), then the best value over the ladder and the highest ladder index reaching it.

Small blocks (32 rows on a CPU) keep a period's working set (``[rows, K, N+1]``) in a
core's cache and truncate demand close to their own rows' rates, and the blocks run on one
thread per core: XLA releases the interpreter while a block runs, and
its intra-op parallelism alone kept the second core of a 2-core machine mostly idle at this
block size. A program is compiled once per block shape and truncation (a call uses at most
:data:`pricing.policy.MAX_TRUNCATIONS` truncations); the first blocks of programs not
compiled yet run first, one per program and side by side, so that two threads never compile
the same program.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["BlockOutputs", "default_device", "ladder_index_dtype", "solve_blocks"]


def ladder_index_dtype(k_len: int) -> np.dtype[Any]:
    """The smallest signed integer type that holds a ladder position ``0..k_len-1``.

    The index surface is as large as the price surface ([S, N+1, T]: 73 M cells for 10,000
    SKUs x 100 units x 72 periods); int8 for ladders of up to 127 prices writes a quarter of
    the bytes of int32.
    """
    for candidate in (np.int8, np.int16):
        if k_len - 1 <= np.iinfo(candidate).max:
            return np.dtype(candidate)
    return np.dtype(np.int32)


def solve_blocks(
    rates: np.ndarray,
    prices: np.ndarray,
    cost: np.ndarray,
    salvage: np.ndarray,
    order: np.ndarray | None,
    blocks: list[np.ndarray],
    block_d: list[int],
    *,
    n_max: int,
    workers: int | None,
) -> BlockOutputs:
    """Solve every block of rows and gather the rows into host arrays.

    Args:
        rates: ``[S, T, K]`` demand per period, each ladder ascending.
        prices: ``[S, K]`` ladders, ascending.
        cost, salvage: ``[S]``.
        order: ``[S, K]`` the caller's ladder position of each sorted price, or ``None``
            when the ladders came sorted.
        blocks: row indices of each block (all of one size but the last).
        block_d: each block's demand truncation.
        n_max: the largest inventory.
        workers: threads (``None``: one per usable core on a CPU device, else 1).

    Returns:
        :class:`BlockOutputs` with ``price``, ``value`` and ``index`` for every row.
    """
    s, t_len, k_len = rates.shape
    device = default_device()
    dtype = np.dtype(jnp.result_type(float))
    out = BlockOutputs.empty(s, n_max, t_len, k_len, dtype)
    problem = _BlockProblem(rates, prices, cost, salvage, order, blocks[0].size, n_max, device)

    def solve_block(i: int) -> None:
        out.store(blocks[i], *problem.solve(blocks[i], block_d[i]))

    # The first block of each program not compiled yet goes first, those of different
    # programs side by side (XLA compiles with the interpreter released, on one core each),
    # so that two threads never compile the same program.
    first: dict[tuple[Any, ...], int] = {}
    pending = []
    for i in range(len(blocks)):
        key = (blocks[0].size, t_len, k_len, n_max, block_d[i], dtype, device)
        with _COMPILED_LOCK:
            known = key in _COMPILED
        if known or key in first:
            pending.append(i)
        else:
            first[key] = i
    n_workers = _worker_count(device) if workers is None else max(1, int(workers))
    _run_all(solve_block, list(first.values()), n_workers)
    with _COMPILED_LOCK:
        _COMPILED.update(first)
    _run_all(solve_block, pending, n_workers)
    return out


def _run_all(solve_block: Callable[[int], None], which: list[int], n_workers: int) -> None:
    """``solve_block(i)`` for each ``i`` in ``which``, on up to ``n_workers`` threads."""
    if n_workers == 1 or len(which) <= 1:
        for i in which:
            solve_block(i)
        return
    with ThreadPoolExecutor(max_workers=min(n_workers, len(which))) as pool:
        for done in [pool.submit(solve_block, i) for i in which]:
            done.result()


_COMPILED: set[tuple[Any, ...]] = set()
_COMPILED_LOCK = threading.Lock()


def default_device() -> jax.Device:
    """The device ``jax.default_device`` names in this thread (worker threads do not inherit it)."""
    chosen = getattr(jax.config, "jax_default_device", None)
    if isinstance(chosen, str):
        return jax.devices(chosen)[0]
    if isinstance(chosen, jax.Device):
        return chosen
    return jax.devices()[0]


def _worker_count(device: jax.Device) -> int:
    """One thread per usable core on a CPU device; an accelerator queues its blocks itself."""
    if device.platform != "cpu":
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class _BlockProblem(NamedTuple):
    """The sorted problem, cut into padded blocks of rows for :func:`_solve`."""

    rates: np.ndarray  # [S, T, K], ladders ascending
    prices: np.ndarray  # [S, K], ascending
    cost: np.ndarray
    salvage: np.ndarray
    order: np.ndarray | None  # [S, K] caller's ladder position of each sorted price, or None
    block: int
    n_max: int
    device: jax.Device

    def solve(self, take: np.ndarray, d_max: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``price``, ``value`` and ``index`` (caller's ladder order) of the rows ``take``."""
        m = take.size
        dtype = np.dtype(jnp.result_type(float))
        rates = np.zeros((self.block,) + self.rates.shape[1:], dtype)
        rates[:m] = self.rates[take]
        prices = np.empty((self.block, self.prices.shape[1]), dtype)
        prices[:m] = self.prices[take]
        prices[m:] = prices[m - 1]  # padding rows: no demand, any positive ladder
        cost = np.zeros(self.block, dtype)
        cost[:m] = self.cost[take]
        salvage = np.zeros(self.block, dtype)
        salvage[:m] = self.salvage[take]
        args = jax.device_put((rates, prices, cost, salvage), self.device)
        # jit's cache key holds the thread's jax.default_device setting, and worker threads
        # do not inherit the caller's: without the same setting in every thread, a caller
        # inside `with jax.default_device(...)` (the re-fit) had each program compiled again
        # by the workers, by both at once on two cores.
        with jax.default_device(self.device):
            price, value, index = _solve(*args, n_max=self.n_max, d_max=d_max)
        index_np = np.asarray(index)[:m]
        if self.order is not None:
            index_np = np.take_along_axis(
                self.order[take], index_np.reshape(m, -1), axis=1
            ).reshape(index_np.shape)
        return np.asarray(price)[:m], np.asarray(value)[:m], index_np


@dataclass(frozen=True)
class BlockOutputs:
    """Host arrays the blocks write their rows into (each row is written by one block)."""

    price: np.ndarray
    value: np.ndarray
    index: np.ndarray

    @classmethod
    def empty(cls, s: int, n_max: int, t_len: int, k_len: int, dtype: Any) -> BlockOutputs:
        return cls(
            price=np.empty((s, n_max + 1, t_len), dtype),
            value=np.empty((s, n_max + 1, t_len + 1), dtype),
            index=np.empty((s, n_max + 1, t_len), ladder_index_dtype(k_len)),
        )

    def store(
        self, take: np.ndarray, price: np.ndarray, value: np.ndarray, index: np.ndarray
    ) -> None:
        self.price[take] = price
        self.value[take] = value
        self.index[take] = index


@partial(jax.jit, static_argnames=("n_max", "d_max"))
def _solve(
    rates: jax.Array,
    prices: jax.Array,
    cost: jax.Array,
    salvage: jax.Array,
    *,
    n_max: int,
    d_max: int,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One block of rows (ladders ascending): ``price``, ``value`` and ladder ``index``."""
    s, _, k_len = rates.shape
    dtype = rates.dtype
    n_levels = n_max + 1
    n = jnp.arange(n_levels)
    d = jnp.arange(d_max + 1)
    d_float = d.astype(dtype)
    # log d! from float64 (float32 lgamma(1) is 5e-7, not 0: a zero rate would leak mass).
    log_fact = jnp.asarray([math.lgamma(i + 1.0) for i in range(d_max + 1)], dtype)
    # Units sold when d are demanded with n in stock, min(d, n), for n ≤ d_max: beyond that
    # min(d, n) = d and the expected sales no longer depend on n. [D+1, min(N, D)+1].
    n_sold = min(n_max, d_max) + 1
    sold = jnp.minimum(d[:, None], n[None, :n_sold]).astype(dtype)
    margin = prices - cost[:, None]  # [S, K]
    k_index = jnp.arange(k_len, dtype=jnp.int32)
    index_dtype = ladder_index_dtype(k_len)

    def step(v_next: jax.Array, lam: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        # log P(D = d) = d log λ − λ − log d!, the log taken once per (row, price), not per d;
        # d log λ = 0 at d = 0, so a zero rate puts all its mass on d = 0.
        log_rate = jnp.where(d == 0, 0.0, d_float * jnp.log(lam)[..., None])
        pmf = jnp.exp(log_rate - lam[..., None] - log_fact)  # [S, K, D+1]
        if d_max >= n_max:
            # Truncated at the stock: lump P(D ≥ d_max) on d_max so min(D, n) stays exact.
            head = jnp.sum(pmf[..., :-1], axis=-1)
            pmf = pmf.at[..., -1].set(jnp.clip(1.0 - head, 0.0, 1.0))
        # Otherwise the mass beyond d_max is below ``tail`` and is left out: 1 − Σ head would
        # be float32 rounding (~1e-7) placed d_max units out, a bias of ~1e-4 on calm rows.
        # Toeplitz window V(n − d) (zero for d ≥ n: V(0) = 0) from D+1 shifted slices, one
        # copy; a gather with an index window cost more (it also transposed its result).
        v_pad = jnp.pad(v_next, ((0, 0), (d_max, 0)))
        window = jnp.stack(
            [v_pad[:, d_max - j : d_max - j + n_levels] for j in range(d_max + 1)], axis=1
        )  # [S, D+1, N+1]
        cont = jnp.einsum("skd,sdn->skn", pmf, window)
        sales = jnp.einsum("skd,dn->skn", pmf, sold)
        if n_levels > n_sold:
            flat = jnp.broadcast_to(sales[..., -1:], (s, k_len, n_levels - n_sold))
            sales = jnp.concatenate([sales, flat], axis=-1)
        q = cont + margin[..., None] * sales  # [S, K, N+1]
        v = jnp.max(q, axis=1)
        # Ties go to the higher price (ladders are sorted ascending). A masked max instead of
        # argmax: XLA's CPU argmax is a variadic reduction that does not vectorise and cost
        # more than the two matrix products together.
        best = jnp.max(jnp.where(q == v[:, None, :], k_index[None, :, None], 0), axis=1)
        return v, (v, best.astype(index_dtype))

    v_end = salvage[:, None] * n.astype(dtype)[None, :]
    rates_rev = jnp.moveaxis(rates, 1, 0)[::-1]  # [T, S, K], last period first
    _, (values_rev, best_rev) = jax.lax.scan(step, v_end, rates_rev)
    values = jnp.concatenate([values_rev[::-1], v_end[None]], axis=0)  # [T+1, S, N+1]
    best = best_rev[::-1]  # [T, S, N+1]
    # n = 0 has no sale: show the n = 1 price.
    if n_levels > 1:
        best = best.at[:, :, 0].set(best[:, :, 1])
    index = jnp.transpose(best, (1, 2, 0))  # [S, N+1, T]
    price = jnp.take_along_axis(prices[:, None, :], index.reshape(s, 1, -1), axis=2).reshape(
        index.shape
    )
    return price, jnp.transpose(values, (1, 2, 0)), index
