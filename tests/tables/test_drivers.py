"""The driver table: the driver each CUDA runtime needs, the torch build a driver runs, and the version encodings."""

from __future__ import annotations

from pytest_cudadeps.tables.drivers import (
    GA_MINIMUM,
    MAJOR_MINIMUM,
    TORCH_CUDA_BUILDS,
    cuda_version_text,
    cuda_version_tuple,
    minimum_driver,
    torch_build_for,
    version_tuple,
)


def test_driver_table() -> None:
    assert minimum_driver((13, 0)) == ("580", "580.65.06")
    assert minimum_driver((13, 2)) == ("580", "595.45.04")
    assert minimum_driver((12, 5)) == ("525", "550.54.14")
    assert minimum_driver((11, 8)) == ("450", None)
    assert torch_build_for((12, 7)) == (12, 6)
    assert torch_build_for((11, 0)) is None


def test_lookups_between_and_beyond_the_listed_releases() -> None:
    assert minimum_driver((12, 3)) == ("525", "525.60.13")  # the GA driver of the newest release below it
    assert minimum_driver((13, 1)) == ("580", "590.44.01")
    assert minimum_driver((14, 0)) == (None, None)  # a major the table does not know
    assert torch_build_for((13, 2)) == (13, 0)
    assert torch_build_for((12, 4)) == (12, 4)


def test_every_ga_driver_meets_its_majors_minimum() -> None:
    for (major, _), ga in GA_MINIMUM.items():
        assert version_tuple(ga) >= version_tuple(MAJOR_MINIMUM[major]), (major, ga)
    assert {major for major, _ in TORCH_CUDA_BUILDS} <= set(MAJOR_MINIMUM)
    assert list(TORCH_CUDA_BUILDS) == sorted(TORCH_CUDA_BUILDS)  # torch_build_for takes the last that fits


def test_version_encodings() -> None:
    assert version_tuple("580.65.06") == (580, 65, 6)
    assert version_tuple(" 555.58\n") == (555, 58)
    assert version_tuple("560.28.03-beta") == (560, 28)  # a part that is not a number ends it
    assert version_tuple("unknown") == ()
    assert cuda_version_text(12040) == "12.4"
    assert cuda_version_text(13000) == "13.0"
    assert cuda_version_tuple(12090) == (12, 9)
