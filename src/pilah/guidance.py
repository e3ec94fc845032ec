"""Regional guidance packs: how to dispose of each class where the user lives, with the public rule behind it.

A pack is one YAML file per region (`pilah/resources/guidance/<region>.yaml` ship with Pilah; a city can write
its own, check it with `pilah guidance check FILE` and put it in the folder that `PILAH_GUIDANCE_DIR` names, where
the app, the API and the CLI find it beside the bundled ones). It names the region's waste streams (with the colour
of their bin where the region has one) and, for each of the model's classes, the stream, the preparation
steps, where it goes, what not to do, the look-alike items that go elsewhere (used tissue is not paper) and the
source of the rule, in one or more languages; and the safe stream for a photo Pilah cannot place (`when_unsure`).
docs/guidance.md explains how to write one.
"""

from __future__ import annotations

import os
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, model_validator

from pilah.errors import GuidanceError

CLASSES = (
    "battery",
    "biological",
    "brown-glass",
    "cardboard",
    "clothes",
    "green-glass",
    "metal",
    "paper",
    "plastic",
    "shoes",
    "trash",
    "white-glass",
)
DEFAULT_REGION = "id"  # Indonesia, as the original app
GUIDANCE_DIR_ENV = "PILAH_GUIDANCE_DIR"  # a folder of more packs (<region>.yaml), e.g. a city's own
LANGUAGES = ("id", "en")  # the languages of Pilah's own texts; a pack provides one or both
REGION_PATTERN = r"^[a-z]{2}(-[a-z0-9]{2,8})?$"  # e.g. "id", "de", "us-sf"
BADGE_COLOURS = ("red", "orange", "yellow", "green", "blue", "violet", "gray")  # what Streamlit's badges can show
MAX_LOOKALIKES = 6  # per class: the question on the verdict card must stay short enough for a phone's first screen
MAX_ITEM_CHARS = 40  # one look-alike item's name, e.g. "Thermal receipts"
MAX_LINE_CHARS = 200  # the when-unsure line
BIN_COLOURS = ("yellow", "blue", "green", "brown", "grey", "black", "white", "red", "orange", "purple")
Language = Literal["id", "en"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """The public rule an entry follows: where a reader can check it."""

    url: HttpUrl
    title: str = Field(min_length=3)
    language: str | None = Field(None, pattern=r"^[a-z]{2}$")  # the title's language, when a page should say it


class Stream(_Strict):
    """One of the region's waste streams, e.g. Germany's yellow bin for packaging."""

    name: dict[Language, str]
    icon: str = Field(min_length=1, max_length=4)  # one emoji
    badge: Literal[BADGE_COLOURS]  # the colour the app draws the stream's name in
    bin_colour: Literal[BIN_COLOURS] | None = None  # the colour of its bin or container, if the region has one


class Words(_Strict):
    summary: str = Field(min_length=3)
    prepare: list[str] = Field(min_length=1)
    where: list[str] = Field(min_length=1)
    dont: list[str] = Field(default_factory=list)


class Lookalike(_Strict):
    """An item that looks like the class but goes to another stream here: a used tissue looks like paper and is
    residual waste. The app asks about these on the verdict card, one tap to switch."""

    item: dict[Language, str]  # 2 to MAX_ITEM_CHARS characters each (checked with the pack's other rules)
    stream: str


class Unsure(_Strict):
    """Where a photo goes when Pilah cannot place it (no grade holds, or it is unlike the waste it learned): the
    region's safe default, and one line on what to do."""

    stream: str
    id: str | None = Field(None, min_length=3, max_length=MAX_LINE_CHARS)
    en: str | None = Field(None, min_length=3, max_length=MAX_LINE_CHARS)


class Rule(_Strict):
    """How to dispose of one class in this region, in each language the pack provides."""

    stream: str
    source: Source
    exceptions: list[Lookalike] = Field(default_factory=list, max_length=MAX_LOOKALIKES)
    id: Words | None = None
    en: Words | None = None

    @property
    def words(self) -> dict[str, Words]:
        return {lang: w for lang, w in (("id", self.id), ("en", self.en)) if w is not None}


class Pack(_Strict):
    region: str = Field(pattern=REGION_PATTERN)
    name: dict[Language, str]
    languages: list[Language] = Field(min_length=1)
    streams: dict[str, Stream]
    when_unsure: Unsure
    classes: dict[str, Rule]

    @model_validator(mode="after")
    def _complete(self) -> Pack:
        problems = _structure_problems(self.model_dump())
        streams = list(self.streams)
        for label, rule in self.classes.items():
            for language in self.languages:
                if language not in rule.words:
                    problems.append(f"classes.{label}: no {language!r} words, though the pack's languages list it")
            for i, lookalike in enumerate(rule.exceptions):
                place = f"classes.{label}.exceptions.{i}"
                if lookalike.stream not in self.streams:
                    problems.append(f"{place}.stream: {lookalike.stream!r} is not one of the streams {streams}")
                elif lookalike.stream == rule.stream:
                    problems.append(f"{place}.stream: {lookalike.stream!r} is the class's own stream")
                problems += [f"{place}.item: no {lang!r} name" for lang in self.languages if lang not in lookalike.item]
                problems += [
                    f"{place}.item.{lang}: needs 2 to {MAX_ITEM_CHARS} characters, has {len(text)}"
                    for lang, text in lookalike.item.items()
                    if not 2 <= len(text) <= MAX_ITEM_CHARS
                ]
        if self.when_unsure.stream not in self.streams:
            problems.append(f"when_unsure.stream: {self.when_unsure.stream!r} is not one of the streams {streams}")
        problems += [
            f"when_unsure: no {lang!r} line" for lang in self.languages if getattr(self.when_unsure, lang) is None
        ]
        for key, stream in self.streams.items():
            problems += [f"streams.{key}.name: no {lang!r} name" for lang in self.languages if lang not in stream.name]
        problems += [f"name: no {lang!r} name" for lang in self.languages if lang not in self.name]
        if problems:
            raise ValueError("; ".join(problems))
        return self


class StreamAdvice(BaseModel):
    """One of the region's streams as the app, the API and the CLI show it."""

    model_config = ConfigDict(frozen=True)

    stream: str
    stream_name: str
    icon: str
    badge: str
    bin_colour: str | None


class LookalikeAdvice(StreamAdvice):
    """Items that look like the class and go to this other stream, named in one line ("Used tissue, greasy paper")."""

    items: str


class UnsureAdvice(StreamAdvice):
    """The region's safe default for a photo Pilah cannot place, and what to do."""

    region: str
    language: str
    line: str


class Advice(StreamAdvice):
    """How to dispose of one class, in one region and one language: what the app, the API (as is, in its schema)
    and the CLI show."""

    region: str
    label: str
    language: str  # the language of the words: the one asked for, or the pack's first when it lacks it
    summary: str
    prepare: list[str]
    where: list[str]
    dont: list[str]
    source_url: str
    source_title: str
    source_language: str | None = None  # the source's language, e.g. "id" for an Indonesian ministry's page
    exceptions: list[LookalikeAdvice] = Field(default_factory=list)  # one per other stream, in the pack's order

    def to_dict(self) -> dict:
        return self.model_dump()


def read_pack(path: str | Path) -> Pack:
    """A pack file, validated; every problem is named with its place in the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise GuidanceError(f"{path}: cannot read it ({error.strerror})") from error
    except yaml.YAMLError as error:
        raise GuidanceError(f"{path}: not valid YAML: {error}") from error
    try:
        return Pack.model_validate(data)
    except ValidationError as error:
        lines = [f"  {'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in error.errors()]
        lines += [f"  {problem}" for problem in _structure_problems(data) if not any(problem in x for x in lines)]
        raise GuidanceError(f"{path}: {len(lines)} problem(s)\n" + "\n".join(lines)) from error


def _structure_problems(data: object) -> list[str]:
    """The classes against the model's and each class's stream against the pack's streams, on the plain data: the
    pack's own check, and what `pilah guidance check` still names when a field is wrong and pydantic stops before
    the pack-wide rules, so that every problem is named at once."""
    if not isinstance(data, dict) or not isinstance(data.get("classes"), dict):
        return []
    classes, streams = data["classes"], data.get("streams") if isinstance(data.get("streams"), dict) else {}
    missing = [c for c in CLASSES if c not in classes]
    unknown = [c for c in classes if c not in CLASSES]
    problems = [f"classes: missing {', '.join(missing)}"] if missing else []
    if unknown:
        problems.append(f"classes: unknown {', '.join(unknown)} (the model's classes: {', '.join(CLASSES)})")
    for label, rule in classes.items():
        stream = rule.get("stream") if isinstance(rule, dict) else None
        if isinstance(stream, str) and stream not in streams:
            problems.append(f"classes.{label}.stream: {stream!r} is not one of the streams {list(streams)}")
    return problems


def pack_files() -> dict[str, Path]:
    """Region -> pack file: the bundled packs, then those in `PILAH_GUIDANCE_DIR` (which may replace one)."""
    folders = [Path(str(resources.files("pilah.resources").joinpath("guidance")))]
    if os.environ.get(GUIDANCE_DIR_ENV):
        folders.append(Path(os.environ[GUIDANCE_DIR_ENV]))
    return {p.stem: p for folder in folders if folder.is_dir() for p in sorted(folder.glob("*.yaml"))}


def regions() -> list[str]:
    """The regions Pilah has a pack for, the default first."""
    return sorted(pack_files(), key=lambda name: (name != DEFAULT_REGION, name))


def pack(region: str = DEFAULT_REGION) -> Pack:
    """A region's pack; an unknown region is an error that lists the known ones."""
    files = pack_files()
    if region not in files:
        known = ", ".join(regions())
        raise GuidanceError(f"unknown region {region!r}; regions: {known}", code="unknown_region")
    return _read_once(files[region], files[region].stat().st_mtime_ns)


@cache
def _read_once(path: Path, modified_ns: int) -> Pack:
    """Each version of a pack file is read once per process (an edited file is read again)."""
    found = read_pack(path)
    if found.region != path.stem:
        raise GuidanceError(f"{path}: region {found.region!r} must match the file name ({path.stem}.yaml)")
    return found


def _stream(p: Pack, key: str, language: str) -> dict:
    stream = p.streams[key]
    return {
        "stream": key,
        "stream_name": stream.name.get(language, next(iter(stream.name.values()))),
        "icon": stream.icon,
        "badge": stream.badge,
        "bin_colour": stream.bin_colour,
    }


def _lookalikes(p: Pack, rule: Rule, language: str) -> list[LookalikeAdvice]:
    """The class's look-alikes grouped by the stream they go to instead, in the pack's order."""
    by_stream: dict[str, list[str]] = {}
    for lookalike in rule.exceptions:
        name = lookalike.item.get(language, next(iter(lookalike.item.values())))
        by_stream.setdefault(lookalike.stream, []).append(name)
    return [LookalikeAdvice(items=", ".join(names), **_stream(p, key, language)) for key, names in by_stream.items()]


def advice(label: str, region: str = DEFAULT_REGION, language: str = "en") -> Advice:
    """How to dispose of `label` in `region`, in `language` (or the pack's first language when it lacks it)."""
    p = pack(region)
    rule = p.classes[label]
    used = language if language in rule.words else p.languages[0]
    words = rule.words[used]
    return Advice(
        region=p.region,
        label=label,
        language=used,
        **_stream(p, rule.stream, used),
        summary=words.summary,
        prepare=list(words.prepare),
        where=list(words.where),
        dont=list(words.dont),
        source_url=str(rule.source.url),
        source_title=rule.source.title,
        source_language=rule.source.language,
        exceptions=_lookalikes(p, rule, used),
    )


def when_unsure(region: str = DEFAULT_REGION, language: str = "en") -> UnsureAdvice:
    """Where a photo Pilah cannot place goes in `region` (its pack's safe default), and what to do."""
    p = pack(region)
    used = language if getattr(p.when_unsure, language) else p.languages[0]
    return UnsureAdvice(
        region=p.region, language=used, line=getattr(p.when_unsure, used), **_stream(p, p.when_unsure.stream, used)
    )


def class_of_stream(region: str, stream: str) -> str | None:
    """The one class whose stream this is in `region` (residual -> trash), or None when several or none are:
    what a tap on a look-alike records as the correct class."""
    found = [label for label, rule in pack(region).classes.items() if rule.stream == stream]
    return found[0] if len(found) == 1 else None


def region_name(region: str, language: str) -> str:
    names = pack(region).name
    return names.get(language, next(iter(names.values())))
