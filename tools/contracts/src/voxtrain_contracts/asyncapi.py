"""The AsyncAPI 3.0 document of every topic and event, and each service's OpenAPI document.

AsyncAPI is assembled here rather than by ``faststream docs gen``: our subscribers take raw bytes (so that
undecodable messages can be dead-lettered, never re-read forever), which leaves FastStream nothing typed
to describe; the message schemas come from the pydantic event classes instead.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from voxtrain_shared import events as ev
from voxtrain_shared.ops import REPLAYED_FROM
from voxtrain_shared.topics import DEFAULT_NAMESPACE, TOPIC_KEYS, Topics, dead_letter

from .services import BuiltService


def openapi(service: Any) -> dict[str, Any]:
    """A built service's OpenAPI document."""
    doc: dict[str, Any] = service.app.openapi()
    return doc


def _version() -> str:
    return metadata.version("voxtrain-shared")


def asyncapi(services: list[BuiltService]) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every topic and message in :data:`voxtrain_shared.events.REGISTRY`.

    Channels are the :class:`~voxtrain_shared.topics.Topics` (and their dead-letter topics); each message is
    the :class:`~voxtrain_shared.events.Envelope` with that type's payload in ``data``; ``receive``
    operations are the consumer groups the services' brokers subscribe (read from the built services).
    """
    from pydantic.json_schema import models_json_schema

    topics = Topics("{namespace}")
    classes = sorted(ev.REGISTRY.classes(), key=lambda c: (c.TOPIC, c.TYPE, c.VERSION))
    ref = "#/components/schemas/{model}"
    _, defs = models_json_schema(
        [(c, "serialization") for c in classes] + [(ev.Envelope, "serialization")], ref_template=ref
    )
    schemas: dict[str, Any] = dict(sorted(defs["$defs"].items()))
    schemas["RelayHeaders"] = {
        "type": "object",
        "description": "Set by the outbox relay on every message voxtrain publishes.",
        "properties": {
            "event_type": {"type": "string", "description": "the envelope's type"},
            "event_id": {"type": "string", "format": "uuid", "description": "the envelope's id"},
            "traceparent": {
                "type": "string",
                "description": "W3C trace context of the span that published it, when the writer had one "
                "(OpenTelemetry; absent when no trace was active)",
            },
            "tracestate": {"type": "string", "description": "W3C trace state that goes with traceparent, if any"},
        },
    }
    schemas["CommandHeaders"] = {
        "type": "object",
        "required": ["authorization"],
        "properties": {
            "authorization": {
                "type": "string",
                "pattern": "^Bearer ",
                "description": "Bearer token naming the tenant; it must be the envelope's tenant_id.",
            }
        },
    }
    schemas["DeadLetterHeaders"] = {
        "type": "object",
        "description": "The original message's headers plus these, added by the consumer that gave up on it.",
        "properties": {
            "x-dead-letter-reason": {"type": "string", "description": "the last error (at most 2000 characters)"},
            "x-original-topic": {"type": "string", "description": "the topic it came from; replays go there"},
            "x-original-partition": {"type": "string"},
            "x-original-offset": {"type": "string"},
            "x-consumer-group": {"type": "string", "description": "the group that could not handle it"},
            "x-attempts": {"type": "string", "description": "how many times the handler ran"},
            "x-dead-letter-kind": {
                "type": "string",
                "enum": ["poison", "permanent", "unknown"],
                "description": "poison: could not be decoded or parsed; permanent: the handler "
                "refused it; unknown: an unexpected error, after the retries",
            },
            REPLAYED_FROM: {"type": "string", "description": "set when `voxtrain dlt replay` sent it back before"},
        },
    }
    inbound_only = {"model_commands"}  # commands other services send; no voxtrain service publishes on it
    kafka_key = {"type": "string", "format": "uuid", "description": "the model id: a model's messages stay in order"}

    messages: dict[str, Any] = {}
    by_topic: dict[str, list[str]] = {}
    for cls in classes:
        name = cls.TYPE if cls.VERSION == 1 else f"{cls.TYPE}V{cls.VERSION}"
        by_topic.setdefault(cls.TOPIC, []).append(name)
        doc = (cls.__doc__ or "").strip()
        if doc == (ev.Message.__doc__ or "").strip():
            doc = ""
        messages[name] = {
            "name": cls.TYPE,
            "title": f"{cls.TYPE} v{cls.VERSION}",
            **({"summary": doc.splitlines()[0]} if doc else {}),
            "contentType": "application/json",
            "headers": {
                "$ref": "#/components/schemas/" + ("CommandHeaders" if cls.TOPIC in inbound_only else "RelayHeaders")
            },
            "payload": {
                "allOf": [
                    {"$ref": ref.format(model="Envelope")},
                    {
                        "type": "object",
                        "required": ["type", "version", "data"],
                        "properties": {
                            "type": {"const": cls.TYPE},
                            "version": {"const": cls.VERSION},
                            "data": {"$ref": ref.format(model=cls.__name__)},
                        },
                    },
                ]
            },
            "correlationId": {
                "description": "follows a request across every service",
                "location": "$message.payload#/correlation_id",
            },
            "bindings": {"kafka": {"key": kafka_key, "bindingVersion": "0.5.0"}},
        }
    messages["DeadLetter"] = {
        "name": "DeadLetter",
        "title": "A message a consumer gave up on",
        "summary": "The original message, byte for byte (usually an envelope of the channel's types, "
        "possibly not JSON at all), with the dead-letter headers.",
        "contentType": "application/json",
        "headers": {"$ref": "#/components/schemas/DeadLetterHeaders"},
        "payload": {"description": "the original message's bytes, unchanged"},
        "bindings": {
            "kafka": {"key": {"type": "string", "description": "the original message's key"}, "bindingVersion": "0.5.0"}
        },
    }

    namespace = {
        "namespace": {
            "default": DEFAULT_NAMESPACE,
            "description": ("VOXTRAIN_KAFKA__TOPIC_NAMESPACE: every topic lives under it (`voxtrain` in production)."),
        }
    }
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    keys = [k for k in TOPIC_KEYS if k in by_topic]
    assert sorted(keys) == sorted(by_topic), "every message TOPIC must be a Topics key"
    address_to_key = {Topics(DEFAULT_NAMESPACE).by_key(k): k for k in keys}
    for key in keys:
        doc = (getattr(Topics, key).__doc__ or "").strip()
        channels[key] = {
            "address": topics.by_key(key),
            "title": key,
            "description": f"{doc} Keyed by model id.",
            "parameters": namespace,
            "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in by_topic[key]},
        }
        channels[f"{key}_dlt"] = {
            "address": dead_letter(topics.by_key(key)),
            "title": f"{key} dead letters",
            "description": f"Messages of {topics.by_key(key)} that a consumer could not handle after its retries. "
            "`voxtrain dlt list|replay` reads them.",
            "parameters": namespace,
            "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
        }
        if key not in inbound_only:
            operations[f"publish_{key}"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{key}"},
                "summary": f"voxtrain publishes on {topics.by_key(key)} (through its transactional outbox)",
                "messages": [{"$ref": f"#/channels/{key}/messages/{m}"} for m in by_topic[key]],
            }
        operations[f"dead_letter_{key}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{key}_dlt"},
            "summary": f"a consumer of {topics.by_key(key)} gives up on a message",
            "messages": [{"$ref": f"#/channels/{key}_dlt/messages/DeadLetter"}],
        }
    for b in services:
        for sub in sorted(b.service.broker.subscribers, key=lambda s: s.group_id):
            for topic in sorted(sub.topic_names):
                key = address_to_key[topic]
                group = sub.group_id.replace(f"{DEFAULT_NAMESPACE}.", "{namespace}.", 1)
                purpose = sub.group_id.rsplit(".", 1)[1]
                operations[f"receive_{b.name}_{purpose}"] = {
                    "action": "receive",
                    "channel": {"$ref": f"#/channels/{key}"},
                    "summary": f"the {b.name} service consumes {topics.by_key(key)} in group {group} "
                    "(at least once; handlers skip the types they do not need)",
                    "messages": [{"$ref": f"#/channels/{key}/messages/{m}"} for m in by_topic[key]],
                    "bindings": {"kafka": {"groupId": {"type": "string", "enum": [group]}, "bindingVersion": "0.5.0"}},
                }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "voxtrain events",
            "version": _version(),
            "description": "Every topic and message of voxtrain, generated from voxtrain_shared.events.REGISTRY "
            "and voxtrain_shared.topics.Topics by `make docs` (do not edit by hand). Every "
            "message is a JSON envelope whose `data` is the payload of its `type` and `version`.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "description": "The Kafka cluster of a deployment (VOXTRAIN_KAFKA__BOOTSTRAP_SERVERS).",
                "variables": {"bootstrap": {"default": "127.0.0.1:19092"}},
            }
        },
        "channels": channels,
        "operations": dict(sorted(operations.items())),
        "components": {"schemas": schemas, "messages": messages},
    }
