# SPDX-License-Identifier: MIT
"""
Seeded, deterministic fault injection for reliability tests.
"""

from __future__ import annotations

import random

import attrs


__all__ = ["FaultConfig", "FaultDecision", "FaultInjector"]


def _rate(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be between 0 and 1, got {value!r}")


@attrs.frozen(kw_only=True)
class FaultConfig:
    """
    Which faults to inject into Twilio API requests (admin endpoints are never faulted).

    Each request draws the same number of random values from one ``random.Random(seed)``,
    so a given sequence of requests sees the same faults on every run.

    Attributes:
        seed: Seed of the random generator.
        error_rate: Share of requests answered 500 or 503 *before* being processed.
        error_statuses: The statuses to choose from for injected errors.
        latency_rate: Share of requests delayed by ``latency`` seconds.
        latency: Added delay in seconds.
        drop_rate: Share of requests that are processed (a send is stored) but whose
            connection is then closed without a response.
    """

    seed: int = 0
    error_rate: float = attrs.field(default=0.0, validator=_rate)
    error_statuses: tuple[int, ...] = (500, 503)
    latency_rate: float = attrs.field(default=0.0, validator=_rate)
    latency: float = 0.0
    drop_rate: float = attrs.field(default=0.0, validator=_rate)


@attrs.frozen
class FaultDecision:
    """
    The faults chosen for one request.

    Attributes:
        error_status: Status to answer instead of processing, or ``None``.
        delay: Seconds to wait before processing.
        drop: Whether to close the connection after processing.
    """

    error_status: int | None
    delay: float
    drop: bool


_NO_FAULT = FaultDecision(None, 0.0, drop=False)


@attrs.define
class FaultInjector:
    """
    Draws a :class:`FaultDecision` per request.

    Args:
        config: The fault configuration; ``None`` disables faults.
    """

    config: FaultConfig | None
    _rng: random.Random = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Restart the random sequence from the seed."""
        self._rng = random.Random(self.config.seed if self.config else 0)

    def decide(self) -> FaultDecision:
        """
        Choose the faults for the next request.

        Returns:
            The decision; the no-fault decision when faults are disabled.
        """
        config = self.config
        if config is None:
            return _NO_FAULT
        # Always draw four values so enabling one fault never shifts the others.
        error, slow, drop, pick = (self._rng.random() for _ in range(4))
        status = None
        if error < config.error_rate and config.error_statuses:
            status = config.error_statuses[int(pick * len(config.error_statuses))]
        return FaultDecision(
            error_status=status,
            delay=config.latency if slow < config.latency_rate else 0.0,
            drop=status is None and drop < config.drop_rate,
        )
