# Gunicorn reads this file (`gunicorn -c api-service/gunicorn.conf.py`); the settings live in
# the package so the installed `analytics-api serve` uses the same ones.
from analytics_api.gunicorn_conf import *  # noqa: F401,F403
from analytics_api.gunicorn_conf import child_exit, on_exit, on_starting, post_fork  # noqa: F401
