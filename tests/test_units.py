from workbench.units import GiB, format_bytes, from_gib, to_gib, to_mib


def test_gib_is_two_to_the_thirty():
    assert GiB == 1_073_741_824
    assert to_gib(GiB) == 1.0
    assert to_mib(GiB) == 1024.0
    assert from_gib(to_gib(123_456_789_012)) == 123_456_789_012


def test_format_bytes_picks_binary_unit():
    assert format_bytes(20.5 * GiB) == "20.50 GiB"
    assert format_bytes(3 * 2**20) == "3.00 MiB"
