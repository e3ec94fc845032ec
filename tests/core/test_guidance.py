"""Regional guidance packs: the bundled ones are complete and differ where the regions' rules differ; a pack a
city writes is checked by `pilah guidance check`, and found through PILAH_GUIDANCE_DIR."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import EXAMPLES, pilah
from pilah import guidance
from pilah.errors import GuidanceError

PACKS = Path(guidance.__file__).parent / "resources" / "guidance"


def test_three_regions_ship_each_complete_in_both_languages_with_a_source_per_rule():
    assert guidance.regions() == ["id", "de", "us-sf"]  # the default first
    for region in guidance.regions():
        pack = guidance.pack(region)
        assert set(pack.classes) == set(guidance.CLASSES)
        for label in guidance.CLASSES:
            for language in guidance.LANGUAGES:
                advice = guidance.advice(label, region, language)
                assert advice.language == language and advice.summary and advice.prepare and advice.where
                assert advice.source_url.startswith("https://") and advice.source_title
                assert advice.stream_name == pack.streams[advice.stream].name[language]


def test_the_regions_sort_glass_differently():
    """Germany: a container per glass colour; San Francisco: every colour in the blue bin; Indonesia: one stream."""
    glass = ("brown-glass", "green-glass", "white-glass")
    de = [guidance.advice(label, "de", "en") for label in glass]
    assert [a.bin_colour for a in de] == ["brown", "green", "white"]
    assert len({a.stream for a in de}) == 3
    sf = [guidance.advice(label, "us-sf", "en") for label in glass]
    assert {a.stream for a in sf} == {"recycling"} and {a.bin_colour for a in sf} == {"blue"}
    assert guidance.advice("plastic", "de", "en").bin_colour == "yellow"  # the yellow bin for packaging
    assert guidance.advice("battery", "us-sf", "en").bin_colour is None  # no bin at all: a drop-off
    assert guidance.advice("battery", "id", "id").stream == "b3"


def test_the_indonesian_pack_keeps_the_original_advice():
    battery = guidance.advice("battery", "id", "id")
    assert battery.stream_name == "B3 (bahan berbahaya dan beracun)"
    assert battery.where[0].startswith("Dropbox baterai")


def write_pack(folder: Path, region: str, change) -> Path:
    data = yaml.safe_load((PACKS / "de.yaml").read_text())
    data["region"] = region
    change(data)
    path = folder / f"{region}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def test_pilah_guidance_check_accepts_a_good_pack_and_names_each_problem_of_a_bad_one(tmp_path):
    good = pilah("guidance", "check", PACKS / "us-sf.yaml")
    assert "a valid pack for region 'us-sf' (en, id), 12 classes" in good.stdout

    def break_it(data):
        del data["classes"]["shoes"]
        data["classes"]["metal"]["stream"] = "metal-bin"
        data["classes"]["paper"]["source"]["url"] = "not a url"
        data["classes"]["plastic"]["colour"] = "yellow"  # an unknown key: a typo must not pass silently

    bad = pilah("guidance", "check", write_pack(tmp_path, "de-bad", break_it), check=False)
    assert bad.returncode == 2, bad.stderr
    for problem in (  # all four, though pydantic stops before the pack-wide rules on the first two
        "classes.paper.source.url",
        "classes.plastic.colour",
        "classes: missing shoes",
        "classes.metal.stream: 'metal-bin' is not one of the streams",
    ):
        assert problem in bad.stderr, (problem, bad.stderr)
    broken_yaml = tmp_path / "x.yaml"
    broken_yaml.write_text("region: x\nclasses: [unclosed\n")
    result = pilah("guidance", "check", broken_yaml, check=False)
    assert result.returncode == 2 and "not valid YAML" in result.stderr


def test_the_completeness_rules_name_missing_classes_and_unknown_streams(tmp_path):
    def break_it(data):
        del data["classes"]["shoes"]
        data["classes"]["metal"]["stream"] = "metal-bin"

    with pytest.raises(GuidanceError) as error:
        guidance.read_pack(write_pack(tmp_path, "xx", break_it))
    assert "classes: missing shoes" in str(error.value)
    assert "classes.metal.stream: 'metal-bin' is not one of the streams" in str(error.value)


def test_a_city_pack_in_pilah_guidance_dir_joins_the_regions_and_falls_back_to_its_language(tmp_path, monkeypatch):
    def english_only(data):
        data["languages"] = ["en"]
        data["name"] = {"en": "Testville"}
        for rule in data["classes"].values():
            del rule["id"]
        for stream in data["streams"].values():
            stream["name"] = {"en": stream["name"]["en"]}

    write_pack(tmp_path, "de-tv", english_only)
    monkeypatch.setenv(guidance.GUIDANCE_DIR_ENV, str(tmp_path))
    assert guidance.regions() == ["id", "de", "de-tv", "us-sf"]
    advice = guidance.advice("plastic", "de-tv", "id")  # asked in Indonesian, the pack has English only
    assert advice.language == "en" and advice.stream_name == "Yellow bin (packaging)"
    assert guidance.region_name("de-tv", "id") == "Testville"
    with pytest.raises(GuidanceError, match="unknown region 'mars'"):
        guidance.pack("mars")


def test_pilah_predict_region_adds_where_each_photo_goes(tmp_path):
    out = pilah("predict", EXAMPLES / "plastic.jpg", EXAMPLES / "biological.jpg", "--region", "de")
    assert "plastic.jpg: plastic" in out.stdout and "-> Yellow bin (packaging)" in out.stdout
    assert "-> Brown bin (bio waste)" in out.stdout
    csv = tmp_path / "out.csv"
    pilah("predict", EXAMPLES / "plastic.jpg", "--region", "us-sf", "--language", "id", "--csv", csv)
    header, row = csv.read_text().splitlines()
    assert header.endswith(",stream,where") and row.endswith(",Tong biru (daur ulang),Tong biru.")
    unknown = pilah("predict", EXAMPLES / "plastic.jpg", "--region", "mars", check=False)
    assert unknown.returncode == 2 and "unknown region 'mars'" in unknown.stderr


def test_every_pack_names_a_safe_default_and_look_alikes_that_go_elsewhere():
    for region in guidance.regions():
        pack = guidance.pack(region)
        assert pack.when_unsure.stream in pack.streams
        for language in guidance.LANGUAGES:
            unsure = guidance.when_unsure(region, language)
            assert unsure.language == language and len(unsure.line) > 20
        lookalikes = {label: rule.exceptions for label, rule in pack.classes.items() if rule.exceptions}
        assert {"paper", "cardboard", "plastic"} <= set(lookalikes)  # the recyclables people get wrong most
        for label, items in lookalikes.items():
            assert all(item.stream != pack.classes[label].stream for item in items)
    paper = guidance.advice("paper", "id", "id").exceptions
    assert [(group.stream, group.items) for group in paper] == [
        ("residu", "Tisu bekas, Kertas berminyak atau basah, Struk kertas termal")
    ]
    assert guidance.advice("paper", "us-sf", "en").exceptions[0].stream_name == "Green bin (compost)"
    assert [g.stream for g in guidance.advice("cardboard", "de", "en").exceptions] == ["packaging", "residual"]
    assert guidance.when_unsure("id", "id").stream_name == "Residu"
    assert guidance.when_unsure("us-sf", "en").stream == "landfill"
    assert guidance.class_of_stream("id", "residu") == "trash"  # what a tap on "Used tissue? -> Residual" records
    assert guidance.class_of_stream("id", "anorganik") is None  # seven classes share it


def test_look_alikes_and_the_safe_default_are_checked_like_the_rest(tmp_path):
    def break_it(data):
        data["classes"]["paper"]["exceptions"] = [
            {"item": {"en": "Receipts", "id": "Struk"}, "stream": "paper"},  # the class's own stream
            {"item": {"en": "Tissues"}, "stream": "residual"},  # no Indonesian name
            {"item": {"en": "x" * 41, "id": "Struk"}, "stream": "residual"},  # too long for the card
            {"item": {"en": "Napkins", "id": "Serbet"}, "stream": "compost"},  # no such stream
        ]
        data["when_unsure"] = {"stream": "landfill", "en": "If unsure, the grey bin."}

    bad = pilah("guidance", "check", write_pack(tmp_path, "de-bad", break_it), check=False)
    assert bad.returncode == 2, bad.stdout
    for problem in (
        "classes.paper.exceptions.0.stream: 'paper' is the class's own stream",
        "classes.paper.exceptions.1.item: no 'id' name",
        "classes.paper.exceptions.2.item.en: needs 2 to 40 characters, has 41",
        "classes.paper.exceptions.3.stream: 'compost' is not one of the streams",
        "when_unsure.stream: 'landfill' is not one of the streams",
        "when_unsure: no 'id' line",
    ):
        assert problem in bad.stderr, (problem, bad.stderr)

    def no_default(data):
        del data["when_unsure"]

    missing = pilah("guidance", "check", write_pack(tmp_path, "de-none", no_default), check=False)
    assert missing.returncode == 2 and "when_unsure" in missing.stderr
    good = pilah("guidance", "check", PACKS / "id.yaml")
    assert "look-alikes (exceptions): 12; when unsure: residu" in good.stdout
