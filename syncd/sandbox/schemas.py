"""Hand-written copies of the parts of Xero's official OpenAPI specs that the sandbox checks
requests against: the request-body schemas of the Projects and Contacts operations syncd uses
(with every schema they reference) and those operations' query, header and path parameters.

They are written in the specs' own notation (a JSON-schema subset: type, format, enum,
maxLength, minimum/maximum, required, readOnly, items, properties and `$ref`), so that a
contract test can compare them with the published files; descriptions, examples and defaults
are left out (they do not decide validity). The sandbox ships in the package and works without
the spec files, hence the copies. Data only; imports nothing from syncd.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _text(limit: int | None = None) -> Schema:
    return {"type": "string", "maxLength": limit} if limit else {"type": "string"}


def _enum(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


def _list_of(name: str) -> Schema:
    return {"type": "array", "items": _ref(name)}


def _object(**properties: Schema) -> Schema:
    return {"type": "object", "properties": properties}


UUID: Schema = {"type": "string", "format": "uuid"}
DATE_TIME: Schema = {"type": "string", "format": "date-time"}
DOUBLE: Schema = {"type": "number", "format": "double"}
BOOLEAN: Schema = {"type": "boolean"}
INTEGER: Schema = {"type": "integer"}
STRING: Schema = {"type": "string"}

# -- xero-projects.yaml -----------------------------------------------------------------------

PROJECTS: dict[str, Schema] = {
    "ProjectCreateOrUpdate": {
        **_object(contactId=UUID, name=STRING, estimateAmount=DOUBLE, deadlineUtc=DATE_TIME),
        "required": ["name"],
    },
    "ProjectPatch": {
        **_object(status={**_ref("ProjectStatus"), "type": "string"}),
        "required": ["status"],
    },
    "ProjectStatus": _enum("INPROGRESS", "CLOSED"),
}

# -- xero_accounting.yaml ---------------------------------------------------------------------

_ISO_4217 = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
    BYN BYR BZD CAD CDF CHF CLF CLP CNY COP CRC CUC CUP CVE CZK DJF DKK DOP DZD EEK EGP ERN ETB
    EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IQD IRR ISK JMD
    JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LTL LVL LYD MAD MDL MGA MKD
    MMK MNT MOP MRO MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP
    PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SKK SLE SLL SOS SRD STD STN SVC
    SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VEF VES VND VUV WST XAF XCD
    XOF XPF YER ZAR ZMW ZMK ZWD
"""
CURRENCY_CODES = _ISO_4217.split()  # in the spec's order

_LINE_AMOUNT_TYPES = ("INCLUSIVE", "EXCLUSIVE", "NONE")
_AMOUNTS = _object(Outstanding=DOUBLE, Overdue=DOUBLE)

ACCOUNTING: dict[str, Schema] = {
    "Contacts": _object(
        pagination=_ref("Pagination"),
        Warnings=_list_of("ValidationError"),
        Contacts=_list_of("Contact"),
    ),
    "Pagination": _object(page=INTEGER, pageSize=INTEGER, pageCount=INTEGER, itemCount=INTEGER),
    "ValidationError": _object(Message=STRING),
    "Contact": _object(
        ContactID=UUID,
        MergedToContactID=UUID,
        ContactNumber=_text(50),
        AccountNumber=_text(50),
        ContactStatus=_enum("ACTIVE", "ARCHIVED", "GDPRREQUEST"),
        Name=_text(255),
        FirstName=_text(255),
        LastName=_text(255),
        CompanyNumber=_text(50),
        EmailAddress=_text(255),
        ContactPersons=_list_of("ContactPerson"),
        BankAccountDetails=STRING,
        TaxNumber=_text(50),
        TaxNumberType=_enum("SSN", "EIN", "ITIN", "ATIN"),
        AccountsReceivableTaxType=STRING,
        AccountsPayableTaxType=STRING,
        Addresses=_list_of("Address"),
        Phones=_list_of("Phone"),
        IsSupplier=BOOLEAN,
        IsCustomer=BOOLEAN,
        SalesDefaultLineAmountType=_enum(*_LINE_AMOUNT_TYPES),
        PurchasesDefaultLineAmountType=_enum(*_LINE_AMOUNT_TYPES),
        DefaultCurrency={**_ref("CurrencyCode"), "type": "string"},
        XeroNetworkKey=STRING,
        SalesDefaultAccountCode=STRING,
        PurchasesDefaultAccountCode=STRING,
        SalesTrackingCategories=_list_of("SalesTrackingCategory"),
        PurchasesTrackingCategories=_list_of("SalesTrackingCategory"),
        TrackingCategoryName=STRING,
        TrackingCategoryOption=STRING,
        PaymentTerms=_ref("PaymentTerm"),
        UpdatedDateUTC={**STRING, "readOnly": True},
        ContactGroups=_list_of("ContactGroup"),
        Website={**STRING, "readOnly": True},
        BrandingTheme=_ref("BrandingTheme"),
        BatchPayments=_ref("BatchPaymentDetails"),
        Discount={**DOUBLE, "readOnly": True},
        Balances=_ref("Balances"),
        Attachments=_list_of("Attachment"),
        HasAttachments=BOOLEAN,
        ValidationErrors=_list_of("ValidationError"),
        HasValidationErrors=BOOLEAN,
        StatusAttributeString=STRING,
    ),
    "ContactPerson": _object(
        FirstName=STRING, LastName=STRING, EmailAddress=STRING, IncludeInEmails=BOOLEAN
    ),
    "Address": _object(
        AddressType=_enum("POBOX", "STREET"),
        AddressLine1=_text(500),
        AddressLine2=_text(500),
        AddressLine3=_text(500),
        AddressLine4=_text(500),
        City=_text(255),
        Region=_text(255),
        PostalCode=_text(50),
        Country=_text(50),
        AttentionTo=_text(255),
    ),
    "Phone": _object(
        PhoneType=_enum("DEFAULT", "DDI", "MOBILE", "FAX", "OFFICE"),
        PhoneNumber=_text(50),
        PhoneAreaCode=_text(10),
        PhoneCountryCode=_text(20),
    ),
    "CurrencyCode": _enum(*CURRENCY_CODES),
    "SalesTrackingCategory": _object(TrackingCategoryName=STRING, TrackingOptionName=STRING),
    "PaymentTerm": _object(Bills=_ref("Bill"), Sales=_ref("Bill")),
    "Bill": _object(Day=INTEGER, Type=_ref("PaymentTermType")),
    "PaymentTermType": _enum(
        "DAYSAFTERBILLDATE", "DAYSAFTERBILLMONTH", "OFCURRENTMONTH", "OFFOLLOWINGMONTH"
    ),
    "ContactGroup": _object(
        Name=STRING,
        Status=_enum("ACTIVE", "DELETED"),
        ContactGroupID=UUID,
        Contacts=_list_of("Contact"),
    ),
    "BrandingTheme": _object(
        BrandingThemeID=UUID,
        Name=STRING,
        LogoUrl=STRING,
        Type=_enum("INVOICE"),
        SortOrder=INTEGER,
        CreatedDateUTC={**STRING, "readOnly": True},
    ),
    # The spec gives this one no `type`: any JSON value is valid, and its properties apply
    # only when it is an object.
    "BatchPaymentDetails": {
        "properties": {
            "BankAccountNumber": STRING,
            "BankAccountName": STRING,
            "Details": STRING,
            "Code": _text(12),
            "Reference": _text(12),
        }
    },
    "Balances": _object(
        AccountsReceivable=_ref("AccountsReceivable"), AccountsPayable=_ref("AccountsPayable")
    ),
    "AccountsReceivable": _AMOUNTS,
    "AccountsPayable": _AMOUNTS,
    "Attachment": _object(
        AttachmentID=UUID,
        FileName=STRING,
        Url=STRING,
        MimeType=STRING,
        ContentLength=INTEGER,
        IncludeOnline=BOOLEAN,
    ),
}

# -- parameters -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Parameter:
    """One parameter of an operation, as the spec declares it. Query parameters use the form
    style: an exploded array repeats the name (`projectIds=a&projectIds=b`), an array with
    `explode: false` is one comma-separated value (`IDs=a,b`), a scalar appears once."""

    name: str
    where: Literal["query", "header", "path"]
    schema: Schema
    explode: bool = True
    required: bool = False


def _query(name: str, schema: Schema, *, explode: bool = True) -> Parameter:
    return Parameter(name=name, where="query", schema=schema, explode=explode)


def _path(name: str, schema: Schema) -> Parameter:
    return Parameter(name=name, where="path", schema=schema, required=True)


_PAGE_SIZE_1_TO_500 = {"type": "integer", "minimum": 1, "maximum": 500}
_SUMMARIZE_ERRORS = _query("summarizeErrors", BOOLEAN)
_CONTACT_ID = _path("ContactID", UUID)
_PROJECT_ID = _path("projectId", UUID)

# By the specs' operationId. The `Xero-Tenant-Id` and `Idempotency-Key` headers every operation
# declares are the gate's (syncd.sandbox.gate): it answers a tenant that is missing or not
# connected with 403 and a key over 128 characters with 400.
PARAMETERS: dict[str, tuple[Parameter, ...]] = {
    "getProjects": (
        _query("projectIds", {"type": "array", "items": UUID}),
        _query("contactID", UUID),
        _query("states", STRING),
        _query("page", INTEGER),
        _query("pageSize", _PAGE_SIZE_1_TO_500),
    ),
    "createProject": (),
    "getProject": (_PROJECT_ID,),
    "updateProject": (_PROJECT_ID,),
    "patchProject": (_PROJECT_ID,),
    "getProjectUsers": (_query("page", INTEGER), _query("pageSize", _PAGE_SIZE_1_TO_500)),
    "getContacts": (
        Parameter(name="If-Modified-Since", where="header", schema=DATE_TIME),
        _query("where", STRING),
        _query("order", STRING),
        _query("IDs", {"type": "array", "items": UUID}, explode=False),
        _query("page", INTEGER),
        _query("includeArchived", BOOLEAN),
        _query("summaryOnly", BOOLEAN),
        _query("searchTerm", STRING),
        _query("pageSize", INTEGER),
    ),
    "createContacts": (_SUMMARIZE_ERRORS,),
    "updateOrCreateContacts": (_SUMMARIZE_ERRORS,),
    "getContact": (_CONTACT_ID,),
    "getContactByContactNumber": (_path("ContactNumber", STRING),),
    "updateContact": (_CONTACT_ID,),
}

# The request body of each operation that has one: (schema registry, component name).
BODIES: dict[str, tuple[dict[str, Schema], str]] = {
    "createProject": (PROJECTS, "ProjectCreateOrUpdate"),
    "updateProject": (PROJECTS, "ProjectCreateOrUpdate"),
    "patchProject": (PROJECTS, "ProjectPatch"),
    "createContacts": (ACCOUNTING, "Contacts"),
    "updateOrCreateContacts": (ACCOUNTING, "Contacts"),
    "updateContact": (ACCOUNTING, "Contacts"),
}
