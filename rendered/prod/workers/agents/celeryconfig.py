# Celery settings of worker pool 'agents', rendered by perfstack for environment 'prod'.
# Do not edit: change the profile. Load with CELERY_CONFIG_MODULE=celeryconfig (app.config_from_envvar).
# The broker URL, with the Redis password, comes from the Secret through the environment.
import os

broker_url = os.environ["CELERY_BROKER_URL"]

# given by workers.pools.concurrency (processes per replica)
worker_concurrency = 8

# given by prefetch_multiplier: jobs each process reserves ahead (1: a long task holds back no others)
worker_prefetch_multiplier = 1

# given by acks_late: acknowledged after the task ran, so a job whose worker dies is redelivered after the visibility timeout
task_acks_late = True

# = acks_late: a job whose process was killed goes back to the queue instead of being acked as failed
task_reject_on_worker_lost = True

# = acks_late: tasks running when the broker connection drops are cancelled (they are redelivered) rather than run twice
worker_cancel_long_running_tasks_on_connection_loss = True

# given by time_limit, in seconds (the process is killed)
task_time_limit = 180

# 90% of time_limit: the task gets SoftTimeLimitExceeded and time to clean up before the kill
task_soft_time_limit = 162

# visibility_timeout given by workers.pools.visibility_timeout (s); kombu sweeps for expired jobs every tenth of it (1 s to 60 s), every sweep scanning (throttle 1)
broker_transport_options = {'visibility_timeout': 900, 'unacked_restore_interval': 60, 'unacked_restore_throttle': 1}

# the first of workers.pools.queues
task_default_queue = 'agents'

# max_retries, retry_backoff (whole seconds, doubling per retry) and retry_backoff_max for every task (tasks opt in with autoretry_for)
task_annotations = {'*': {'max_retries': 3, 'retry_backoff': 1, 'retry_backoff_max': 600, 'retry_jitter': True}}

# given by max_tasks_per_child: a process is replaced after this many tasks (leaks stay bounded)
worker_max_tasks_per_child = 1000

# celery-exporter counts tasks from these events (alerts, dashboards)
worker_send_task_events = True

# celery-exporter counts published tasks (task-sent)
task_send_sent_event = True

# a worker started before its Redis waits for it
broker_connection_retry_on_startup = True
