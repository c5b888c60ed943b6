"""Settings for bench/bench_api.py: the site's, plus the baseline views' URLs
(``bench/api_baseline_urls.py``)."""

from imageworks_site.settings import *  # noqa: F403

ROOT_URLCONF = "bench.api_baseline_urls"
