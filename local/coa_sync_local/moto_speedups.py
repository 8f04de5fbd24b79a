"""Speed fixes for moto's SQS (and one for DynamoDB), applied by the local runner; what SQS and DynamoDB
do is unchanged.

moto's SQS is written for a handful of messages; the local runner queues one message per
action, 100,000 for a large chart. Each fix below removes work whose cost grows with the
queue (or is needlessly high per message) and keeps every answer the same:

- Queue counts: moto builds every queue attribute, including three message counts that each
  scan the whole queue, whenever it reads one setting, and it reads settings for every
  message sent: sending n messages cost O(n²). The counts become lazy: computed when
  something reads them (GetQueueAttributes), exactly as before.
- Attribute names: building a queue's attributes converts each of 14 names from CamelCase
  to snake_case, character by character (about 40 µs a name); moto builds them for every
  message sent (and did three times for every message received, in the retention check
  below). The conversion is a pure function of the name: it is remembered.
- Retention check: each message received asks GetQueueAttributes (the whole attribute set)
  for MessageRetentionPeriod; it now reads the queue's setting directly, the same value.
- Clock: moto's SQS reads the time (visibility, delays, receive and send timestamps,
  retention) through a datetime-based clock, the current UTC datetime minus the epoch
  (about 4 µs a call, several calls a message); the same epoch seconds come from
  time.time().
- Visible messages: each receive first built the list of every visible message (a scan of
  the whole queue) to take ten from it: O(n²) to drain a queue. The visible messages are
  now found as they are read, so a receive stops once it has its ten. Counting them and
  waiting for one (long polling) read them the same way.
- Receipt handles: 185 random lowercase letters, drawn with one random.choice call each
  (about 200 µs a message received); now from random bytes, each byte below 234 taken
  modulo 26 and the others dropped: the same alphabet and length, every letter equally
  likely and independent, from the same (seedable) moto random generator.
- Attribute MD5s: MD5OfMessageAttributes is worked out for every message sent and every
  message received (about 25 µs); it depends only on the attributes' names, types and
  values, and the messages of a run share a handful of those: the digests are remembered
  by that content.
- Received copies: each message received is handed out as a copy.deepcopy of the stored
  message (so filtering its attributes leaves the stored one alone); the generic deepcopy
  walks every field through the memo machinery. Message copies itself now: the immutable
  fields (str, int, float, None) shared, the containers (attributes, old receipt handles)
  copied all the way down, as deepcopy does. The copy is not added to moto's registry of
  model instances (what its moto-api/data.json dashboard lists), where deepcopy's
  reconstruction put every copy handed out, for good: 100,000 dead copies for the
  garbage collector to walk on every full pass.
- Delete: each delete scanned the whole queue twice and rebuilt it; it now stops at the
  message. Taking a message out of the queue's list moves every message behind it, and a
  consumer deletes from the front: 100,000 deletes moved 100,000²/2 list slots. A
  DeleteMessageBatch now takes its messages out together, a run of neighbours in one move.

- Shared message attributes: each message sent keeps its own parse of its MessageAttributes
  (four dicts and their strings, about half of the 1.9 KB moto holds a message in); the
  messages of a run carry a handful of distinct ones (tenant, run, kind). Messages with the same
  attributes now share one stored copy: nothing changes a stored message's attributes (a
  received message is a deep copy, filtered apart), so sharing them is not seen.

Two more are in moto's request handling, limited to SQS's (10,000 SendMessageBatch calls
for 100,000 messages, each parsed and answered by moto):

- Response fields: moto's serializer looks up every field of a response (each message's
  id, body, each attribute's type and value...) by trying a list of candidate names that
  six alias rules work out afresh for every field (about 25 µs a field), then sends each
  value through a dispatch on its type. For a plain dict, which is what SQS's responses
  are made of, the candidates depend only on the field's name and shape and its parent's,
  never on the values: they are worked out once per structure by the same rules and
  remembered; the value is still the first candidate present, as before. A plain str in
  a string field is stored under its serialized name directly, and a map whose values
  are all plain strings (a message's system attributes) copied as it is: where the
  dispatch (str() of a plain str is itself) would have put them.
- Action lookup: every call lists the methods of the response class (inspect.getmembers,
  about 0.3 ms) to check the action is one of them. SQSResponse's methods are fixed: they
  are listed once.

And one in moto's DynamoDB:

- Transactions: TransactWriteItems backs up every table it writes to by deep-copying it whole,
  once per write in the transaction, so that it can put the table back if a condition fails;
  a run's close (one transaction) cost as much as copying the whole tenants table twice. A
  transaction changes only the items it names: those are copied, and the table's map of items
  copied shallowly; a cancelled transaction puts back exactly that, so every table reads as before.
"""

from __future__ import annotations

import copy
import functools
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import moto.core.responses as core_responses
import moto.dynamodb.models as dynamodb_models
import moto.sqs.models as sqs_models
from moto.core import serialize
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.moto_api._internal import mock_random
from moto.sqs.exceptions import ReceiptHandleIsInvalid
from moto.sqs.models import Message, Queue, SQSBackend
from moto.sqs.responses import SQSResponse

COUNTS = (
    "approximate_number_of_messages",
    "approximate_number_of_messages_delayed",
    "approximate_number_of_messages_not_visible",
)
RECEIPT_HANDLE_LENGTH = 185  # moto.sqs.utils.generate_receipt_handle's
ATOMIC = frozenset((str, int, float, bool, type(None), bytes))  # what copy.deepcopy returns as it is


class LazyCount:
    __slots__ = ("_compute",)

    def __init__(self, compute: Callable[[], int]) -> None:
        self._compute = compute

    def __int__(self) -> int:
        return self._compute()

    __index__ = __int__

    def __str__(self) -> str:
        return str(self._compute())

    __repr__ = __str__

    def __eq__(self, other: object) -> bool:
        return self._compute() == other

    __hash__ = None  # type: ignore[assignment]


class VisibleMessages:
    """Queue.messages: the messages visible and not delayed, in queue order, found as they are read.

    moto reads it three ways: iterating (receive: takes the first ones and stops), len()
    (ApproximateNumberOfMessages) and truth (long polling waits until there is one).
    """

    __slots__ = ("_queue",)

    def __init__(self, queue: Queue) -> None:
        self._queue = queue

    def __iter__(self) -> Iterator[Message]:
        # Message.visible and Message.delayed, inlined: this runs for every message passed over.
        now = time.time() * 1000
        for message in self._queue._messages:
            if now > message.visible_at and not now < message.delayed_until:
                yield message

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:
        return any(True for _ in self)


_unix_time = sqs_models.unix_time


def _now(dt: Any = None) -> float:
    """moto.core.utils.unix_time: seconds since the epoch, of now unless given a datetime."""
    return time.time() if dt is None else _unix_time(dt)


def _now_millis(dt: Any = None) -> float:
    return _now(dt) * 1000.0


def _visible(message: Message) -> bool:
    return time.time() * 1000 > message.visible_at


def _delayed(message: Message) -> bool:
    return time.time() * 1000 < message.delayed_until


def _messages(queue: Queue) -> VisibleMessages:
    return VisibleMessages(queue)


def _delete_message(queue: Queue, receipt_handle: str) -> None:
    if receipt_handle in queue.deleted_messages:
        return  # deleting twice is fine, as in SQS
    for index, message in enumerate(queue._messages):
        if message.had_receipt_handle(receipt_handle):
            del queue._messages[index]
            queue.pending_messages.discard(message)
            queue.deleted_messages.update(message.all_receipt_handles)
            return
    raise ReceiptHandleIsInvalid()


_delete_message.speedup = True  # type: ignore[attr-defined]  # marks the patches as applied


def _delete_message_batch(backend: SQSBackend, queue_name: str,
                          receipts: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, str]]]:
    """SQSBackend.delete_message_batch: each entry decided as delete_message would, in order, the
    messages taken out of the queue's list together at the end."""
    queue = backend.get_queue(queue_name)
    success: list[str] = []
    errors: list[dict[str, str]] = []
    taken: list[int] = []  # indices in queue._messages
    for receipt_and_id in receipts:
        receipt_handle = receipt_and_id["ReceiptHandle"]
        if receipt_handle in queue.deleted_messages:  # deleted before, or by an earlier entry of this batch
            success.append(receipt_and_id["Id"])
            continue
        for index, message in enumerate(queue._messages):
            if message.had_receipt_handle(receipt_handle):
                taken.append(index)
                queue.pending_messages.discard(message)
                queue.deleted_messages.update(message.all_receipt_handles)
                success.append(receipt_and_id["Id"])
                break
        else:
            errors.append({"Id": receipt_and_id["Id"], "SenderFault": True, "Code": "ReceiptHandleIsInvalid",
                           "Message": f'The input receipt handle "{receipt_handle}" is not a valid receipt handle.'})
    taken.sort()
    while taken:  # from the back, each run of neighbouring indices in one slice
        stop = taken.pop() + 1
        start = stop - 1
        while taken and taken[-1] == start - 1:
            start = taken.pop()
        del queue._messages[start:stop]
    return success, errors


# Random bytes below 234 (= 9 x 26) map evenly onto the 26 letters; the rest are dropped.
_LETTERS = bytes(ord("a") + byte % 26 for byte in range(256))
_UNEVEN = bytes(range(234, 256))


def _generate_receipt_handle() -> str:
    letters = b""
    while len(letters) < RECEIPT_HANDLE_LENGTH:
        letters += mock_random.randbytes(RECEIPT_HANDLE_LENGTH + 32).translate(_LETTERS, _UNEVEN)
    return letters[:RECEIPT_HANDLE_LENGTH].decode("ascii")


def _deep(value: Any, memo: dict[int, Any]) -> Any:
    """copy.deepcopy for the plain data a message holds (dicts, lists, atoms), without its bookkeeping."""
    kind = type(value)
    if kind in ATOMIC:
        return value
    if kind is dict:
        return {key: item if type(item) in ATOMIC else _deep(item, memo) for key, item in value.items()}
    if kind is list:
        return [item if type(item) in ATOMIC else _deep(item, memo) for item in value]
    return copy.deepcopy(value, memo)


def _message_deepcopy(message: Message, memo: dict[int, Any]) -> Message:
    # Not BaseModel.__new__, which would add the copy to moto's registry of model instances for good.
    duplicate = object.__new__(type(message))
    memo[id(message)] = duplicate
    state = dict(message.__dict__)
    for name, value in state.items():
        if type(value) not in ATOMIC:
            state[name] = _deep(value, memo)
    duplicate.__dict__.update(state)
    return duplicate


_attribute_md5 = Message.attribute_md5.fget
_attribute_md5s: dict[tuple[Any, ...], str] = {}
ATTRIBUTE_MD5S_KEPT = 10_000


def _remembered_attribute_md5(message: Message) -> str:
    try:
        # What moto's digest reads: each name (in order), DataType, and StringValue or BinaryValue.
        content = tuple((name, value["DataType"], type(value.get("StringValue")), value.get("StringValue"),
                         type(value.get("BinaryValue")), value.get("BinaryValue"))
                        for name, value in sorted(message.message_attributes.items()))
        digest = _attribute_md5s.get(content)
    except (AttributeError, KeyError, TypeError):  # not the usual shape, or not hashable: as moto does
        return _attribute_md5(message)
    if digest is None:
        digest = _attribute_md5(message)  # raises for an invalid name, and nothing is remembered
        if len(_attribute_md5s) < ATTRIBUTE_MD5S_KEPT:
            _attribute_md5s[content] = digest
    return digest


def _is_message_valid_based_on_retention_period(backend: SQSBackend, queue_name: str, message: Message) -> bool:
    # moto's own reads the same setting through get_queue_attributes, which builds all of them.
    retention_period = backend.get_queue(queue_name).message_retention_period  # type: ignore[attr-defined]
    return retention_period + message.sent_timestamp / 1000 > sqs_models.unix_time()  # type: ignore[operator]


_json_serialize_type_map = serialize.BaseJSONSerializer._serialize_type_map


def _serialize_type_map(serializer: serialize.BaseJSONSerializer, serialized: Any, value: Any, shape: Any,
                        key: str) -> None:
    """BaseJSONSerializer._serialize_type_map, copying a map of plain strings as it is.

    Entry by entry, each string value goes through _serialize_type_string (str() of a plain
    str is itself) and is stored under get_serialized_name(value shape, entry name), which
    is the entry name when the value shape has no serialized name of its own.
    """
    value_shape = shape.value
    if (serializer.service_model.service_name == "sqs" and type(value) is dict
            and value_shape.type_name == "string" and "name" not in value_shape.serialization
            and _plain_json(type(serializer)) and all(type(item) is str for item in value.values())):
        map_obj = serializer.MAP_TYPE()
        serializer._default_serialize(serialized, map_obj, shape, key)
        map_obj.update(value)
        return
    _json_serialize_type_map(serializer, serialized, value, shape, key)


_json_serialize_type_structure = serialize.BaseJSONSerializer._serialize_type_structure
# Per structure shape (kept alive here, so its id is never reused): how to serialize it from a plain dict.
_structure_plans: dict[int, tuple[Any, tuple[tuple[Any, ...], ...]]] = {}


@functools.cache
def _plain_json(cls: type) -> bool:
    """Whether cls serializes as BaseJSONSerializer does, unchanged (a subclass may override any step)."""
    return (cls._serialize is serialize.ResponseSerializer._serialize
            and cls._serialize_structure_member is serialize.ResponseSerializer._serialize_structure_member
            and cls.get_value is serialize.ResponseSerializer.get_value
            and cls._serialize_type_string is serialize.BaseJSONSerializer._serialize_type_string
            and cls._default_serialize is serialize.ResponseSerializer._default_serialize
            and cls.get_serialized_name is serialize.ResponseSerializer.get_serialized_name)


def _structure_plan(serializer: serialize.BaseJSONSerializer, value: dict[str, Any],
                    shape: Any) -> tuple[tuple[Any, ...], ...]:
    """Each member's (key, shape, candidate names, serialized name, is a string), worked out once.

    The candidate names are what the value picker's alias rules give for the member; for a
    plain dict (no Meta aliases, class name "dict") they depend only on the member's key and
    shape and on this structure, so they are the same for every dict serialized as it.
    """
    entry = _structure_plans.get(id(shape))
    if entry is None or entry[0] is not shape:
        members = []
        for member_key, member_shape in shape.members.items():
            member_shape.parent = shape  # what the alias rules read, as the serializer sets it
            context = serialize.AttributePickerContext(
                obj=value, key=member_key, shape=member_shape, operation_model=serializer.operation_model,
                service_model=serializer.operation_model.service_model, key_path=".".join(serializer.path))
            candidates = tuple(serializer._value_picker.get_possible_keys(context))
            members.append((member_key, member_shape, candidates, any("." in c for c in candidates),
                            member_shape.serialization.get("name", member_key), member_shape.type_name == "string"))
        entry = _structure_plans[id(shape)] = (shape, tuple(members))
    return entry[1]


def _serialize_type_structure(serializer: serialize.BaseJSONSerializer, serialized: Any, value: Any, shape: Any,
                              key: str) -> None:
    """BaseJSONSerializer._serialize_type_structure for a plain dict, from the structure's plan.

    The same loop as ResponseSerializer._serialize_type_structure with _serialize_structure_member
    and get_value inlined: a member's value is the first of its candidate names present in the
    dict (None if none is), a missing (None) value is skipped, and a plain str in a string
    member is stored under its serialized name, which is where _serialize ->
    _serialize_type_string (str() of a plain str is itself) -> _default_serialize puts it.
    """
    picker = serializer._value_picker
    if (type(value) is not dict or serializer.service_model.service_name != "sqs" or shape.is_document_type
            or not _plain_json(type(serializer)) or type(picker) is not serialize.XFormedAttributePicker
            or picker.alias_providers is not serialize.DEFAULT_ALIAS_PROVIDERS or picker.response_transformers):
        _json_serialize_type_structure(serializer, serialized, value, shape, key)
        return
    wrapper = serializer.MAP_TYPE() if key else serialized
    missing = serialize.MISSING
    for member_key, member_shape, candidates, dotted, name, is_string in _structure_plan(serializer, value, shape):
        member_shape.parent = shape
        member_value = None
        for candidate in candidates:
            # moto.core.utils.get_value: a dotted name is a path; on a dict anything else is one key.
            found = serialize.get_value(value, candidate, missing) if dotted else value.get(candidate, missing)
            if found is not missing:
                member_value = found
                break
        if member_value is None:
            continue
        if is_string and type(member_value) is str:
            wrapper[name] = member_value
        else:
            serializer._serialize(wrapper, member_value, member_shape, member_key)
    if key:
        serializer._default_serialize(serialized, wrapper, shape, key)


_method_names_from_class = core_responses.method_names_from_class
_sqs_methods = _method_names_from_class(SQSResponse)


def _method_names(clazz: object) -> list[str]:
    return _sqs_methods if clazz is SQSResponse else _method_names_from_class(clazz)


_SHARED_ATTRIBUTES: dict[tuple[Any, ...], dict[str, Any]] = {}
SHARED_ATTRIBUTES_MAX = 10_000  # distinct attribute sets remembered (a run brings about four)


def _shared(attributes: dict[str, Any]) -> dict[str, Any]:
    """One stored copy of each distinct set of message attributes (see the module's docstring)."""
    try:
        key = tuple((name, tuple(sorted(value.items()))) for name, value in attributes.items())
        hash(key)
    except (AttributeError, TypeError):  # not a plain {name: {field: value}} (a list value): kept as it is
        return attributes
    if len(_SHARED_ATTRIBUTES) >= SHARED_ATTRIBUTES_MAX:
        _SHARED_ATTRIBUTES.clear()
    return _SHARED_ATTRIBUTES.setdefault(key, attributes)


def _sharing_attributes(send_message: Callable[..., Message]) -> Callable[..., Message]:
    @functools.wraps(send_message)
    def send(self: SQSBackend, queue_name: str, message_body: str, message_attributes: dict[str, Any] | None = None,
             *args: Any, **kwargs: Any) -> Message:
        return send_message(self, queue_name, message_body, _shared(message_attributes) if message_attributes
                            else message_attributes, *args, **kwargs)

    return send


_transact_write_items = DynamoDBBackend.transact_write_items


class _TableBackup:
    """What moto's transaction keeps of a table in place of a deep copy of it (see the module's notes)."""

    def __init__(self, table: Table, keys: list[dict[str, Any]]) -> None:
        self.table = table
        self.items = {hash_key: dict(value) if isinstance(value, dict) else value
                      for hash_key, value in table.items.items()}
        for key in keys:
            hash_key = dynamodb_models.DynamoType(key[table.hash_key_attr])
            if table.range_key_attr is None:
                if hash_key in self.items:
                    self.items[hash_key] = copy.deepcopy(self.items[hash_key])
                continue
            range_key = dynamodb_models.DynamoType(key[table.range_key_attr])
            if range_key in self.items.get(hash_key, {}):
                self.items[hash_key][range_key] = copy.deepcopy(self.items[hash_key][range_key])

    def restore(self) -> Table:
        self.table.items = defaultdict(dict, self.items)
        return self.table


class _BackupCopier:
    """moto.dynamodb.models' `copy` while a transaction runs: a table "copied" for its backup is a _TableBackup."""

    def __init__(self, keys: dict[str, list[dict[str, Any]]]) -> None:
        self._keys = keys

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        if isinstance(value, Table):
            return _TableBackup(value, self._keys.get(value.name, []))
        return copy.deepcopy(value, memo)


def _transact_write_items_backing_up_items(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    keys: dict[str, list[dict[str, Any]]] = {}
    for item in transact_items:
        for kind, write in item.items():
            table = backend.tables.get(write.get("TableName"))
            if table is not None:
                key = write["Item"] if kind == "Put" else write["Key"]
                keys.setdefault(table.name, []).append(key)
    names = list(keys)
    dynamodb_models.copy = _BackupCopier(keys)  # type: ignore[assignment]
    try:
        _transact_write_items(backend, transact_items)
    finally:
        dynamodb_models.copy = copy
        for name in names:  # a cancelled transaction put its backups in place of the tables
            backup = backend.tables.get(name)
            if isinstance(backup, _TableBackup):
                backend.tables[name] = backup.restore()


def apply() -> None:
    if getattr(Queue.delete_message, "speedup", False):
        return
    SQSBackend.send_message = _sharing_attributes(SQSBackend.send_message)  # type: ignore[method-assign]
    DynamoDBBackend.transact_write_items = _transact_write_items_backing_up_items  # type: ignore[method-assign]
    Queue.delete_message = _delete_message  # type: ignore[method-assign]
    SQSBackend.delete_message_batch = _delete_message_batch  # type: ignore[method-assign]
    Message.visible = property(_visible)  # type: ignore[assignment,method-assign]
    Message.delayed = property(_delayed)  # type: ignore[assignment,method-assign]
    Message.__deepcopy__ = _message_deepcopy  # type: ignore[attr-defined]
    Queue.messages = property(_messages)  # type: ignore[assignment,method-assign]
    SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
        _is_message_valid_based_on_retention_period)
    sqs_models.camelcase_to_underscores = functools.cache(sqs_models.camelcase_to_underscores)
    sqs_models.generate_receipt_handle = _generate_receipt_handle
    sqs_models.unix_time = _now
    sqs_models.unix_time_millis = _now_millis
    Message.attribute_md5 = property(_remembered_attribute_md5)  # type: ignore[assignment,method-assign]
    serialize.BaseJSONSerializer._serialize_type_map = _serialize_type_map  # type: ignore[method-assign]
    serialize.BaseJSONSerializer._serialize_type_structure = _serialize_type_structure  # type: ignore[method-assign]
    core_responses.method_names_from_class = _method_names
    for name in COUNTS:
        count = getattr(Queue, name)

        def lazy(queue: Queue, _count: Callable[[Queue], int] = count.fget) -> LazyCount:
            return LazyCount(lambda: _count(queue))

        setattr(Queue, name, property(lazy))
