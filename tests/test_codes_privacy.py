"""Codes and masking, beyond the doctests: property-based checks of the rules in shared/domain.md."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from spatial.geometry import codes
from spatial.privacy import mask_id_number, mask_name, mask_phone, mask_record

digits17 = st.text(alphabet="0123456789", min_size=17, max_size=17)


@given(digits17)
def test_every_generated_id_is_valid_and_any_other_check_char_is_not(first17):
    good = first17 + codes.id_check_char(first17)
    assert codes.is_valid_id_number(good)
    for wrong in set("0123456789X") - {good[-1]}:
        assert not codes.is_valid_id_number(first17 + wrong)


@given(digits17)
def test_masked_id_keeps_only_first_six_and_last_four(first17):
    value = first17 + codes.id_check_char(first17)
    masked = mask_id_number(value)
    assert masked[:6] == value[:6] and masked[-4:] == value[-4:] and masked[6:14] == "*" * 8


@given(st.text(alphabet="0123456789", min_size=11, max_size=11))
def test_masked_phone_hides_the_middle_four(phone):
    masked = mask_phone(phone)
    assert masked == phone[:3] + "****" + phone[-4:]


def test_mask_record_masks_only_personal_fields():
    record = {"head_name": "王小明", "head_phone": "13912345678", "room": "0502", "head_id_number": None}
    assert mask_record(record) == {"head_name": "王*", "head_phone": "139****5678", "room": "0502",
                                   "head_id_number": None}
    assert mask_name("司马相如") == "司马*"


def test_grid_numbering_reads_west_to_east_then_north_to_south():
    # a 3 × 2 layout of grid centroids (metres), rows slightly uneven
    centroids = [(300, 5), (0, 0), (150, 210), (0, 200), (300, 195), (150, -4)]
    order = codes.reading_order(centroids, row_tolerance=50)
    assert [centroids[i] for i in order] == [(0, 200), (150, 210), (300, 195), (0, 0), (150, -4), (300, 5)]


def test_scope_prefix_nests_community_in_subdistrict_in_district():
    community = "440304096003"
    assert community.startswith(codes.scope_prefix("440304096000"))
    assert community.startswith(codes.scope_prefix("440304000000"))
    assert not community.startswith(codes.scope_prefix("440304011000"))
