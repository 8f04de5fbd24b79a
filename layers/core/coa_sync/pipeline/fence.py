"""Every action is fenced by its run.

An action message names the run that planned it and the Pleo company (or other target) it was
planned for (models.ActionMessage, Tenant.destination). The writer applies it only while both still hold:

- its run is the tenant's live run: the run the tenant's lock names (coa_sync.pipeline.runs),
  read once per tenant per writer batch and renewed right then, so it cannot be taken over
  while the batch applies (a batch lasts far less than the lock's TTL);
- the tenant's company is the one it was planned for.

Otherwise it is settled as **superseded**: counted for its run and shown, never applied, never
dead-lettered. A new run of a tenant takes the lock, so whatever an older run left queued (an
interrupted sync, a late duplicate, a replayed manifest's actions) is superseded when it is
delivered, and lands neither after the newer run's actions nor in another company. A message
that names no company or seq (queued before actions were fenced) cannot be fenced, and is
superseded too.
"""

from __future__ import annotations

from coa_sync.models import ActionMessage


def superseded_because(message: ActionMessage, live_run: str | None, company_id: str) -> str | None:
    """Why the message must not be applied now, or None if it may."""
    if not message.fenceable:
        return "queued before actions were fenced (no company or seq): cannot tell whether it still holds"
    if message.run_id != live_run:
        return f"run {message.run_id} is no longer the tenant's live run ({live_run or 'none'} is)"
    if message.company_id != company_id:
        return f"planned for {_named(message.company_id)}; the tenant is now {_named(company_id)}"
    return None


def _named(destination: str) -> str:
    """A Pleo company by its id; another target as Tenant.destination spells it (kind:url:where)."""
    return destination if ":" in destination else f"company {destination}"
