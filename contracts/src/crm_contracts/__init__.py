"""The published language of the CRM event backbone.

CloudEvents envelope and its Kafka encodings, the event data models of every service, the
topic registry, and the generator of the committed JSON Schemas and AsyncAPI document
(`crm-contracts generate | check | compat`).
"""

from crm_contracts.envelope import (
    CloudEvent,
    EventAttributes,
    EventDecodeError,
    KafkaRecord,
    decode_json,
    decode_record,
    encode_binary,
    encode_structured,
    new_event,
    to_json_dict,
)
from crm_contracts.registry import (
    EVENT_TYPES,
    SCHEMA_BASE_URI,
    UnknownEventType,
    data_model_for,
    schema_uri,
)
from crm_contracts.topics import (
    TopicSpec,
    dead_letter_topic,
    get_topic,
    topic_for_event_type,
    topic_specs,
)

__all__ = [
    "EVENT_TYPES",
    "SCHEMA_BASE_URI",
    "CloudEvent",
    "EventAttributes",
    "EventDecodeError",
    "KafkaRecord",
    "TopicSpec",
    "UnknownEventType",
    "data_model_for",
    "dead_letter_topic",
    "decode_json",
    "decode_record",
    "encode_binary",
    "encode_structured",
    "get_topic",
    "new_event",
    "schema_uri",
    "to_json_dict",
    "topic_for_event_type",
    "topic_specs",
]
