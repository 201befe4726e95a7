"""Redelivered and replayed events change nothing."""

from __future__ import annotations

from datetime import timedelta

from crm_contracts import contacts as ct
from crm_contracts import interactions as it
from tests.integration.contacts.conftest import T0, Service, purchase, raw_event


async def test_a_replayed_batch_adds_no_timeline_entry_and_publishes_no_resolved_event(
    service: Service,
) -> None:
    batch = [
        raw_event("signup", time=T0),
        purchase(time=T0 + timedelta(hours=1)),
        purchase(time=T0 + timedelta(hours=2)),
    ]
    await service.publish(*batch, key="ada")
    await service.wait_applied(*(e.id for e in batch))
    contact = await service.wait_contact(email="ada@example.com")

    sentinel = raw_event(time=T0 + timedelta(hours=3))
    await service.publish(*batch, sentinel, key="ada")  # the same records again, then one new
    await service.wait_applied(sentinel.id)
    resolved = await service.resolved_events(
        lambda es: any(e.causationid == sentinel.id for e in es)
    )
    # The relay publishes in outbox order: what the replay caused would precede these.
    changes = await service.contact_events(lambda es: len(es) >= 5)

    assert [e.causationid for e in resolved] == [*(e.id for e in batch), sentinel.id]
    assert len(await service.timeline(contact["id"])) == 4
    assert len(await service.fetch("SELECT id FROM contacts")) == 1
    stages = [e.data_as(it.InteractionResolved).stage for e in resolved]
    assert stages[-1] == ct.LifecycleStage.REPEAT_CUSTOMER
    assert [e.type for e in changes] == [
        ct.CONTACT_CREATED,
        ct.CONTACT_IDENTITY_LINKED,
        ct.CONTACT_LIFECYCLE_CHANGED,
        ct.CONTACT_LIFECYCLE_CHANGED,
        ct.CONTACT_LIFECYCLE_CHANGED,
    ]
