"""Open Referral HSDS 3.0 in and out: `peaceline export-hsds` and `peaceline import-hsds`.

Export turns each directory entry into one HSDS service object with everything nested
(organization, service_at_locations > location > addresses, phones, schedules, languages,
attributes > taxonomy_term). Every id is uuid5 of NAMESPACE and the entry's own id plus a
path ("legal-aid-wmo-housing/phone/0"), and keys are sorted, so two exports of one directory
are byte-identical. `x_bot` stays home; a confidential service (a DV shelter) goes out as a
virtual location that gives only its hotline.

HSDS has no field for two things the directory needs back, so they travel as attributes:
link_type "peaceline_category" (value: the category key; taxonomy_term: the category's
term) and "peaceline_id" (value: the entry's id).

Import reads HSDS JSON (an array of services, one service, or an API page with `contents`)
or a CSV datapackage, keeps what fits the directory and says what it skipped and why. A
record's categories come from its attributes' taxonomy terms only: our own category
attributes; else a term whose code is a category's code or below it in the same taxonomy
(211 LA / AIRS codes are a tree); else a term named like a category's term or in SYNONYMS.
Words in a record's name or description are never used: a DV shelter that mentions meals
must not be listed for food, and a wrong list is worse than an operator adding a term.
"""

from __future__ import annotations

import csv
import json
import re
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeGuard
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from bot.directory.geo import zip_centroid
from bot.directory.resources import (
    Attribute,
    Category,
    Directory,
    DirectoryFile,
    Language,
    Location,
    Organization,
    Phone,
    Schedule,
    Service,
    Slug,
    TaxonomyTerm,
    load_directory,
)

NAMESPACE = uuid.UUID("84cb541d-18dd-4028-b138-3a18cae8af35")  # never change it: every exported id derives from it
CATEGORY_LINK = "peaceline_category"
ID_LINK = "peaceline_id"
ID_TERM = TaxonomyTerm(code="service_id", name="peaceline service id", taxonomy="peaceline")
STATUSES = ("active", "inactive", "defunct", "temporarily closed")
CLOSED = ("inactive", "defunct")

# Term names (compared without case or punctuation) that mean a category whatever their code,
# besides the categories' own term names. Whole names only, never words inside a name.
SYNONYMS = {
    "housing": (
        "housing",
        "shelter",
        "shelters",
        "emergency shelter",
        "homeless shelter",
        "housing and shelter",
        "rent payment assistance",
        "rental assistance",
        "utility assistance",
        "eviction prevention",
        "help pay for housing",
        "help pay for utilities",
    ),
    "food": (
        "food",
        "food pantry",
        "food pantries",
        "food bank",
        "food banks",
        "emergency food",
        "meals",
        "soup kitchens",
        "congregate meals",
        "home delivered meals",
    ),
    "health": (
        "health",
        "health care",
        "medical care",
        "primary care",
        "community clinics",
        "dental care",
        "mental health",
        "mental health care",
        "mental health services",
        "behavioral health",
    ),
    "legal": ("legal", "legal services", "legal aid", "legal assistance", "legal counseling"),
    "recovery": (
        "substance use disorder services",
        "substance abuse services",
        "substance use treatment",
        "substance abuse treatment",
        "addiction",
        "addiction and recovery",
        "detoxification",
    ),
    "safety": (
        "domestic violence",
        "domestic violence hotlines",
        "domestic violence shelters",
        "family violence",
        "intimate partner violence",
        "sexual assault",
        "sexual assault services",
    ),
    "violence": (
        "violence prevention",
        "violence interruption",
        "community violence intervention",
        "hospital based violence intervention",
        "gang intervention",
        "mediation",
        "conflict resolution",
    ),
    "loss": (
        "victim services",
        "crime victim support",
        "crime victim compensation",
        "grief counseling",
        "bereavement support",
        "bereavement support groups",
        "homicide survivor support",
        "funeral assistance",
    ),
}
# A warning only, never a category: these words make an operator check that an address may be texted.
_SHELTER_WORDS = re.compile(r"\b(shelter|domestic|abuse|violence|refuge|safe ?house)", re.IGNORECASE)
# The bot matches a resident's language by its two-letter code; feeds often use ISO 639-2/3.
LANGUAGE_CODES = {"eng": "en", "spa": "es"}

HEADER = """\
# ============================================================================
#  IMPORTED DATA, NOT VERIFIED. Written by `peaceline import-hsds` from
#  {source}
#  Nobody has checked these entries with the organizations. Before residents
#  see this list, an operator must verify EVERY entry (call it), fix it, set
#  `assured_date` to the day it was verified, add what HSDS has no field for
#  under `x_bot` (keywords, priority, tags, national lines, short numbers,
#  and `confidential: true` with no locations for any shelter whose address
#  must never be texted), and only then set `sample_data: false`.
#  Format: the header of the shipped resources.yaml and bot/resources.py.
# ============================================================================
"""


class HSDSError(ValueError):
    """The input is not HSDS data this importer can read; the message names the file."""


# ---------------------------------------------------------------- export


def hsds_id(path: str) -> str:
    """The stable id of one exported object: uuid5 of NAMESPACE and its path."""
    return str(uuid.uuid5(NAMESPACE, path))


def export_services(directory: Directory, timezone: str) -> list[dict]:
    """Every entry as a nested HSDS 3.0 service object, in file order."""
    return [service_object(s, directory.categories, timezone) for s in directory.services]


def write_export(directory: Directory, out_dir: Path, timezone: str) -> Path:
    """Write DIR/services.json (sorted keys, so an unchanged directory writes the same bytes)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "services.json"
    text = json.dumps(export_services(directory, timezone), ensure_ascii=False, indent=2, sort_keys=True)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def service_object(service: Service, categories: dict[str, Category], timezone: str) -> dict:
    sid, own = hsds_id(service.id), service.id
    organization = _organization(service.organization)
    phones = [
        _compact(
            {
                "id": hsds_id(f"{own}/phone/{i}"),
                "service_id": sid,
                "number": p.number,
                "extension": p.extension,
                "type": p.type,
                "description": p.description,
            }
        )
        for i, p in enumerate(service.phones)
    ]
    schedules = [
        _compact(
            {
                "id": hsds_id(f"{own}/schedule/{i}"),
                "service_id": sid,
                "freq": s.freq,
                "byday": s.byday,
                "opens_at": s.opens_at,
                "closes_at": s.closes_at,
                "description": s.description,
                "notes": f"Times are local to {timezone}.",
            }
        )
        for i, s in enumerate(service.schedules)
    ]
    languages = [
        _compact({"id": hsds_id(f"{own}/language/{i}"), "service_id": sid, "code": lang.code, "name": lang.name})
        for i, lang in enumerate(service.languages)
    ]
    return _compact(
        {
            "id": sid,
            "name": service.name,
            "description": service.description,
            "status": service.status,
            "email": service.email,
            "url": service.url,
            "assured_date": service.assured_date.isoformat() if service.assured_date else None,
            "eligibility_description": service.eligibility_description,
            "fees_description": service.fees_description,
            "organization_id": organization["id"],
            "organization": organization,
            "phones": phones,
            "schedules": schedules,
            "languages": languages,
            "attributes": _attributes(service, categories, sid),
            "service_at_locations": [
                {
                    "id": hsds_id(f"{own}/service_at_location/{key}"),
                    "service_id": sid,
                    "location_id": loc["id"],
                    "location": loc,
                }
                for key, loc in _locations(service, phones)
            ],
        }
    )


def _compact(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if v is not None and v != []}


def _organization(org: Organization) -> dict:
    # keyed by name: services of one organization share its object; ':' never occurs in an entry id
    return _compact(
        {
            "id": hsds_id(f"organization:{org.name}"),
            "name": org.name,
            "description": org.name,  # required by HSDS; the directory keeps none
            "website": org.website,
        }
    )


def _term(term: TaxonomyTerm) -> dict:
    return {
        "id": hsds_id(f"taxonomy_term:{term.taxonomy}:{term.code}"),
        "code": term.code,
        "name": term.name,
        "description": term.name,
        "taxonomy": term.taxonomy,
    }


def _attributes(service: Service, categories: dict[str, Category], sid: str) -> list[dict]:
    links: list[tuple[str, str | None, str | None, TaxonomyTerm]] = [
        (key, CATEGORY_LINK, key, categories[key].taxonomy_term) for key in service.categories
    ]
    links += [(str(i), None, a.value, a.taxonomy_term) for i, a in enumerate(service.attributes)]
    links.append(("id", ID_LINK, service.id, ID_TERM))
    attributes = []
    for key, link_type, value, term in links:
        body = _term(term)
        attributes.append(
            _compact(
                {
                    "id": hsds_id(f"{service.id}/attribute/{key}"),
                    "link_entity": "service",
                    "link_id": sid,
                    "link_type": link_type,
                    "value": value,
                    "taxonomy_term_id": body["id"],
                    "taxonomy_term": body,
                }
            )
        )
    return attributes


def _locations(service: Service, phones: list[dict]) -> list[tuple[str, dict]]:
    """(path key, HSDS location) for each place; a confidential service gets one virtual location."""
    if service.x_bot.confidential:
        # the shelter's address must never leave the directory: no address, no coordinates, the hotline only
        return [
            (
                "virtual",
                {
                    "id": hsds_id(f"{service.id}/location/virtual"),
                    "location_type": "virtual",
                    "name": "Confidential location",
                    "description": "The address is confidential: call the hotline.",
                    "phones": phones,
                },
            )
        ]
    places = []
    for i, loc in enumerate(service.locations):
        lid = hsds_id(f"{service.id}/location/{i}")
        addresses = [
            _compact(
                {
                    "id": hsds_id(f"{service.id}/location/{i}/address/{j}"),
                    "location_id": lid,
                    "address_type": "physical",
                    **a.model_dump(),
                }
            )
            for j, a in enumerate(loc.addresses)
        ]
        places.append(
            (
                str(i),
                _compact(
                    {
                        "id": lid,
                        "location_type": "physical",
                        "name": loc.name,
                        "latitude": loc.latitude,
                        "longitude": loc.longitude,
                        "addresses": addresses,
                    }
                ),
            )
        )
    return places


# ---------------------------------------------------------------- reading HSDS


def read_hsds(path: Path) -> list[dict]:
    """Nested service objects from a JSON file, a CSV datapackage (folder, datapackage.json or one of its
    CSV files) or an export folder."""
    path = Path(path)
    if path.is_dir():
        if (path / "services.csv").is_file() or (path / "datapackage.json").is_file():
            return read_datapackage(path)
        if (path / "services.json").is_file():
            return read_hsds(path / "services.json")
        raise HSDSError(f"{path}: no services.csv or services.json in this folder")
    if path.name == "datapackage.json" or path.suffix == ".csv":
        return read_datapackage(path.parent)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as err:
        raise HSDSError(f"{path}: not readable JSON: {err}") from None
    if isinstance(data, dict) and isinstance(data.get("contents"), list):
        data = data["contents"]  # a page of the HSDS API's service list
    records = [data] if isinstance(data, dict) else data
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise HSDSError(f"{path}: expected an HSDS service object or an array of them")
    return records


def read_datapackage(folder: Path) -> list[dict]:
    """Join a CSV datapackage's tables into nested service objects, as the JSON form has them."""
    files = _table_files(folder)

    def rows(*names: str) -> list[dict]:
        return next((_csv_rows(files[n]) for n in names if n in files), [])

    taxonomies = _by_id(rows("taxonomies"))
    terms = _by_id({**t, "taxonomy_detail": taxonomies.get(t.get("taxonomy_id"))} for t in rows("taxonomy_terms"))
    attributes = _grouped(
        ({**a, "taxonomy_term": terms.get(a.get("taxonomy_term_id"))} for a in rows("attributes")), "link_id"
    )
    phones, schedules = _by_owner(rows("phones")), _by_owner(rows("schedules"))
    addresses = _grouped(rows("addresses"), "location_id")
    locations = _by_id(
        {**loc, "addresses": addresses.get(loc.get("id"), []), **_owned(phones, schedules, "location", loc.get("id"))}
        for loc in rows("locations")
    )
    organizations = _by_id({**o, **_owned(phones, {}, "organization", o.get("id"))} for o in rows("organizations"))
    at_locations = _grouped(
        (
            {
                **sal,
                "location": locations.get(sal.get("location_id")),
                **_owned(phones, schedules, "service_at_location", sal.get("id")),
            }
            for sal in rows("service_at_location", "service_at_locations")
        ),
        "service_id",
    )
    languages = _grouped(rows("languages"), "service_id")
    return [
        {
            **s,
            "organization": organizations.get(s.get("organization_id")),
            **_owned(phones, schedules, "service", s.get("id")),
            "languages": languages.get(s.get("id"), []),
            "attributes": attributes.get(s.get("id"), []),
            "service_at_locations": at_locations.get(s.get("id"), []),
        }
        for s in rows("services")
    ]


def _table_files(folder: Path) -> dict[str, Path]:
    """Table name -> CSV file: the folder's files, then any the datapackage.json puts elsewhere."""
    files = {p.stem: p for p in folder.glob("*.csv")}
    try:
        descriptor = json.loads((folder / "datapackage.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        descriptor = {}  # none, or not JSON (the official examples ship a symlink stub)
    resources = descriptor.get("resources") if isinstance(descriptor, dict) else None
    for resource in resources if isinstance(resources, list) else []:
        if isinstance(resource, dict) and isinstance(resource.get("path"), str):
            files.setdefault(Path(resource["path"]).stem, _inside(folder, resource["path"]))
    if "services" not in files:
        raise HSDSError(f"{folder}: no services.csv in this datapackage")
    return files


def _inside(folder: Path, raw: str) -> Path:
    """A resource path from datapackage.json, refused unless it stays inside the datapackage's folder
    (no absolute path, no "..", no link out): an import reads only the files it was given."""
    path = Path(raw)
    if path.is_absolute() or ".." in path.parts or not (folder / path).resolve().is_relative_to(folder.resolve()):
        raise HSDSError(
            f"{folder / 'datapackage.json'}: resource path {raw!r} is outside the datapackage's "
            "folder; only files inside it are read"
        )
    return folder / path


def _csv_rows(path: Path) -> list[dict]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return [
                {k: (v.strip() or None) if isinstance(v, str) else v for k, v in row.items() if k}
                for row in csv.DictReader(handle)
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise HSDSError(f"{path}: not readable CSV: {err}") from None


def _by_id(rows: Iterable[dict]) -> dict[str | None, dict]:  # looked up by a field that may be missing
    return {row["id"]: row for row in rows if row.get("id")}


def _grouped(rows: Iterable[dict], key: str) -> dict[str | None, list[dict]]:
    groups: dict[str | None, list[dict]] = {}
    for row in rows:
        if row.get(key):
            groups.setdefault(row[key], []).append(row)
    return groups


_OWNERS = ("service", "service_at_location", "location", "organization")


def _by_owner(rows: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """Phone or schedule rows under one owner each, the service first: the directory keeps them per service."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        owner = next(((kind, row[f"{kind}_id"]) for kind in _OWNERS if row.get(f"{kind}_id")), None)
        if owner:
            groups.setdefault(owner, []).append(row)
    return groups


def _owned(phones: dict, schedules: dict, kind: str, owner_id: str | None) -> dict[str, list[dict]]:
    return {"phones": phones.get((kind, owner_id), []), "schedules": schedules.get((kind, owner_id), [])}


# ---------------------------------------------------------------- import


@dataclass(frozen=True)
class Skipped:
    record: str  # its HSDS name and id, as the operator will look it up in the source
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.record}: {'; '.join(self.reasons)}"


@dataclass(frozen=True)
class Imported:
    directory: DirectoryFile
    skipped: list[Skipped]
    notes: list[str]  # about records that were kept: what was left out of them, what to check


def import_file(path: Path, categories: Iterable[Category], tz: ZoneInfo) -> Imported:
    """Read HSDS data at `path` and convert it (see `import_services`)."""
    return import_services(read_hsds(path), categories, tz)


def import_services(records: list[dict], categories: Iterable[Category], tz: ZoneInfo) -> Imported:
    """HSDS service objects as a directory (sample_data: unverified), plus what was skipped and why.

    `categories` are the directory's own (their names in each language are the bot's, not HSDS
    data); a category's taxonomy term is replaced by the one the data's category attributes carry.
    """
    job = _Import({c.key: c for c in categories}, _offsets(tz))
    services: list[Service] = []
    skipped: list[Skipped] = []
    for n, record in enumerate(records, 1):
        result = job.convert(record, n)
        if isinstance(result, Service):
            services.append(result)
        else:
            skipped.append(result)
    rebuilt = [
        c.model_copy(update={"taxonomy_term": job.carried.get(c.key, c.taxonomy_term)}) for c in job.categories.values()
    ]
    directory = DirectoryFile(spec_version="3.0", sample_data=True, categories=rebuilt, services=services)
    return Imported(directory, skipped, job.notes)


def dump_directory(directory: DirectoryFile, source: str) -> str:
    """The directory as resources.yaml text, under a header that says it is unverified imported data."""
    data = directory.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120)
    return HEADER.format(source=source) + body


def write_directory(directory: DirectoryFile, out: Path, source: str) -> None:
    """Write `out` only once its text passes load_directory, so a failed import leaves the file as it was."""
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(dump_directory(directory, source), encoding="utf-8")
    try:
        load_directory(tmp)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass
class _Import:
    categories: dict[str, Category]
    offsets: frozenset[str]  # UTC offsets of the program's zone: a time with another one is in another zone
    carried: dict[str, TaxonomyTerm] = field(default_factory=dict)  # category key -> term from the data
    notes: list[str] = field(default_factory=list)
    used_ids: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.names = {_norm(name): key for key, names in SYNONYMS.items() for name in names}
        self.names |= {_norm(c.taxonomy_term.name): c.key for c in self.categories.values()}

    def convert(self, record: dict, n: int) -> Service | Skipped:
        label = _label(record, n)
        attributes = _dicts(record.get("attributes"))
        phones, why_no_phone = _phones(record)
        keys = self.category_keys(attributes)
        reasons = _missing(record) + ([why_no_phone] if not phones else [])
        if not keys:
            reasons.append(_no_category(attributes))
        if reasons:
            return Skipped(label, tuple(reasons))
        notes: list[str] = []
        organization = _obj(record.get("organization"))
        locations, virtual = _locations_of(record, notes)
        data = {
            "id": self.new_id(record, attributes),
            "name": record["name"],
            "description": record.get("description") or record["name"],
            "status": record["status"],
            "organization": {
                "name": organization["name"],
                "website": _optional(Organization, "website", organization.get("website"), notes),
            },
            "categories": keys,
            "attributes": _attributes_of(attributes, notes),
            "phones": phones,
            "locations": locations,
            "schedules": self.schedules(record, notes),
            "languages": _languages_of(record, notes),
            "eligibility_description": record.get("eligibility_description"),
            "fees_description": record.get("fees_description"),
            "assured_date": _date(record.get("assured_date")),
            "email": _optional(Service, "email", record.get("email"), notes),
            "url": _optional(Service, "url", record.get("url"), notes),
            # our export shows a confidential service as a virtual location only: it stays confidential
            "x_bot": {"confidential": virtual and not locations},
        }
        try:
            service = Service.model_validate(data)
        except ValidationError as err:
            return Skipped(label, tuple(_why(err, all_errors=True)))
        if locations and ("safety" in keys or _SHELTER_WORDS.search(f"{service.name} {service.description}")):
            notes.append("has a street address: make sure it is not a shelter whose address must stay confidential")
        self.notes += [f"{label}: {note}" for note in notes]
        return service

    def category_keys(self, attributes: list[dict]) -> list[str]:
        """Our own category attributes when there are any (an export of ours; their terms are kept for the
        categories), else what the terms map to."""
        own = [a for a in attributes if a.get("link_type") == CATEGORY_LINK and a.get("value") in self.categories]
        for a in own:
            term = _taxonomy_term(a.get("taxonomy_term"))
            if term:
                self.carried.setdefault(a["value"], term)
        keys = [a["value"] for a in own] or [self.category_for(_obj(a.get("taxonomy_term"))) for a in attributes]
        return list(dict.fromkeys(k for k in keys if k))

    def category_for(self, term: dict) -> str | None:
        code, name, family = _text(term.get("code")).upper(), _text(term.get("name")), _family(_taxonomy_name(term))
        by_code = [
            c
            for c in self.categories.values()
            if code
            and family == _family(c.taxonomy_term.taxonomy)
            and _under(code, c.taxonomy_term.code.upper(), tree=family == "211")
        ]
        if by_code:  # the most specific category code wins
            return max(by_code, key=lambda c: len(c.taxonomy_term.code)).key
        return self.names.get(_norm(name)) if name else None

    def new_id(self, record: dict, attributes: list[dict]) -> str:
        """The id our export carried, else one made from the name; unique in this import."""
        carried = next((a.get("value") for a in attributes if a.get("link_type") == ID_LINK), None)
        base = carried if _is_slug(carried) else _slug(record["name"])
        new, n = base, 1
        while new in self.used_ids:
            n += 1
            new = f"{base}-{n}"
        self.used_ids.add(new)
        return new

    def schedules(self, record: dict, notes: list[str]) -> list[Schedule]:
        """The service's hours, else those of its only place (the hours of several places would mix)."""
        rows = _dicts(record.get("schedules"))
        at = _dicts(record.get("service_at_locations"))
        if not rows and len(at) == 1:
            rows = _dicts(at[0].get("schedules")) or _dicts(_obj(at[0].get("location")).get("schedules"))
        kept = []
        for row in rows:
            try:
                _expressible(row)
                times = {k: _local_time(row.get(k), self.offsets) for k in ("opens_at", "closes_at")}
            except ValueError as err:
                notes.append(f"left out hours {_brief(row)}: {err}")
                continue
            schedule, why = _validated(Schedule, {**_pick(row, "freq", "byday", "description"), **times})
            if schedule:
                kept.append(schedule)
            else:
                notes.append(f"left out hours {_brief(row)}: {why}")
        return kept


def _phones(record: dict) -> tuple[list[Phone], str]:
    """The service's valid US phones, else its places', else its organization's; and why there are none."""
    groups = [_dicts(record.get("phones"))]
    for at in _dicts(record.get("service_at_locations")):
        groups += [_dicts(at.get("phones")), _dicts(_obj(at.get("location")).get("phones"))]
    groups.append(_dicts(_obj(record.get("organization")).get("phones")))
    rejected = []
    for group in groups:
        kept = []
        for row in group:
            # a phone type HSDS allows but the directory does not must not cost the number
            phone, _ = _validated(Phone, _pick(row, "number", "extension", "type", "description"), _pick(row, "number"))
            if phone:
                kept.append(phone)
            else:
                rejected.append(repr(row.get("number")))
        if kept:
            return kept, ""
    return [], f"no valid US phone number ({', '.join(dict.fromkeys(rejected))})" if rejected else "no phone"


def _attributes_of(attributes: list[dict], notes: list[str]) -> list[Attribute]:
    """Terms beyond the categories, kept as they came (our own category and id attributes are not)."""
    kept = []
    for a in attributes:
        if a.get("link_type") in (CATEGORY_LINK, ID_LINK):
            continue
        term = _taxonomy_term(a.get("taxonomy_term"))
        if term:
            kept.append(Attribute(taxonomy_term=term, value=_text(a.get("value")) or None))
        else:
            notes.append(f"left out attribute {a.get('id')}: no taxonomy term with a code, name and taxonomy")
    return kept


def _locations_of(record: dict, notes: list[str]) -> tuple[list[Location], bool]:
    """The places a resident can go, and whether the record had a virtual location."""
    places, virtual = [], False
    for at in _dicts(record.get("service_at_locations")):
        location = _obj(at.get("location"))
        if location.get("location_type") == "virtual":
            virtual = True
        elif place := _place(location, notes):
            places.append(place)
    return places, virtual


def _languages_of(record: dict, notes: list[str]) -> list[Language]:
    kept = []
    for row in _dicts(record.get("languages")):
        code = _text(row.get("code")).lower()
        language, why = _validated(Language, {"code": LANGUAGE_CODES.get(code, code), **_pick(row, "name")})
        if language:
            kept.append(language)
        else:
            notes.append(f"left out language {row.get('name') or code!r}: {why}")
    return kept


def _missing(record: dict) -> list[str]:
    """Why a record cannot be a directory entry, apart from phones and categories."""
    reasons = []
    status = record.get("status")
    if status in CLOSED:
        reasons.append(f"status is {status}")
    elif status not in STATUSES:
        reasons.append(f"unknown status {status!r}")
    if not _text(record.get("name")):
        reasons.append("no name")
    if not _text(_obj(record.get("organization")).get("name")):
        reasons.append("no organization")
    return reasons


def _no_category(attributes: list[dict]) -> str:
    terms = [
        f"{_text(t.get('code'))} {_text(t.get('name'))}".strip()
        for t in (_obj(a.get("taxonomy_term")) for a in attributes)
    ]
    terms = [t for t in terms if t]
    found = f"terms: {', '.join(repr(t) for t in terms)}" if terms else "no taxonomy terms"
    return f"unknown taxonomy: no term maps to one of our categories ({found})"


def _place(loc: dict, notes: list[str]) -> Location | None:
    """A location with a street address the bot can place (coordinates, or a known ZIP); else None, noted."""
    name = loc.get("name") or loc.get("id")
    addresses = [
        {
            **_pick(a, "address_1", "address_2", "city", "state_province", "postal_code"),
            "country": a.get("country") or "US",
        }
        for a in _dicts(loc.get("addresses"))
        if a.get("address_type") != "postal"
    ]  # postal: mail only
    data = {
        "name": loc.get("name"),
        "addresses": addresses,
        "latitude": loc.get("latitude"),
        "longitude": loc.get("longitude"),
    }
    place, why = _validated(Location, data, {**data, "latitude": None, "longitude": None})
    if place is None:
        notes.append(
            f"left out location {name!r}: {why}" if addresses else f"left out location {name!r}: no street address"
        )
        return None
    if place.latitude is None and data["latitude"] is not None:
        notes.append(f"location {name!r}: left out its coordinates ({why})")
    if place.latitude is None and zip_centroid(place.addresses[0].postal_code) is None:
        notes.append(f"left out location {name!r}: unknown ZIP {place.addresses[0].postal_code} and no coordinates")
        return None
    return place


def _validated(model: type[BaseModel], *candidates: dict) -> tuple[Any, str]:
    """The first candidate the model accepts (or None), and why the first candidate failed ("" if it did not)."""
    why = ""
    for data in candidates:
        try:
            return model.model_validate(data), why
        except ValidationError as err:
            why = why or _why(err)[0]
    return None, why


def _why(err: ValidationError, *, all_errors: bool = False) -> list[str]:
    lines = [
        f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg'].removeprefix('Value error, ')}" for e in err.errors()
    ]
    return lines if all_errors else lines[:1]


def _optional(model: type[BaseModel], name: str, value: Any, notes: list[str]) -> Any:
    """The value if the model's field accepts it, else None: a malformed email must not cost the record."""
    if value in (None, ""):
        return None
    try:
        return TypeAdapter(model.model_fields[name].annotation or Any).validate_python(value)
    except ValidationError:
        notes.append(f"left out {name} {value!r}: not valid")
        return None


def _taxonomy_term(term: Any) -> TaxonomyTerm | None:
    if not isinstance(term, dict):
        return None
    found, _ = _validated(
        TaxonomyTerm, {"code": term.get("code"), "name": term.get("name"), "taxonomy": _taxonomy_name(term)}
    )
    return found


def _taxonomy_name(term: dict) -> str:
    detail = term.get("taxonomy_detail")
    return _text(term.get("taxonomy")) or (_text(detail.get("name")) if isinstance(detail, dict) else "")


def _family(taxonomy: str) -> str:
    """211 LA, AIRS and 211 HSIS are names of one taxonomy; other taxonomies are compared by name."""
    name = _norm(taxonomy)
    return "211" if re.search(r"\b(211|airs|hsis)\b", name) else name


def _under(code: str, parent: str, *, tree: bool) -> bool:
    """`code` is `parent`, or (in the 211 LA tree: L > LN > LN-1500 > LN-1500.1500-100) below it."""
    if code == parent:
        return True
    if not tree or not code.startswith(parent):
        return False
    return len(parent) == 1 or code[len(parent)] in "-."


def _offsets(tz: ZoneInfo) -> frozenset[str]:
    year = datetime.now(tz).year
    offsets = {datetime(year, month, 15, tzinfo=tz).strftime("%z") for month in (1, 7)}
    return frozenset(f"{o[:3]}:{o[3:]}" for o in offsets)


_RRULE_LIMITS = ("interval", "byweekno", "bymonthday", "byyearday", "count", "until")


def _expressible(row: dict) -> None:
    """Raise ValueError for a rule the directory's hours cannot hold: read as plain weekly, it would lie."""
    plain = {"interval": "1"}  # every first week is every week
    limits = [k for k in _RRULE_LIMITS if _text(row.get(k)) not in ("", plain.get(k))]
    if limits:
        raise ValueError(f"uses {', '.join(limits)}, which the directory cannot express")


_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::\d{2}(?:\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2})?$")


def _local_time(value: Any, offsets: frozenset[str]) -> str | None:
    """'HH:MM' of an HSDS time ('9:00', '10:00:00', '09:00-06:00'), read as the program's local time.

    Raises ValueError for a time in another zone: converting it would be wrong for half the year.
    """
    match = _TIME.match(_text(value))
    if not match:
        return _text(value) or None  # the Schedule model says what is wrong with it
    hours, minutes, offset = match.groups()
    if offset:
        offset = "+00:00" if offset == "Z" else f"{offset[:3]}:{offset[-2:]}"
        if offset not in offsets:
            raise ValueError(f"{_text(value)!r} is in another time zone than the program's")
    return f"{int(hours):02d}:{minutes}"


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(_text(value)[:10])
    except ValueError:
        return None


def _is_slug(value: Any) -> TypeGuard[str]:
    try:
        TypeAdapter(Slug).validate_python(value, strict=True)
    except ValidationError:
        return False
    return True


def _slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:60].strip("-") or "service"


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.casefold().replace("&", " and ")).split())


def _label(record: dict, n: int) -> str:
    name = _text(record.get("name"))
    ident = _text(record.get("id"))
    return f"{name!r} ({ident})" if name and ident else repr(name) if name else f"record #{n} ({ident or 'no id'})"


def _brief(row: dict) -> str:
    return " ".join(_text(row.get(k)) for k in ("freq", "byday", "opens_at", "closes_at") if row.get(k)) or "(empty)"


def _pick(row: Any, *names: str) -> dict:
    return {k: row.get(k) for k in names if row.get(k) not in (None, "")} if isinstance(row, dict) else {}


def _dicts(value: Any) -> list[dict]:
    """The objects of a JSON array; anything else is no objects."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _obj(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return str(value).strip() if value is not None else ""
