"""What each command does, as plain functions over plain values; the CLI only parses and renders.

Three layers, one folder each:

- `core/`: the plan/apply core. `steps` (typed steps, plans, outcomes), `apply` (one commit point),
  `session` and `connect` (sign-in and Graph), the commands' plans (`provision`, `rotate`,
  `deprovision`), the `.env` view (`envstate`), the secret rules (`secrets`), and `runner`
  (lock -> read -> plan -> apply).
- `checks/`: what reads and reports without changing anything: `status`, `doctor`, `findings`. They use
  the core's readers and runner; the core never imports them.
- `unattended/`: what makes a run safe to leave alone: the installation `record`, the `renewal` flow
  (record -> core -> audit, webhooks, metrics), `schedule` and `jobfiles`, deploy `hooks`, the `audit`
  log, webhooks (`notify`), `prometheus`, `runlog`, `toolfiles`. The core reaches into it at two
  places only: a plan runs the deploy `hooks` as one of its steps, and the runner finds an
  installation's `record` (the settings layered under the options given, forgotten on deprovision).
"""
