"""Use cases of the contacts service: one async function per event or command.

Each takes the caller's connection inside the caller's transaction (the consumer runner's for
events, the route's for commands), decides with `domain`, writes with `repository`, and adds
the events it causes to the outbox in the same transaction. The exception: an idempotent POST
(`create_contact_once`, `create_account_once`) runs in a transaction of its own, retried once
(the kit's `answer_once`). Refusals are the kit's domain errors (`crm_kit.errors`). Cursor
pages and idempotent POSTs are the kit's (`crm_kit.pages`, `crm_kit.idempotency`).

    resolution   raw interactions to contacts; merges and unmerges
    contacts     contacts by hand: create, change, delete, read, search
    identifiers  identifiers added to a contact or taken off it by hand
    lifecycle    stages set by hand, and the event of a stage change
    consent      consent statements, from interactions and from agents
    timeline     case, campaign and score events; timeline pages; the 360 view
    privacy      erasure and export
    accounts     companies
    context      settings and rules, the outbox publisher, new ids
    lookups      the contact an id names now, and its details
"""

from crm_contacts.handlers.accounts import create_account_once, get_account, list_accounts
from crm_contacts.handlers.consent import Consents, get_consent, set_consent
from crm_contacts.handlers.contacts import (
    NewContact,
    create_contact_once,
    delete_contact,
    get_contact,
    profile_of,
    search_contacts,
    update_contact,
)
from crm_contacts.handlers.context import Context
from crm_contacts.handlers.identifiers import link_identifier, unlink_identifier
from crm_contacts.handlers.lifecycle import set_stage
from crm_contacts.handlers.lookups import ContactDetails
from crm_contacts.handlers.privacy import (
    Export,
    erase_contact,
    erasure_status,
    export_contact,
    record_privacy_events,
)
from crm_contacts.handlers.resolution import merge_by_hand, resolve_interactions, unmerge
from crm_contacts.handlers.timeline import (
    Contact360,
    get_360,
    get_timeline,
    record_related_events,
)

__all__ = [
    "Consents",
    "Contact360",
    "ContactDetails",
    "Context",
    "Export",
    "NewContact",
    "create_account_once",
    "create_contact_once",
    "delete_contact",
    "erase_contact",
    "erasure_status",
    "export_contact",
    "get_360",
    "get_account",
    "get_consent",
    "get_contact",
    "get_timeline",
    "link_identifier",
    "list_accounts",
    "merge_by_hand",
    "profile_of",
    "record_privacy_events",
    "record_related_events",
    "resolve_interactions",
    "search_contacts",
    "set_consent",
    "set_stage",
    "unlink_identifier",
    "unmerge",
    "update_contact",
]
