"""The listening side: subscriptions to a place and the notifications they receive.

Flask-free and click-free: the web views, the staff scripts and the worker call these modules.
``schema`` (tables), ``store`` (write transactions that leave the data revision alone),
``cells`` (a point kept only as a ~100 m cell), ``subscriptions`` (subscribe, confirm,
unsubscribe, forget, counts), ``outbox`` (events recorded in the staff write's transaction and
fanned out to deliveries), ``deliveries`` (claiming, marking, retrying), ``messages`` (e-mail
and webhook bodies in Russian and English), ``smtp`` and ``webhooks`` (the channels),
``ratelimit``, ``queue`` (the huey instance) and ``worker`` (what the queue runs).
"""
