"""The Celery app: configuration from Django settings (CELERY_*), tasks found in each app's tasks.py."""

import logging
import os
from typing import Any

from celery import Celery, Task
from kombu.exceptions import OperationalError as BrokerUnavailable
from redis.exceptions import RedisError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

logger = logging.getLogger("tokenledger.tasks")


class BrokerTolerantTask(Task):
    """A task whose queuing never fails the caller because the broker is down.

    Tasks are queued after a commit (`transaction.on_commit`), when the work they follow is already saved: an
    exception there would answer a 500 for a request that succeeded. The failure is logged instead, and the
    scheduled sweeps find what was not queued (Stripe events to process, auto-recharges, alerts to check).
    """

    def apply_async(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().apply_async(*args, **kwargs)
        except (BrokerUnavailable, RedisError, ConnectionError) as exc:
            logger.error("broker unavailable: task %s not queued (%s: %s)", self.name, type(exc).__name__, exc)
            return None


app = Celery("tokenledger", task_cls=BrokerTolerantTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
