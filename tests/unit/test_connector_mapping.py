"""Connector logic without HTTP: config shapes, the registry, record mapping, error bodies, batch answers."""

from __future__ import annotations

import pytest
from coa_sync import connectors
from coa_sync.connectors import (
    ConnectorDeps,
    ConnectorError,
    ConnectorRequestError,
    ConnectorResponseError,
    WriteResult,
    dualentry,
    stackone,
    thredfi,
)
from coa_sync.connectors.file import FileConnector
from coa_sync.models import AccountFields, Action, ActionKind, FileSource, Tenant, ThredfiSource
from pydantic import ValidationError

TENANT = {"tenantId": "acme", "companyId": "c-1", "pleoSecretName": "coa-sync/acme/pleo"}


def create(external_id: str, code: str | None, name: str = "Name") -> Action:
    return Action(kind=ActionKind.CREATE, external_id=external_id, desired=AccountFields(name=name, code=code))


# -- config and registry -------------------------------------------------------------------


@pytest.mark.parametrize("source", [{"kind": "file", "uri": "s3://b/chart.csv"}, {"uri": "s3://b/chart.csv"}])
def test_tenant_items_written_before_connectors_still_read_as_file_sources(source):
    tenant = Tenant.model_validate({**TENANT, "source": source})
    assert tenant.source == FileSource(uri="s3://b/chart.csv")


def test_each_kind_has_its_own_settings_and_they_round_trip_in_camel_case():
    item = {**TENANT, "source": {"kind": "stackone", "accountId": "45", "companyId": "co", "secretName": "s"}}
    tenant = Tenant.model_validate(item)
    assert tenant.source.kind == "stackone" and tenant.source.base_url == "https://api.stackone.com"
    assert Tenant.model_validate(tenant.model_dump()) == tenant
    with pytest.raises(ValidationError, match="businessId"):
        Tenant.model_validate({**TENANT, "source": {"kind": "thredfi", "secretName": "s"}})
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        Tenant.model_validate({**TENANT, "source": {"kind": "xero", "secretName": "s"}})


def test_registry_builds_the_connector_a_config_names_with_its_secret():
    asked = []
    deps = ConnectorDeps(secret=lambda name: asked.append(name) or {"partnerUuid": "p", "apiKey": "k"})
    config = ThredfiSource(kind="thredfi", business_id="ab-12", secret_name="coa-sync/acme/thredfi")
    connector = connectors.source_for(config, deps)
    assert isinstance(connector, thredfi.ThredfiConnector) and asked == ["coa-sync/acme/thredfi"]
    assert isinstance(connectors.target_for(config, deps), connectors.TargetConnector)
    assert isinstance(connectors.source_for(FileSource(uri="a.csv")), FileConnector)
    with pytest.raises(ValueError, match="'file' cannot be a target"):
        connectors.target_for(FileSource(uri="a.csv"))


def test_a_secret_without_the_needed_fields_is_named_but_never_shown():
    deps = ConnectorDeps(secret=lambda _name: {"apiKey": "hunter2"})
    config = ThredfiSource(kind="thredfi", business_id="ab-12", secret_name="coa-sync/acme/thredfi")
    with pytest.raises(ConnectorError) as info:
        connectors.source_for(config, deps)
    assert "coa-sync/acme/thredfi" in str(info.value) and "partnerUuid" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_capabilities_say_what_each_target_can_do():
    assert thredfi.ThredfiConnector.capabilities.idempotent_create
    assert dualentry.DualEntryConnector.capabilities.idempotent_create  # by looking the number up first
    assert stackone.StackOneConnector.capabilities.max_batch > 1
    for connector in (thredfi.ThredfiConnector, dualentry.DualEntryConnector, stackone.StackOneConnector):
        assert connector.capabilities.supports(ActionKind.CREATE)
        assert not connector.capabilities.supports(ActionKind.ARCHIVE)


# -- mapping -------------------------------------------------------------------------------


def test_dualentry_record_maps_id_number_name_and_active():
    errors = []
    account = dualentry._account({"id": 12, "number": 6100, "name": "Travel", "is_active": False,
                                  "account_type": "expense", "parent_account_id": None}, "here", errors)
    assert (account.external_id, account.code, account.name, account.active) == ("12", "6100", "Travel", False)
    assert errors == []


@pytest.mark.parametrize(("item", "field"), [
    ({"id": 1, "number": 99, "name": "Low", "is_active": True, "account_type": "expense"}, "number"),
    ({"id": 1, "number": 100, "name": " ", "is_active": True, "account_type": "expense"}, "name"),
    ({"id": 1, "number": 100, "name": "No flag", "account_type": "expense"}, "is_active"),
])
def test_dualentry_bad_record_is_an_error_naming_the_record_and_field(item, field):
    errors = []
    assert dualentry._account(item, "dualentry page 2 item 5", errors) is None
    assert [(e.external_id, e.field, e.location) for e in errors] == [("1", field, "dualentry page 2 item 5")]


def test_stackone_active_null_counts_as_active_and_a_missing_id_is_an_error():
    errors = []
    account = stackone._account({"id": "a1", "code": None, "name": "Cash", "active": None}, "p1", errors)
    assert account.active is True and account.code is None
    assert stackone._account({"code": "1", "name": "No id"}, "p1 item 3", errors) is None
    assert [(e.field, e.external_id) for e in errors] == [("id", None)]


# -- write validation and error bodies -----------------------------------------------------


def test_thredfi_error_body_is_surfaced_code_message_fields_and_request_id():
    body = {"error_code": "validation_error", "message": "Invalid input",
            "detail": {"field_errors": {"code": ["Ensure this field has no more than 50 characters."],
                                        "parent_id": ["No such account."]}}, "request_id": "req-42"}
    error = ConnectorRequestError("thredfi", 400, "validation_error: Invalid input (request_id req-42)", body)
    assert thredfi.error_reasons(error) == [
        "thredfi HTTP 400: validation_error: Invalid input (request_id req-42)",
        "code: Ensure this field has no more than 50 characters.",
        "parent_id: No such account.",
    ]


def test_dualentry_error_body_is_surfaced_field_by_field():
    body = {"success": False, "errors": {"name": ["String should have at least 2 characters"],
                                         "account_type": ["Input should be 'bank', ...", "second"]}}
    error = ConnectorRequestError("dualentry", 422, "x", body)
    assert dualentry.error_reasons(error) == ["name: String should have at least 2 characters",
                                              "account_type: Input should be 'bank', ...", "account_type: second"]


@pytest.mark.parametrize(("code", "name", "problem"), [
    ("99", "Fine", "number: must be 100..9999999999, got 99"),
    ("10000000000", "Fine", "number: must be 100..9999999999, got 10000000000"),
    (None, "Fine", "number: DualEntry needs an integer account number as the code, got None"),
    ("100", "x", "name: must be 2..256 characters, got 1"),
])
def test_dualentry_create_rules(code, name, problem):
    assert dualentry.create_problems(create("e", code, name))[1] == [problem]
    assert dualentry.create_problems(create("e", "9999999999", "Ok"))[1] == []


def test_stackone_batch_answer_maps_errors_by_index_and_refuses_to_guess():
    actions = [create("a", "1"), create("b", "2"), create("c", "3")]
    result = WriteResult()
    stackone.merge_batch_errors(actions, {"statusCode": 202, "errors": [[], ["Missing field: name"], []]}, result)
    assert result.applied == ["a", "c"] and result.failed == {"b": ["stackone: Missing field: name"]}
    with pytest.raises(ConnectorResponseError, match="2 error entries for 3 items"):
        stackone.merge_batch_errors(actions, {"errors": [[], []]}, WriteResult())


def test_the_file_connector_reads_s3_objects_through_the_store_and_paths_from_disk(tmp_path):
    class Store:
        def read_bytes(self, key, bucket=None):
            assert (bucket, key) == ("tenant-files", "acme/chart.csv")
            return b"externalId,code,name,active\na,1,Cash,true\n"

    from_s3 = connectors.source_for(FileSource(uri="s3://tenant-files/acme/chart.csv"), ConnectorDeps(files=Store()))
    assert [a.external_id for a in from_s3.read_accounts().accounts] == ["a"]
    path = tmp_path / "chart.json"
    path.write_text('[{"externalId": "b", "code": "2", "name": "Bank", "active": true}]')
    assert [a.external_id for a in connectors.source_for(FileSource(uri=str(path))).read_accounts().accounts] == ["b"]
