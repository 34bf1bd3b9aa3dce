"""Settings for the gunicorn the authorize benchmark runs: the app's own, with the benchmark's URLs on top."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.bench_urls"
