"""HSDS 3.0 export and import: schema-valid nested services, stable ids, confidential places, the official
examples (JSON and CSV datapackage), skip reasons, taxonomy mapping and the round trip of resources.yaml."""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import jsonschema
import pytest
import yaml
from click.testing import CliRunner
from conftest import ROOT

from bot.cli import main
from bot.directory.hsds import (
    NAMESPACE,
    HSDSError,
    export_services,
    hsds_id,
    import_file,
    import_services,
    read_hsds,
    write_directory,
    write_export,
)
from bot.directory.resources import Directory, DirectoryFile, TaxonomyTerm, XBot, load_directory

KC = ZoneInfo("America/Chicago")
SHIPPED = ROOT / "resources.yaml"
EXAMPLE_ID = "ac148810-d857-441c-9679-408f346de14b"  # "Community Counselling" in the official examples
KC_PHONE = "(816) 474-4920"


@pytest.fixture(scope="module")
def shipped() -> Directory:
    return load_directory(SHIPPED)


@pytest.fixture(scope="module")
def exported(shipped) -> list[dict]:
    return export_services(shipped, "America/Chicago")


@pytest.fixture
def validator(shared_dir) -> jsonschema.Draft202012Validator:
    schema = json.loads((shared_dir / "hsds/schema/compiled/service.json").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


@pytest.fixture
def examples(shared_dir) -> Path:
    return shared_dir / "hsds/examples"


def by_id(exported: list[dict], service_id: str) -> dict:
    return next(s for s in exported if s["id"] == hsds_id(service_id))


def without_x_bot(document: DirectoryFile) -> DirectoryFile:
    return document.model_copy(update={"services": [s.model_copy(update={"x_bot": XBot()}) for s in document.services]})


def parsed(path: Path) -> DirectoryFile:
    return DirectoryFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def run(env: dict[str, str], *args: str):
    return CliRunner().invoke(main, list(args), env=env)


def record(name: str = "Northeast Pantry", **fields) -> dict:
    """A small HSDS service that imports as is (food, by its 211 LA term)."""
    return {
        "id": str(uuid.uuid4()),
        "name": name,
        "description": "Groceries.",
        "status": "active",
        "assured_date": "2026-11-01",
        "organization": {"id": str(uuid.uuid4()), "name": "Northeast Org"},
        "phones": [{"id": str(uuid.uuid4()), "number": KC_PHONE}],
        "attributes": [
            {
                "id": str(uuid.uuid4()),
                "taxonomy_term": {
                    "id": str(uuid.uuid4()),
                    "code": "BD-1800.2000",
                    "name": "Food Pantries",
                    "description": "Food Pantries",
                    "taxonomy": "211 LA",
                },
            }
        ],
        **fields,
    }


def term(code: str | None, name: str, taxonomy: str | None = None) -> list[dict]:
    """The attributes of a record with one taxonomy term."""
    body = {k: v for k, v in {"code": code, "name": name, "description": name, "taxonomy": taxonomy}.items() if v}
    return [{"id": str(uuid.uuid4()), "taxonomy_term": {"id": str(uuid.uuid4()), **body}}]


def one(records: list[dict], shipped: Directory):
    return import_services(records, shipped.categories.values(), KC)


# -- export ---------------------------------------------------------------------------------------


def test_every_exported_service_is_valid_hsds(exported, validator):
    assert len(exported) == len(load_directory(SHIPPED).services)
    for service in exported:
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(service)]
        assert not errors, (service["name"], errors[:5])
    broken = {**exported[0], "id": "not-a-uuid"}
    assert not validator.is_valid(broken), "format checking is on: a bad uuid fails"


def test_export_nests_organization_places_phones_hours_languages_and_terms(exported):
    legal_aid = by_id(exported, "legal-aid-wmo-housing")
    assert legal_aid["organization"] == {
        "id": legal_aid["organization_id"],
        "name": "Legal Aid of Western Missouri",
        "description": "Legal Aid of Western Missouri",
        "website": "https://lawmo.org",
    }
    (at,) = legal_aid["service_at_locations"]
    assert at["location"]["location_type"] == "physical" and at["location_id"] == at["location"]["id"]
    (address,) = at["location"]["addresses"]
    assert (address["address_1"], address["postal_code"], address["country"]) == (
        "1125 Grand Blvd Suite 1900",
        "64106",
        "US",
    )
    assert [p["number"] for p in legal_aid["phones"]] == ["+18164746750"]
    assert legal_aid["schedules"][0] | {"id": None} == {
        "id": None,
        "service_id": legal_aid["id"],
        "freq": "WEEKLY",
        "byday": "MO,TU,WE,TH,FR",
        "opens_at": "08:30",
        "closes_at": "17:00",
        "notes": "Times are local to America/Chicago.",
    }
    assert [lang["code"] for lang in legal_aid["languages"]] == ["en", "es"]
    terms = [(a.get("link_type"), a.get("value"), a["taxonomy_term"]["code"]) for a in legal_aid["attributes"]]
    assert terms == [
        ("peaceline_category", "housing", "BH"),
        ("peaceline_category", "legal", "FT"),
        ("peaceline_id", "legal-aid-wmo-housing", "service_id"),
    ]
    assert (legal_aid["assured_date"], legal_aid["status"], legal_aid["fees_description"]) == (
        "2026-11-02",
        "active",
        "Free.",
    )
    assert legal_aid["eligibility_description"].startswith("Low-income residents")


def test_ids_are_uuid5_of_the_fixed_namespace_and_each_entrys_own_id(exported, shipped):
    legal_aid = by_id(exported, "legal-aid-wmo-housing")
    assert legal_aid["id"] == str(uuid.uuid5(NAMESPACE, "legal-aid-wmo-housing"))
    assert legal_aid["phones"][0]["id"] == str(uuid.uuid5(NAMESPACE, "legal-aid-wmo-housing/phone/0"))
    assert len({s["id"] for s in exported}) == len(exported)
    phone_ids = [p["id"] for s in exported for p in s["phones"]]
    assert len(set(phone_ids)) == len(phone_ids)
    harvesters = [s for s in exported if s["organization"]["name"].startswith("Harvesters")]
    assert len(harvesters) == 2 and harvesters[0]["organization_id"] == harvesters[1]["organization_id"]


def test_two_exports_are_byte_identical_and_ids_do_not_follow_file_order(shipped, exported, tmp_path):
    first = write_export(shipped, tmp_path / "a", "America/Chicago").read_bytes()
    assert first == write_export(shipped, tmp_path / "b", "America/Chicago").read_bytes()
    assert json.loads(first) == exported
    reordered = Directory(shipped.categories.values(), reversed(shipped.services))
    assert sorted(export_services(reordered, "America/Chicago"), key=lambda s: s["id"]) == sorted(
        exported, key=lambda s: s["id"]
    )


def test_x_bot_is_left_out(exported):
    text = json.dumps(exported, ensure_ascii=False)
    assert "x_bot" not in text and "keywords" not in text and "priority" not in text
    assert "desalojo" not in text, "a keyword of legal-aid-wmo-housing"


def test_a_confidential_shelter_is_a_virtual_location_with_only_its_hotline(exported, shipped):
    confidential = [s for s in shipped.services if s.x_bot.confidential]
    assert confidential
    for service in confidential:
        (at,) = by_id(exported, service.id)["service_at_locations"]
        location = at["location"]
        assert location["location_type"] == "virtual"
        assert not {"addresses", "latitude", "longitude"} & set(location)
        assert [p["number"] for p in location["phones"]] == [p.number for p in service.phones]
    placeless = next(s for s in shipped.services if not s.locations and not s.x_bot.confidential)
    assert "service_at_locations" not in by_id(exported, placeless.id), "a national line has no place at all"


# -- the round trip -------------------------------------------------------------------------------


def test_importing_an_export_gives_back_the_directory_but_x_bot(exported, shipped, tmp_path):
    result = one(json.loads(json.dumps(exported)), shipped)
    assert result.skipped == []
    out = tmp_path / "resources.yaml"
    write_directory(result.directory, out, "services.json")  # writes only what load_directory accepts
    back = parsed(out)
    assert without_x_bot(back) == without_x_bot(parsed(SHIPPED))
    assert {s.id for s in back.services if s.x_bot.confidential} == {
        s.id for s in shipped.services if s.x_bot.confidential
    }, "a virtual-only location stays confidential"


def test_the_categories_are_rebuilt_from_the_export(exported, shipped):
    other = [
        c.model_copy(update={"taxonomy_term": TaxonomyTerm(code=f"X{i}", name=f"Other {i}", taxonomy="local")})
        for i, c in enumerate(shipped.categories.values())
    ]
    result = import_services(exported, other, KC)
    assert result.directory.categories == list(shipped.categories.values())
    assert [s.categories for s in result.directory.services] == [s.categories for s in shipped.services]


def test_export_and_import_commands(env, shipped, tmp_path):
    result = run(env, "export-hsds", str(tmp_path / "hsds"))
    assert result.exit_code == 0, result.output
    assert f"{len(shipped.services)} services written" in result.output
    out = tmp_path / "imported.yaml"
    result = run(env, "import-hsds", str(tmp_path / "hsds"), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"{len(shipped.services)} service(s) written to {out}, 0 skipped" in result.output
    head = out.read_text(encoding="utf-8").split("spec_version")[0]
    assert "IMPORTED DATA, NOT VERIFIED" in head and "verify EVERY entry" in head
    assert len(load_directory(out).services) == len(shipped.services)


# -- the official examples ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["service_full.json", "service_list.json"])
def test_official_json_examples_are_read_and_their_uk_service_skipped_with_reasons(examples, shipped, name):
    result = import_file(examples / name, shipped.categories.values(), KC)
    assert result.directory.services == []
    (skipped,) = result.skipped
    assert skipped.record == f"'Community Counselling' ({EXAMPLE_ID})"
    reasons = "; ".join(skipped.reasons)
    assert "unknown taxonomy" in reasons
    assert (
        "no valid US phone number ('\"+44 1234 234567\"')" if name == "service_full.json" else "no phone"
    ) in reasons


@pytest.mark.parametrize("where", ["csv", "csv/datapackage.json", "csv/services.csv"])
def test_the_official_csv_datapackage_is_joined_into_nested_services(examples, shipped, where):
    (service,) = read_hsds(examples / where)
    assert service["id"] == EXAMPLE_ID and service["organization"]["name"] == "Example Organization Inc."
    assert [p["number"] for p in service["phones"]] == ['"+44 1234 234567"']
    (at,) = service["service_at_locations"]
    assert at["location"]["addresses"][0]["city"] == "MyCity"
    assert service["schedules"][0]["byday"] == "TH,FR" and service["languages"][0]["code"] == "ur"
    (skipped,) = import_file(examples / where, shipped.categories.values(), KC).skipped
    assert "no valid US phone number" in skipped.reasons[0] and "unknown taxonomy" in skipped.reasons[1]


def test_the_official_example_with_a_kc_phone_address_and_211_term_imports(examples, shipped, tmp_path):
    service = json.loads((examples / "service_full.json").read_text(encoding="utf-8"))
    service["phones"][0]["number"] = KC_PHONE
    service["attributes"][0]["taxonomy_term"].update(
        code="BD-1800.2000", name="Food Pantries", taxonomy="AIRS/211 LA County"
    )
    service["service_at_locations"][0]["location"]["addresses"][0].update(
        address_1="825 Euclid Ave",
        city="Kansas City",
        state_province="MO",
        postal_code="64124",
        address_type="physical",
    )
    service["languages"].append({"id": str(uuid.uuid4()), "code": "spa", "name": "Spanish"})
    result = one([service], shipped)
    (imported,) = result.directory.services
    assert (imported.id, imported.categories, imported.phones[0].number) == (
        "community-counselling",
        ["food"],
        "+18164744920",
    )
    assert [lang.code for lang in imported.languages] == ["ur", "es"]
    (place,) = imported.locations
    assert place.addresses[0].postal_code == "64124" and place.latitude is None  # latitude 100 is not a place
    assert imported.schedules == [], "byweekno, count and until cannot be held as weekly hours"
    notes = "\n".join(result.notes)
    assert "coordinates" in notes and "byweekno" in notes
    write_directory(result.directory, tmp_path / "resources.yaml", "service_full.json")
    assert load_directory(tmp_path / "resources.yaml").get("community-counselling")


def test_a_csv_datapackage_with_kc_data_imports(examples, shipped, tmp_path):
    folder = tmp_path / "csv"
    shutil.copytree(examples / "csv", folder, copy_function=shutil.copyfile)  # the originals are read-only

    def edit(name: str, old: str, new: str) -> None:
        path = folder / name
        assert old in path.read_text(encoding="utf-8")
        path.write_text(path.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")

    edit("phones.csv", '"""+44 1234 234567"""', KC_PHONE)
    edit("attributes.csv", "f28dd44b-0c4d-479f-8e90-4c52219a8b3c", EXAMPLE_ID)  # link the attribute to the service
    edit(
        "taxonomy_terms.csv",
        "3f7b145d-84af-42d7-8fae-eaca714b02b2,code,name,",
        "3f7b145d-84af-42d7-8fae-eaca714b02b2,RX-8450,Substance Use Disorder Treatment Programs,",
    )
    edit("taxonomy_terms.csv", ",taxonomy,eng,", ",211 LA,eng,")
    edit(
        "addresses.csv",
        "1-30 Main Street,MyVillage,MyCity,MyRegion,MyState,ABC 1234,US,postal",
        "4800 E 9th St,,Kansas City,,MO,64124,US,physical",
    )
    result = one(read_hsds(folder), shipped)
    (imported,) = result.directory.services
    assert imported.categories == ["recovery"] and imported.phones[0].extension == 100
    assert imported.attributes[0].taxonomy_term.code == "RX-8450", "the finer term is kept"
    assert imported.locations[0].addresses[0].address_1 == "4800 E 9th St"
    assert imported.organization.name == "Example Organization Inc."


def test_the_import_command_lists_what_it_skipped_and_writes_nothing_when_nothing_fits(env, examples, tmp_path):
    out = tmp_path / "resources.yaml"
    result = run(env, "import-hsds", str(examples / "csv"), "--out", str(out))
    assert result.exit_code == 1
    assert f"skipped: 'Community Counselling' ({EXAMPLE_ID}): no valid US phone number" in result.output
    assert "nothing to import" in result.output and not out.exists()


# -- skip reasons and taxonomy mapping (no reference data needed) -------------------------------


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"status": "defunct"}, "status is defunct"),
        ({"status": "inactive"}, "status is inactive"),
        ({"phones": []}, "no phone"),
        ({"phones": [{"id": "p", "number": "12"}]}, "no valid US phone number ('12')"),
        (
            {"attributes": term("XYZ-1", "Widgets", "local")},
            "unknown taxonomy: no term maps to one of our categories (terms: 'XYZ-1 Widgets')",
        ),
        ({"attributes": []}, "unknown taxonomy: no term maps to one of our categories (no taxonomy terms)"),
        ({"organization": None}, "no organization"),
    ],
)
def test_records_that_cannot_be_entries_are_skipped_with_the_reason(shipped, fields, reason):
    result = one([record(**fields)], shipped)
    assert result.directory.services == []
    assert reason in result.skipped[0].reasons


def test_a_record_never_verified_is_imported_and_flagged_stale(shipped):
    result = one([record(assured_date=None)], shipped)
    [service] = result.directory.services
    assert service.assured_date is None
    directory = Directory(result.directory.categories, result.directory.services)
    assert directory.stale(date(2026, 12, 1), 180) == [service]


def test_every_reason_of_a_record_is_given(shipped):
    (skipped,) = one([record(status="defunct", phones=[], attributes=[])], shipped).skipped
    assert len(skipped.reasons) == 3


def test_words_in_the_name_or_description_never_choose_a_category(shipped):
    result = one([record("Northeast Food Pantry", description="Free food and groceries", attributes=[])], shipped)
    assert result.directory.services == [] and "unknown taxonomy" in result.skipped[0].reasons[0]


@pytest.mark.parametrize(
    ("attributes", "category"),
    [
        (term("BH-1800.8500", "Rent Payment Assistance", "AIRS"), "housing"),  # below a category's code
        (term("LN-1500", "Community Clinics", "211 LA County"), "health"),  # L is a whole branch
        (term("RP-1500.1400-200.05", "Anything", "211 HSIS"), "safety"),
        (term("BH", "Housing/Shelter", "211 LA"), "housing"),
        (term(None, "Food Pantries"), "food"),  # a synonym
        (term("101-02", "Domestic Violence Shelters", "Open Eligibility"), "safety"),
        (term(None, "legal services"), "legal"),  # a category's own term name
        (term("BHX-1", "Something", "211 LA"), None),  # not below BH
        (term("BH-1800", "Something", "Open Eligibility"), None),  # a 211 code in another taxonomy
        (term("BH-1800", "Something"), None),  # a code without its taxonomy
    ],
)
def test_taxonomy_terms_map_by_code_in_the_same_taxonomy_or_by_name(shipped, attributes, category):
    result = one([record(attributes=attributes)], shipped)
    assert [s.categories for s in result.directory.services] == ([[category]] if category else [])


def test_what_does_not_fit_a_kept_record_is_left_out_and_noted(shipped):
    placeless = {
        "id": "l1",
        "location": {
            "id": "loc1",
            "location_type": "physical",
            "name": "Nowhere",
            "addresses": [
                {
                    "id": "a",
                    "address_1": "1 Main St",
                    "city": "X",
                    "state_province": "MO",
                    "postal_code": "00000",
                    "country": "US",
                    "address_type": "physical",
                }
            ],
        },
    }
    hours = [
        {"id": "s1", "freq": "WEEKLY", "byday": "MO", "opens_at": "9:00:00", "closes_at": "17:00-06:00"},
        {"id": "s2", "freq": "WEEKLY", "byday": "TU", "opens_at": "09:00Z", "closes_at": "17:00Z"},
        {"id": "s3", "freq": "WEEKLY", "byday": "WE", "interval": 2, "opens_at": "09:00", "closes_at": "12:00"},
    ]
    result = one(
        [
            record(
                email="not an email",
                url="example.org",
                schedules=hours,
                service_at_locations=[placeless],
                phones=[{"id": "p", "number": KC_PHONE, "type": "main"}],
                languages=[{"id": "l", "code": "spa"}, {"id": "m", "name": "Klingon"}],
            )
        ],
        shipped,
    )
    (service,) = result.directory.services
    assert (service.email, service.url, service.locations) == (None, None, [])
    assert [(s.byday, s.opens_at, s.closes_at) for s in service.schedules] == [("MO", "09:00", "17:00")]
    assert service.phones[0].number == "+18164744920" and service.phones[0].type is None
    assert [lang.code for lang in service.languages] == ["es"]
    notes = "\n".join(result.notes)
    for expected in (
        "email 'not an email'",
        "url 'example.org'",
        "unknown ZIP 00000",
        "another time zone",
        "interval",
        "language 'Klingon'",
    ):
        assert expected in notes


def test_a_virtual_only_place_stays_confidential_and_ids_are_unique(shipped):
    virtual = [{"id": "v", "location": {"id": "vl", "location_type": "virtual", "name": "Hotline"}}]
    result = one([record("Safe House", service_at_locations=virtual), record("Safe House")], shipped)
    first, second = result.directory.services
    assert first.x_bot.confidential and not first.locations and not second.x_bot.confidential
    assert (first.id, second.id) == ("safe-house", "safe-house-2")


# -- the import stays inside its folder ---------------------------------------------------------------------

SERVICES_CSV = "id,organization_id,name,status\ns1,o1,Pantry,active\n"


@pytest.mark.parametrize(
    "where", ["../secret/services.csv", "{outside}/services.csv", "sub/../../secret/services.csv", "link/services.csv"]
)
def test_a_datapackage_path_outside_its_folder_is_refused(env, tmp_path, where):
    """The replay: datapackage.json pointed import-hsds at files elsewhere on the machine."""
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "services.csv").write_text(SERVICES_CSV, encoding="utf-8")
    package = tmp_path / "package"
    package.mkdir()
    (package / "link").symlink_to(outside, target_is_directory=True)
    path = where.format(outside=outside)
    (package / "datapackage.json").write_text(
        json.dumps({"resources": [{"name": "services", "path": path}]}), encoding="utf-8"
    )
    with pytest.raises(HSDSError, match="outside the datapackage's folder"):
        read_hsds(package)
    result = run(env, "import-hsds", str(package), "--out", str(tmp_path / "resources.yaml"))
    assert result.exit_code == 1 and f"resource path {path!r} is outside" in result.output
    assert not (tmp_path / "resources.yaml").exists()


def test_a_datapackage_path_inside_its_folder_is_read(tmp_path):
    package = tmp_path / "package"
    (package / "tables").mkdir(parents=True)
    (package / "tables" / "services.csv").write_text(SERVICES_CSV, encoding="utf-8")
    (package / "datapackage.json").write_text(
        json.dumps({"resources": [{"name": "services", "path": "tables/./services.csv"}]}), encoding="utf-8"
    )
    assert [r["name"] for r in read_hsds(package)] == ["Pantry"]
