"""The unattended side: recorded settings, schedule, deploy hooks, audit log, webhooks, metrics."""
