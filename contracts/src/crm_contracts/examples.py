"""One valid, realistic data sample per event type, for tests and the generated docs."""

from datetime import UTC, datetime
from decimal import Decimal

from pydantic import BaseModel

from crm_contracts import campaigns as cm
from crm_contracts import cases as cs
from crm_contracts import contacts as ct
from crm_contracts import interactions as it
from crm_contracts import privacy as pv
from crm_contracts import scores as sc
from crm_contracts.base import Channel, Money
from crm_contracts.envelope import CloudEvent, new_event
from crm_contracts.registry import EVENT_TYPES

CONTACT_ID = "c-7f3a9e"
CASE_ID = "case-1042"
CAMPAIGN_ID = "cmp-spring-26"
ENROLMENT_ID = "enr-88"
CAUSE_EVENT_ID = "evt-0001"
EXAMPLE_TIME = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
EXAMPLE_SOURCES = {
    "interaction": "urn:channel:webshop",
    "contact": "urn:crm:contacts",
    "case": "urn:crm:cases",
    "campaign": "urn:crm:campaigns",
    "score": "urn:crm:scoring",
    "privacy": "urn:crm:privacy",
}

_OLD_SCORES = sc.Scores(
    engagement=42,
    recency=3,
    frequency=2,
    monetary=2,
    value_tier=sc.ValueTier.SILVER,
    clv=Money(amount=Decimal("480.00"), currency="EUR"),
    churn_risk=0.35,
    churn_band=sc.ChurnBand.MEDIUM,
)
_NEW_SCORES = sc.Scores(
    engagement=60,
    recency=5,
    frequency=3,
    monetary=4,
    value_tier=sc.ValueTier.GOLD,
    clv=Money(amount=Decimal("720.00"), currency="EUR"),
    churn_risk=0.25,
    churn_band=sc.ChurnBand.LOW,
)

_EXAMPLES: dict[str, BaseModel] = {
    it.INTERACTION_RECORDED: it.InteractionRecorded.model_validate(
        {
            "channel": "store",
            "kind": "purchase",
            "identity": {
                "email": "ada@example.com",
                "phone": "+44 20 7946 0000",
                "external_ids": {"webshop": "c-42"},
                "anonymous_id": "ck-1",
            },
            "value": {"amount": "120.00", "currency": "EUR"},
            "traits": {"first_name": "Ada", "last_name": "Lovelace"},
            "properties": {"order_id": "o-1"},
        }
    ),
    it.INTERACTION_RESOLVED: it.InteractionResolved(
        interaction_id=CAUSE_EVENT_ID,
        interaction_source="urn:channel:webshop",
        contact_id=CONTACT_ID,
        channel=Channel.STORE,
        kind=it.InteractionKind.PURCHASE,
        value=Money(amount=Decimal("120.00"), currency="EUR"),
        properties={"order_id": "o-1"},
        stage=ct.LifecycleStage.REPEAT_CUSTOMER,
        previous_stage=ct.LifecycleStage.FIRST_TIME_CUSTOMER,
        stage_changed=True,
    ),
    ct.CONTACT_CREATED: ct.ContactCreated(
        contact_id=CONTACT_ID,
        stage=ct.LifecycleStage.PROSPECT,
        profile=ct.Profile(first_name="Ada", last_name="Lovelace", country="GB"),
        cause_event_id=CAUSE_EVENT_ID,
    ),
    ct.CONTACT_UPDATED: ct.ContactUpdated(
        contact_id=CONTACT_ID,
        profile=ct.Profile(
            first_name="Ada", last_name="Lovelace", company="Analytical Engines", country="GB"
        ),
        changed_fields=["company"],
    ),
    ct.CONTACT_IDENTITY_LINKED: ct.ContactIdentityLinked(
        contact_id=CONTACT_ID,
        identity_type=ct.IdentityType.EXTERNAL_ID,
        system="webshop",
        identifier="c-42",
        cause_event_id=CAUSE_EVENT_ID,
    ),
    ct.CONTACT_IDENTITY_UNLINKED: ct.ContactIdentityUnlinked(
        contact_id=CONTACT_ID,
        identity_type=ct.IdentityType.EMAIL,
        reason="family inbox, not hers",
    ),
    ct.CONTACT_MERGED: ct.ContactMerged(
        survivor_id=CONTACT_ID,
        merged_ids=["c-19b2d0"],
        matched_on=ct.IdentityType.EMAIL,
        cause_event_id=CAUSE_EVENT_ID,
    ),
    ct.CONTACT_UNMERGED: ct.ContactUnmerged(
        contact_id="c-19b2d0", survivor_id=CONTACT_ID, reason="different people sharing an inbox"
    ),
    ct.CONTACT_LIFECYCLE_CHANGED: ct.ContactLifecycleChanged(
        contact_id=CONTACT_ID,
        from_stage=ct.LifecycleStage.FIRST_TIME_CUSTOMER,
        to_stage=ct.LifecycleStage.REPEAT_CUSTOMER,
        cause_event_id=CAUSE_EVENT_ID,
        cause_kind="purchase",
    ),
    ct.CONTACT_CONSENT_CHANGED: ct.ContactConsentChanged(
        contact_id=CONTACT_ID,
        channel=Channel.EMAIL,
        purpose="marketing",
        granted=True,
        source="urn:channel:webshop",
        cause_event_id=CAUSE_EVENT_ID,
    ),
    ct.CONTACT_ERASED: ct.ContactErased(contact_id=CONTACT_ID, request_id="pr-301"),
    ct.CONTACT_DELETED: ct.ContactDeleted(contact_id=CONTACT_ID, reason="test record"),
    cs.CASE_OPENED: cs.CaseOpened(
        case_id=CASE_ID,
        contact_id=CONTACT_ID,
        title="Parcel arrived damaged",
        queue="deliveries",
        priority=cs.CasePriority.HIGH,
        category="damaged_goods",
        channel=Channel.EMAIL,
        sla=cs.Sla(
            first_response_due_at=datetime(2026, 11, 22, 12, 0, tzinfo=UTC),
            resolution_due_at=datetime(2026, 11, 24, 10, 0, tzinfo=UTC),
        ),
        cause_event_id=CAUSE_EVENT_ID,
        description="The box was crushed and the teapot inside is in pieces.",
        linked_case_id="case-0988",
        assignee="agent-17",
    ),
    cs.CASE_ASSIGNED: cs.CaseAssigned(
        case_id=CASE_ID, contact_id=CONTACT_ID, queue="deliveries", assignee="agent-17"
    ),
    cs.CASE_STATUS_CHANGED: cs.CaseStatusChanged(
        case_id=CASE_ID,
        contact_id=CONTACT_ID,
        from_status=cs.CaseStatus.OPEN,
        to_status=cs.CaseStatus.PENDING,
        reason="waiting for photos of the parcel",
    ),
    cs.CASE_PRIORITY_CHANGED: cs.CasePriorityChanged(
        case_id=CASE_ID,
        contact_id=CONTACT_ID,
        from_priority=cs.CasePriority.HIGH,
        to_priority=cs.CasePriority.URGENT,
        reason="churn risk rose to high",
        cause_event_id="evt-score-9",
        sla=cs.Sla(
            resolution_due_at=datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
            next_response_due_at=datetime(2026, 11, 22, 13, 0, tzinfo=UTC),
        ),
    ),
    cs.CASE_SLA_BREACHED: cs.CaseSlaBreached(
        case_id=CASE_ID,
        contact_id=CONTACT_ID,
        sla_kind=cs.SlaKind.NEXT_RESPONSE,
        due_at=datetime(2026, 11, 22, 13, 0, tzinfo=UTC),
        queue="deliveries",
        priority=cs.CasePriority.URGENT,
        assignee="agent-17",
        cycle=2,
        breached_at=datetime(2026, 11, 22, 13, 0, 30, tzinfo=UTC),
    ),
    cs.CASE_RESOLVED: cs.CaseResolved(
        case_id=CASE_ID,
        contact_id=CONTACT_ID,
        resolution="replacement_sent",
        resolved_by="agent-17",
        first_response_at=datetime(2026, 11, 22, 11, 30, tzinfo=UTC),
        first_contact_resolution=False,
    ),
    cs.CASE_REOPENED: cs.CaseReopened(
        case_id=CASE_ID,
        contact_id=CONTACT_ID,
        reason="replacement damaged too",
        cause_event_id="evt-0007",
        from_status=cs.CaseStatus.RESOLVED,
    ),
    cs.CASE_CLOSED: cs.CaseClosed(
        case_id=CASE_ID, contact_id=CONTACT_ID, resolution="refund_issued"
    ),
    cs.CASE_CSAT_RECORDED: cs.CaseCsatRecorded(
        case_id=CASE_ID,
        contact_id=CONTACT_ID,
        csat=4,
        cause_event_id="evt-0009",
        agent_id="agent-17",
        replaced_csat=2,
    ),
    cs.CASE_COMMENTED: cs.CaseCommented(
        case_id=CASE_ID,
        contact_id=CONTACT_ID,
        comment_id="cmt-301",
        author="agent-17",
        internal=True,
    ),
    cm.CAMPAIGN_LAUNCHED: cm.CampaignLaunched(
        campaign_id=CAMPAIGN_ID,
        name="Spring collection",
        channels=[Channel.EMAIL, Channel.SMS],
        segment_id="seg-repeat-buyers",
        goal_kind="purchase",
        ends_at=datetime(2027, 3, 31, 23, 59, tzinfo=UTC),
    ),
    cm.CAMPAIGN_PAUSED: cm.CampaignPaused(campaign_id=CAMPAIGN_ID, reason="stock shortage"),
    cm.CAMPAIGN_COMPLETED: cm.CampaignCompleted(
        campaign_id=CAMPAIGN_ID, enrolled_count=1200, converted_count=87
    ),
    cm.CAMPAIGN_CONTACT_ENROLLED: cm.CampaignContactEnrolled(
        campaign_id=CAMPAIGN_ID,
        contact_id=CONTACT_ID,
        enrolment_id=ENROLMENT_ID,
        segment_id="seg-repeat-buyers",
        cause_event_id="evt-score-9",
        arm=cm.Arm.TREATED,
    ),
    cm.CAMPAIGN_STEP_DUE: cm.CampaignStepDue(
        campaign_id=CAMPAIGN_ID,
        contact_id=CONTACT_ID,
        enrolment_id=ENROLMENT_ID,
        step_id="step-1-welcome",
        channel=Channel.EMAIL,
        template_ref="tpl-spring-welcome",
        locale="en-GB",
        variables={"discount_percent": 10},
    ),
    cm.CAMPAIGN_CONVERTED: cm.CampaignConverted(
        campaign_id=CAMPAIGN_ID,
        contact_id=CONTACT_ID,
        enrolment_id=ENROLMENT_ID,
        kind="purchase",
        value=Money(amount=Decimal("120.00"), currency="EUR"),
        attributed_step_id="step-1-welcome",
        cause_event_id=CAUSE_EVENT_ID,
        attribution_model="linear",
        credits=[
            cm.StepCredit(
                step_id="step-1-welcome",
                share=0.5,
                revenue=Money(amount=Decimal("60.00"), currency="EUR"),
            ),
            cm.StepCredit(
                step_id="step-2-reminder",
                share=0.5,
                revenue=Money(amount=Decimal("60.00"), currency="EUR"),
            ),
        ],
    ),
    cm.CAMPAIGN_EXITED: cm.CampaignExited(
        campaign_id=CAMPAIGN_ID,
        contact_id=CONTACT_ID,
        enrolment_id=ENROLMENT_ID,
        reason=cm.ExitReason.CONVERTED,
        cause_event_id=CAUSE_EVENT_ID,
    ),
    cm.CAMPAIGN_SEGMENT_ENTERED: cm.SegmentEntered(
        segment_id="seg-repeat-buyers", contact_id=CONTACT_ID, cause_event_id=CAUSE_EVENT_ID
    ),
    cm.CAMPAIGN_SEGMENT_LEFT: cm.SegmentLeft(segment_id="seg-repeat-buyers", contact_id=CONTACT_ID),
    sc.SCORE_CHANGED: sc.ScoreChanged.from_scores(
        contact_id=CONTACT_ID,
        model_version="2026.1",
        old=_OLD_SCORES,
        new=_NEW_SCORES,
        reasons=[
            sc.ScoreReason(
                text="purchase 120 EUR: +18 value", score=sc.ScoreName.MONETARY, contribution=18
            ),
            sc.ScoreReason(
                text="bought again within 30 days: -0.10 churn risk",
                score=sc.ScoreName.CHURN_RISK,
                contribution=-0.1,
            ),
        ],
        cause_event_id=CAUSE_EVENT_ID,
    ),
    sc.SCORE_CURRENT: sc.ScoreCurrent(
        contact_id=CONTACT_ID,
        model_version="2026.1",
        scores=_NEW_SCORES,
        cause_event_id=CAUSE_EVENT_ID,
    ),
    pv.PRIVACY_ERASURE_REQUESTED: pv.ErasureRequested(
        request_id="pr-301", contact_id=CONTACT_ID, requested_by="user-dpo-2"
    ),
    pv.PRIVACY_ERASURE_COMPLETED: pv.ErasureCompleted(
        request_id="pr-301", contact_id=CONTACT_ID, service="cases", records_erased=14
    ),
}

if set(_EXAMPLES) != set(EVENT_TYPES):  # pragma: no cover - caught by the tests at once
    raise RuntimeError(f"examples and registry differ: {set(_EXAMPLES) ^ set(EVENT_TYPES)}")


def example_data(type: str) -> BaseModel:
    """A valid data sample for an event type."""
    return _EXAMPLES[type]


def example_event(type: str) -> CloudEvent:
    """A valid event of a type, with fixed id, time and trace ids."""
    noun = type.split(".")[1]
    cause = None if type == it.INTERACTION_RECORDED else CAUSE_EVENT_ID
    return new_event(
        type,
        example_data(type),
        source=EXAMPLE_SOURCES[noun],
        id=f"evt-{type.removeprefix('crm.').replace('.', '-')}",
        time=EXAMPLE_TIME,
        correlationid=CAUSE_EVENT_ID,
        causationid=cause,
    )
