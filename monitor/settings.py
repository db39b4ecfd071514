"""Settings of the monitor and its drift alarm, read once from ``STREAMRANK_`` variables.

The worker reads them when it starts (the monitor runs beside its learner); a bad value
fails with the variable's name, as every other setting does.

>>> s = MonitorSettings(_env_file=None, alarm_max_drop="0.3")
>>> s.alarm_max_drop, s.alarm_enabled, s.monitor_window
(0.3, True, 1000)
>>> MonitorSettings(_env_file=None, alarm_max_drop=2)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for MonitorSettings
alarm_max_drop
...
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["MonitorSettings"]


class MonitorSettings(BaseSettings):
    """The monitor's knobs (``STREAMRANK_MONITOR_*``, ``STREAMRANK_ALARM_*``)."""

    model_config = SettingsConfigDict(env_prefix="STREAMRANK_", extra="ignore")

    #: Seconds between two points of the time series.
    monitor_interval_s: float = Field(default=1.0, gt=0)
    #: Labelled lists (and served lists per arm) the quality figures are computed over.
    monitor_window: int = Field(default=1000, ge=10)
    #: Points kept in Redis (7200 at one a second: two hours).
    monitor_keep_points: int = Field(default=7200, ge=10)
    #: Item values in each PSI reference window (and in its recent window).
    monitor_psi_reference: int = Field(default=5000, ge=100)
    #: Pin serving to the last good snapshot when the alarm fires (false: only record it).
    alarm_enabled: bool = True
    #: Relative drop of the learner's windowed MRR lift over upstream below its reference
    #: that breaches.
    alarm_max_drop: float = Field(default=0.3, gt=0, lt=1)
    #: Lists the window must hold before the alarm decides anything.
    alarm_min_lists: int = Field(default=300, ge=1)
    #: Consecutive breached points that raise the alarm.
    alarm_confirm: int = Field(default=5, ge=1)
    #: Least seconds between two versions marked good.
    alarm_good_every_s: float = Field(default=10.0, gt=0)
    #: Good versions kept in Redis beyond STREAMRANK_SNAPSHOT_KEEP.
    alarm_keep_good: int = Field(default=5, ge=1)
