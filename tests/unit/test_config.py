"""Tests of the policy values: defaults, validation and derived settings."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from revo_sdk import (
    BreakerPolicy,
    ConfigurationError,
    LimiterPolicy,
    RetryPolicy,
)


def test_config_retry_policy_has_a_budget_by_default() -> None:
    """Retries are limited to 20 % of recent requests plus 1 a second over 10 s."""
    policy = RetryPolicy()
    assert (policy.budget_ratio, policy.budget_floor, policy.budget_window) == (
        0.2,
        1.0,
        10.0,
    )
    assert policy.attempts == 4


def test_config_breaker_policy_defaults_keep_the_consecutive_mode() -> None:
    """Existing settings keep their meaning; the new ones default to off or safe."""
    policy = BreakerPolicy()
    assert policy.mode == "consecutive"
    assert policy.failure_threshold == 5
    assert policy.recovery_timeout == 30.0
    assert policy.slow_call_duration is None
    assert policy.backoff_multiplier == 1.0
    assert policy.max_half_open_time == 120.0


def test_config_limiter_policy_window_and_limit_select_window_mode() -> None:
    """Giving window= and limit= selects the strict window mode."""
    assert LimiterPolicy().mode == "token"
    assert LimiterPolicy(window=60.0, limit=30).mode == "window"
    assert LimiterPolicy(write_interval=1.0).write_interval == 1.0


@pytest.mark.parametrize(
    ("factory", "kwargs", "message"),
    [
        (RetryPolicy, {"budget_ratio": -0.1}, "budget_ratio"),
        (RetryPolicy, {"budget_window": 0.0}, "budget_window"),
        (RetryPolicy, {"budget_floor": -1.0}, "budget_floor"),
        (BreakerPolicy, {"mode": "sometimes"}, "mode"),
        (BreakerPolicy, {"window": "forever"}, "window"),
        (BreakerPolicy, {"failure_rate_threshold": 0.0}, "failure_rate_threshold"),
        (BreakerPolicy, {"failure_rate_threshold": 1.5}, "failure_rate_threshold"),
        (BreakerPolicy, {"window_size": 0}, "window_size"),
        (BreakerPolicy, {"window_duration": 0.0}, "window_duration"),
        (BreakerPolicy, {"minimum_calls": 0}, "minimum_calls"),
        (BreakerPolicy, {"slow_call_duration": 0.0}, "slow_call_duration"),
        (BreakerPolicy, {"max_half_open_time": -1.0}, "max_half_open_time"),
        (BreakerPolicy, {"backoff_multiplier": 0.5}, "backoff_multiplier"),
        (BreakerPolicy, {"max_recovery_timeout": 1.0}, "max_recovery_timeout"),
        (LimiterPolicy, {"mode": "window"}, "window"),
        (LimiterPolicy, {"mode": "bursty"}, "mode"),
        (LimiterPolicy, {"window": 0.0, "limit": 3}, "window"),
        (LimiterPolicy, {"window": 1.0, "limit": 0}, "limit"),
        (LimiterPolicy, {"write_interval": -1.0}, "write_interval"),
        (LimiterPolicy, {"spacing": (("search", 0.0),)}, "search"),
        (LimiterPolicy, {"pace_below": 2.0}, "pace_below"),
    ],
)
def test_config_rejects_invalid_values_naming_the_field(
    factory: Any, kwargs: dict[str, Any], message: str
) -> None:
    """Each invalid value raises ConfigurationError that names what is wrong."""
    with pytest.raises(ConfigurationError, match=message):
        factory(**kwargs)


def test_config_policies_are_frozen_and_derive_copies() -> None:
    """Policies cannot change in place; dataclasses.replace makes a checked copy."""
    policy = BreakerPolicy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.mode = "rate"  # type: ignore[misc]  # the point of the test
    rate = dataclasses.replace(policy, mode="rate")
    assert (policy.mode, rate.mode) == ("consecutive", "rate")
    with pytest.raises(ConfigurationError):
        dataclasses.replace(policy, minimum_calls=0)
