"""Connector logic without a server: config shapes, the registry, record mapping, error bodies, rate budgets,
and answers no documented server gives (read through httpx's MockTransport)."""

from __future__ import annotations

import httpx
import pytest
from coa_sync import connectors
from coa_sync.connectors import (
    ConnectorDeps,
    ConnectorError,
    ConnectorRequestError,
    ConnectorResponseError,
    dualentry,
    stackone,
    thredfi,
)
from coa_sync.connectors.file import FileConnector
from coa_sync.models import (
    AccountFields,
    Action,
    ActionKind,
    DualEntrySource,
    FileSource,
    StackOneSource,
    Tenant,
    ThredfiSource,
)
from coa_sync.tokenbucket import Rate, TokenBucket
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


def test_stackone_as_a_target_takes_no_action_and_says_why_it_is_read_only():
    config = StackOneSource(kind="stackone", account_id="45", company_id="co", secret_name="s")
    deps = ConnectorDeps(secret=lambda _name: {"apiKey": "k"})
    assert isinstance(connectors.source_for(config, deps), stackone.StackOneConnector)
    target = connectors.target_for(config, deps)
    result = target.write([Action(kind=ActionKind.CREATE, external_id="1", desired=AccountFields(name="A"))])
    assert result.applied == []
    assert result.failed == {"1": ["unsupported by the target: stackone cannot create accounts (StackOne's API "
                                   "documents no endpoint that creates, updates or archives accounts (it is "
                                   "read-only))"]}


def test_thredfi_external_id_from_external_id_is_refused_with_the_reason_and_code_is_offered():
    for choice in ("id", "code"):
        assert ThredfiSource(kind="thredfi", business_id="ab-12", secret_name="s", external_id_from=choice)
    with pytest.raises(ValidationError, match="no read of Thredfi's returns an external_id") as info:
        Tenant.model_validate({**TENANT, "source": {"kind": "thredfi", "businessId": "ab-12", "secretName": "s",
                                                    "externalIdFrom": "external_id"}})
    assert "'id' (the default) or 'code'" in str(info.value)


def test_a_secret_without_the_needed_fields_is_named_but_never_shown():
    deps = ConnectorDeps(secret=lambda _name: {"apiKey": "hunter2"})
    config = ThredfiSource(kind="thredfi", business_id="ab-12", secret_name="coa-sync/acme/thredfi")
    with pytest.raises(ConnectorError) as info:
        connectors.source_for(config, deps)
    assert "coa-sync/acme/thredfi" in str(info.value) and "partnerUuid" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_capabilities_say_what_each_target_can_do():
    assert thredfi.ThredfiConnector.capabilities == connectors.Capabilities(
        max_batch=1, idempotent_create=True, update=False, archive=True, match_by="code",
        lacks="Thredfi documents no endpoint that updates an account")  # its documented soft delete
    assert dualentry.DualEntryConnector.capabilities == connectors.Capabilities(
        max_batch=1, idempotent_create=True, update=False, archive=False, match_by="code",
        lacks="DualEntry documents no endpoint that updates or archives an account")  # by looking the number up
    assert not any((stackone.StackOneConnector.capabilities.create, stackone.StackOneConnector.capabilities.update,
                    stackone.StackOneConnector.capabilities.archive))
    assert set(connectors.TARGETS) == {"thredfi", "dualentry", "stackone"}


# -- mapping -------------------------------------------------------------------------------


def test_dualentry_record_maps_id_number_name_and_active_without_needing_an_account_type():
    errors = []
    # The documented v2 list item: no account_type, no parent_account_id.
    account = dualentry._account({"id": 12, "name": "Travel", "number": 6100, "description": "", "is_active": False,
                                  "is_system": False, "company_id": None}, "here", errors)
    assert (account.external_id, account.code, account.name, account.active) == ("12", "6100", "Travel", False)
    assert errors == []


@pytest.mark.parametrize(("item", "field"), [
    ({"id": 1, "number": 99, "name": "Low", "is_active": True}, "number"),
    ({"id": 1, "number": 100, "name": " ", "is_active": True}, "name"),
    ({"id": 1, "number": 100, "name": "No flag"}, "is_active"),
    ({"id": 1, "number": 100, "name": "Text flag", "is_active": "yes"}, "is_active"),
])
def test_dualentry_bad_record_is_an_error_naming_the_record_and_field(item, field):
    errors = []
    assert dualentry._account(item, "dualentry page 2 item 5", errors) is None
    assert [(e.external_id, e.field, e.location) for e in errors] == [("1", field, "dualentry page 2 item 5")]


@pytest.mark.parametrize(("active", "read_as"), [
    (True, True), (False, False), ("true", True), ("false", False),
    (None, True),  # documented as nullable: unknown is never taken for archived
])
def test_stackone_active_is_read_in_each_documented_form(active, read_as):
    errors = []
    account = stackone._account({"id": "a1", "code": None, "name": "Cash", "active": active}, "p1", errors)
    assert account.active is read_as and account.code is None and errors == []


@pytest.mark.parametrize(("item", "field"), [
    ({"code": "1", "name": "No id"}, "id"),
    ({"id": "a2", "code": "2"}, "name"),  # every field is optional in StackOne's schema; Pleo needs a name
    ({"id": "a3", "name": "Odd", "active": "yes"}, "active"),
])
def test_stackone_record_it_cannot_sync_is_an_error_naming_the_field(item, field):
    errors = []
    assert stackone._account(item, "p1 item 3", errors) is None
    assert [e.field for e in errors] == [field] and errors[0].location == "p1 item 3"


def test_thredfi_record_maps_by_id_or_by_code():
    item = {"id": "acc-1000-uuid", "code": "1000", "name": "Bank - Barclays Current", "is_active": True,
            "parent_account_code": None, "has_children": False}
    errors = []
    by_id = thredfi._account(item, "p1", "id", errors)
    by_code = thredfi._account(item, "p1", "code", errors)
    assert (by_id.external_id, by_code.external_id) == ("acc-1000-uuid", "1000") and errors == []
    assert (by_id.code, by_id.name, by_id.active) == ("1000", "Bank - Barclays Current", True)


# -- write validation and error bodies -----------------------------------------------------


@pytest.mark.parametrize("body", [
    {"error_code": "validation_error", "message": "Invalid input", "request_id": "req-42",
     "detail": {"field_errors": {"code": ["Ensure this field has no more than 50 characters."],
                                 "parent_id": ["No such account."]}}},  # the OpenAPI ErrorResponse
    {"error": "Invalid input", "error_code": "validation_error",
     "details": {"code": ["Ensure this field has no more than 50 characters."],
                 "parent_id": ["No such account."]}},  # the error-handling guide's shape
])
def test_thredfi_error_body_is_surfaced_in_either_documented_shape(body):
    message = thredfi._read_error(body, "Bad Request")
    assert message.startswith("validation_error: Invalid input")
    assert ("(request_id req-42)" in message) == ("request_id" in body)
    assert thredfi.error_reasons(ConnectorRequestError("thredfi", 400, message, body))[1:] == [
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


# -- answers no documented server gives: each stops the read rather than guess -----------------


def mocked(connector_class, config, credentials, pages, **options):
    """A connector reading `pages` (JSON bodies, one per list request; token requests answered for Thredfi)."""
    bodies = iter(pages)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth2/token/"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        return httpx.Response(200, json=next(bodies))

    return connector_class(config, credentials, transport=httpx.MockTransport(handler), sleep=lambda _: None,
                           **options)


KEY = "s3cr3t-unit-key"
THREDFI = (thredfi.ThredfiConnector, ThredfiSource(kind="thredfi", base_url="http://127.0.0.1:9", business_id="ab",
                                                   secret_name="s"),
           thredfi.ThredfiCredentials(partner_uuid="p", api_key=KEY))
DUALENTRY = (dualentry.DualEntryConnector,
             DualEntrySource(kind="dualentry", base_url="http://127.0.0.1:9", secret_name="s"),
             dualentry.DualEntryCredentials(api_key=KEY))
STACKONE = (stackone.StackOneConnector, StackOneSource(kind="stackone", base_url="http://127.0.0.1:9", account_id="a",
                                                       company_id="c", secret_name="s"),
            stackone.StackOneCredentials(api_key=KEY))
ONE = {"id": "x1", "code": "1", "name": "One", "is_active": True, "active": True}


@pytest.mark.parametrize(("system", "pages", "message"), [
    (THREDFI, [{"count": 1, "results": [ONE]}],
     "thredfi: chart-of-accounts page 1: expected 'results' with 'page_info.total_pages' or 'next'"),
    (THREDFI, [{"count": 1, "next": None}],
     "thredfi: chart-of-accounts page 1: expected 'results' with 'page_info.total_pages' or 'next'"),
    (DUALENTRY, [{"accounts": []}], "dualentry: accounts page 1: expected a list, or an object with an 'items' list"),
    (STACKONE, [{"next": "c1", "data": [ONE]}, {"next": "c1", "data": []}],
     "stackone: accounts page 2: cursor 'c1' came back again"),
    (STACKONE, [{"next": 7, "data": [ONE]}], "stackone: accounts page 1: 'next' is not a string"),
    (STACKONE, [{"next": None, "data": {"id": "x1"}}], "stackone: accounts page 1: 'data' is not a list"),
])
def test_a_page_of_no_documented_shape_stops_the_read(system, pages, message):
    with pytest.raises(ConnectorResponseError, match=message.replace("(", r"\(").replace(")", r"\)")):
        mocked(*system, pages).read_accounts()


def test_stackone_empty_string_cursor_ends_the_list_as_its_sdk_reads_it():
    snapshot = mocked(*STACKONE, [{"next": "", "data": [ONE]}]).read_accounts()
    assert [a.external_id for a in snapshot.accounts] == ["x1"]


# -- rate budgets: the vendors' figures, per API key, never naming the key -------------------


@pytest.mark.parametrize(("system", "pages", "rates"), [
    (THREDFI, [{"count": 1, "page_info": {"total_pages": 1}, "results": [ONE]}], {Rate(60, 10)}),
    (DUALENTRY, [[ONE]], {Rate(300, 50), Rate(60, 10)}),
    (STACKONE, [{"next": None, "data": [ONE]}], {Rate(900, 100)}),
])
def test_each_connector_draws_on_its_vendors_stated_budgets(system, pages, rates):
    asked: list[tuple[str, Rate]] = []

    def budget(key: str, rate: Rate) -> TokenBucket:
        asked.append((key, rate))
        return TokenBucket(rate)

    mocked(*system, pages, budget=budget).read_accounts()
    assert {rate for _, rate in asked} == rates
    assert all(key.startswith(system[1].kind) and KEY not in key for key, _ in asked)


def test_a_tenant_can_raise_its_key_wide_budget_when_the_vendor_raised_it():
    config = DUALENTRY[1].model_copy(update={"rate_limit_per_minute": 600, "rate_limit_burst": 100})
    assert dualentry.key_rate(config) == Rate(600, 100)
    assert dualentry.key_rate(DUALENTRY[1]) == Rate(300, 50)
    assert stackone.key_rate(STACKONE[1].model_copy(update={"rate_limit_per_minute": 2000})) == Rate(2000, 100)


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
