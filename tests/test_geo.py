import pytest

from bot.directory.geo import PointSet, miles_between, zip_centroid, zip_timezone


def test_centroid_of_a_northeast_zip():
    lat, lon = zip_centroid("64124")
    assert lat == pytest.approx(39.1068, abs=0.01)
    assert lon == pytest.approx(-94.5394, abs=0.01)


@pytest.mark.parametrize("spelling", ["64124-1234", " 64124 ", "64124\n"])
def test_zip_plus_four_and_blanks_are_the_same_zip(spelling):
    assert zip_centroid(spelling) == zip_centroid("64124")


@pytest.mark.parametrize("bad", ["00000", "abcde", "6412", "641245", "", "64124-12"])
def test_unknown_or_malformed_zip_has_no_centroid(bad):
    assert zip_centroid(bad) is None
    assert zip_timezone(bad) is None


def test_timezone_of_kansas_city_zips():
    for zip_code in ("64106", "64120", "64123", "64124", "64125", "64127", "66101"):
        assert zip_timezone(zip_code) == "America/Chicago"


def test_haversine_kansas_city_to_st_louis():
    # downtown to downtown is about 238 miles as the crow flies
    assert miles_between((39.0997, -94.5786), (38.6270, -90.1994)) == pytest.approx(238, abs=2)


def test_distance_is_symmetric_and_zero_to_itself():
    a, b = zip_centroid("64124"), zip_centroid("64106")
    assert miles_between(a, a) == 0
    assert miles_between(a, b) == pytest.approx(miles_between(b, a))
    assert 1 < miles_between(a, b) < 2.5  # Northeast to the River Market


def test_point_set_matches_pairwise_distance():
    origin = zip_centroid("64124")
    points = [zip_centroid(z) for z in ("64106", "64127", "66101", "64050")]
    assert PointSet(points).miles_from(origin) == pytest.approx([miles_between(origin, p) for p in points])
