"""Exact absorbing Markov chain arithmetic for the Markov removal effect. Pure integers/Fractions.

The chain is given as observed transition counts between transient states (ints) and into one
absorbing ``conversion`` state; departures to the other absorbing state (null, lost) are only
counted in ``departures``. For every state r we need P(start reaches conversion) with r sent to
null. Solving the chain once per state would cost n solves; instead, by the strong Markov property,

    P(conversion without r) = x(start) - h(r) * x(r)

where x(s) is P(conversion from s) and h(r) = N(start, r) / N(r, r) is the probability of ever
visiting r (N is the fundamental matrix, expected visits). Once a walk leaves a strongly connected
component it never returns, so N(r, r) only needs the inverse of r's own component: components are
solved one by one (Tarjan order), each exactly by fraction-free Gauss-Jordan elimination over
integers (Bareiss). Partner journeys rarely loop, so components are mostly single states and the
whole computation is close to linear; a component of k states costs O(k^3) integer operations.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from fractions import Fraction
from itertools import accumulate
from random import Random

Counts = Mapping[int, Mapping[int, int]]


def removal_probabilities(
    counts: Counts,
    departures: Mapping[int, int],
    start: int,
    conversion: int,
    *,
    max_exact_states: int,
    walks: int,
    seed: int,
) -> tuple[Fraction, dict[int, Fraction], bool]:
    """P(start reaches conversion), and for every other state the same with that state removed;
    the flag says whether they are exact.

    ``departures[s]`` counts every transition out of ``s`` (to transient states, conversion or
    null); every state with a count must appear in ``departures``. When a component has more than
    ``max_exact_states`` states the exact solve would take too long (cubic in its size), and the
    probabilities are estimated from ``walks`` simulated walks instead (:func:`simulate`).
    """
    if start not in departures:
        return Fraction(0), {}, True
    states = sorted(departures)
    succ = {s: sorted(t for t in counts.get(s, {}) if t != conversion) for s in states}
    components = _components(states, succ)
    if max(map(len, components)) > max_exact_states:
        base, without = simulate(counts, departures, start, conversion, walks=walks, seed=seed)
        return base, without, False
    x: dict[int, Fraction] = {}
    solved = []
    for component in components:  # every component after all those it reaches
        members = {s: i for i, s in enumerate(component)}
        matrix = [
            [(departures[s] if s == t else 0) - counts.get(s, {}).get(t, 0) for t in component]
            for s in component
        ]
        det, adj = _adjugate(matrix)
        # dep(s) x(s) - sum over t in component of c(s,t) x(t) = c(s,conv) + exits to solved x.
        rhs = [
            sum(
                (c * x[t] for t, c in counts.get(s, {}).items() if t not in members and t in x),
                Fraction(counts.get(s, {}).get(conversion, 0)),
            )
            for s in component
        ]
        for i, s in enumerate(component):
            x[s] = sum((a * r for a, r in zip(adj[i], rhs, strict=True)), Fraction(0)) / det
        solved.append((component, members, det, adj))

    # Expected visits from start, y = e_start N, component by component in forward order:
    # y_C (I - Q_CC) = inflow_C, and (I - Q_CC)^-1 = M^-1 D with M = D - C_CC = adj / det.
    inflow: dict[int, Fraction] = {start: Fraction(1)}
    visits: dict[int, Fraction] = {}
    diagonal: dict[int, Fraction] = {}
    for component, members, det, adj in reversed(solved):
        g = [inflow.get(s, Fraction(0)) for s in component]
        for j, t in enumerate(component):
            scale = Fraction(departures[t], det)
            visits[t] = scale * sum((g[i] * adj[i][j] for i in range(len(component))), Fraction(0))
            diagonal[t] = scale * adj[j][j]
        for t in component:
            for u, c in counts.get(t, {}).items():
                if u != conversion and u not in members:
                    inflow[u] = inflow.get(u, Fraction(0)) + visits[t] * c / departures[t]
    base = x[start]
    return base, {r: base - visits[r] / diagonal[r] * x[r] for r in states if r != start}, True


def simulate(
    counts: Counts,
    departures: Mapping[int, int],
    start: int,
    conversion: int,
    *,
    walks: int,
    seed: int,
) -> tuple[Fraction, dict[int, Fraction]]:
    """The same probabilities estimated by walking the chain ``walks`` times from ``start``.

    Deterministic: a seeded ``random.Random`` draws only integers (``randrange`` over the
    observed counts, no floats), so the same input, walks and seed give the same Fractions on
    every platform. P(conversion without r) is the share of walks that converted and never
    visited r. The standard error is about sqrt(p (1 - p) / walks).
    """
    rng = Random(seed)
    table: dict[int, tuple[list[int], list[int]]] = {}
    for s in departures:
        pairs = sorted(counts.get(s, {}).items())
        # A draw in [last cumulative count, departures[s]) is the null state.
        table[s] = ([t for t, _ in pairs], list(accumulate(c for _, c in pairs)))
    converted = 0
    through: dict[int, int] = dict.fromkeys(departures, 0)
    for _ in range(walks):
        state = start
        visited: set[int] = set()
        while True:
            targets, cumulative = table[state]
            i = bisect_right(cumulative, rng.randrange(departures[state]))
            if i == len(targets):
                break  # null: lost
            state = targets[i]
            if state == conversion:
                converted += 1
                for v in visited:
                    through[v] += 1
                break
            visited.add(state)
    base = Fraction(converted, walks)
    return base, {r: base - Fraction(through[r], walks) for r in departures if r != start}


def _adjugate(matrix: list[list[int]]) -> tuple[int, list[list[int]]]:
    """det(M) and adj(M) = det(M) * M^-1 by fraction-free Gauss-Jordan elimination.

    Every division is exact (Bareiss), so entries stay integers no larger than minors of M. M here
    is D - C for a component that can be left: a nonsingular M-matrix, whose leading principal
    minors (the pivots) are all positive, so no row exchange is ever needed.
    """
    n = len(matrix)
    rows = [row[:] + [int(i == j) for j in range(n)] for i, row in enumerate(matrix)]
    previous = 1
    for k in range(n):
        pivot_row = rows[k]
        pivot = pivot_row[k]
        if pivot <= 0:
            raise ArithmeticError("transition matrix is not a nonsingular M-matrix")
        for i in range(n):
            if i != k:
                row = rows[i]
                f = row[k]
                rows[i] = [
                    (pivot * a - f * b) // previous for a, b in zip(row, pivot_row, strict=True)
                ]
        previous = pivot
    return previous, [row[n:] for row in rows]


def _components(states: list[int], succ: Mapping[int, list[int]]) -> list[list[int]]:
    """Strongly connected components (Tarjan, iterative), each one listed after every component
    it can reach."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    found: list[list[int]] = []
    for root in states:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(succ[root]))]
        while work:
            node, targets = work[-1]
            for nxt in targets:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(succ[nxt])))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    found.append(sorted(component))
    return found
