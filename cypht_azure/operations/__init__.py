"""What each command does, as plain functions over plain values; the CLI only parses and renders.

Three layers, one folder each, imported in this direction only:

- `core/`: the plan/apply core. `steps` (typed steps, plans, outcomes), `apply` (one commit point),
  `session` (sign-in and Graph), the commands' plans (`provision`, `rotate`, `deprovision`), the
  `.env` view (`envstate`), the secret rules (`secrets`), and `runner` (lock -> read -> plan -> apply).
- `checks/`: what reads and reports without changing anything: `status`, `doctor`, `findings`.
- `unattended/`: what a scheduled run adds around the core: recorded settings, `schedule`, deploy
  `hooks`, the `audit` log, webhooks (`notify`), `prometheus` metrics, `runlog`.
"""
