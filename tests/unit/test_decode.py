"""Decoding fetched bytes: BOMs, labels that lie, Japanese encodings, last resorts."""

from __future__ import annotations

import codecs

import pytest

from mastwatch.sources.decode import (
    charset_from_content_type,
    decode_document,
    resolve_codec,
    to_utf8_xml,
)

JAPANESE = "日本政府は米国債の保有を見直すと発表した。財務省によると関税の協議は続く。"
NEC_AND_IBM_EXTENSIONS = "①髙﨑"  # only in cp932, not in plain Shift_JIS


def xml(text: str, encoding: str | None = None) -> str:
    declaration = f'<?xml version="1.0" encoding="{encoding}"?>' if encoding else ""
    return f"{declaration}<rss><channel><title>{text}</title></channel></rss>"


@pytest.mark.parametrize(
    ("bom", "codec"),
    [
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
    ],
)
def test_a_bom_decides_over_every_label(bom: bytes, codec: str) -> None:
    body = bom + xml(JAPANESE, "shift_jis").encode(codec)
    decoded = decode_document(body, http_charset="iso-8859-1")
    assert decoded.method == "bom"
    assert decoded.text == xml(JAPANESE, "shift_jis")  # the BOM itself is not part of the text


@pytest.mark.parametrize("label", ["shift_jis", "Shift_JIS", "shift-jis", "sjis", "x-sjis"])
def test_shift_jis_labels_decode_as_cp932_with_extensions(label: str) -> None:
    text = NEC_AND_IBM_EXTENSIONS + JAPANESE
    decoded = decode_document(xml(text).encode("cp932"), http_charset=label)
    assert decoded.encoding == "cp932"
    assert decoded.method == "http"
    assert NEC_AND_IBM_EXTENSIONS in decoded.text


@pytest.mark.parametrize("label", ["windows-31j", "MS932", "cp932"])
def test_declared_cp932_names_decode_the_extensions(label: str) -> None:
    text = NEC_AND_IBM_EXTENSIONS + JAPANESE
    decoded = decode_document(xml(text, label).encode("cp932"))
    assert (decoded.encoding, decoded.method) == ("cp932", "declared")
    assert text in decoded.text


def test_euc_jp_label_is_kept() -> None:
    decoded = decode_document(xml(JAPANESE).encode("euc-jp"), http_charset="EUC-JP")
    assert (decoded.encoding, decoded.method) == ("euc_jp", "http")
    assert JAPANESE in decoded.text


def test_euc_jp_without_any_label_is_detected() -> None:
    decoded = decode_document(xml(JAPANESE).encode("euc-jp"))
    assert decoded.method == "detected"
    assert JAPANESE in decoded.text


def test_euc_jp_with_a_wrong_utf8_label_is_detected() -> None:
    decoded = decode_document(xml(JAPANESE, "utf-8").encode("euc-jp"), http_charset="utf-8")
    assert decoded.method == "detected"
    assert JAPANESE in decoded.text


def test_euc_jp_behind_a_default_latin1_header_is_detected() -> None:
    # Servers send ISO-8859-1 by default; latin-1 decodes anything, so it proves nothing.
    decoded = decode_document(xml(JAPANESE).encode("euc-jp"), http_charset="ISO-8859-1")
    assert JAPANESE in decoded.text


def test_cp932_behind_a_latin1_header_it_does_not_fit_is_still_multibyte() -> None:
    # cp1252 cannot decode these bytes, and on so short a text charset-normalizer 3.5
    # ranks a single-byte charset (cp1256) first: the weak label still says "not latin"
    title = "① 髙島屋 tariff 関税"
    body = f"<rss><channel><item><title>{title}</title></item></channel></rss>"
    decoded = decode_document(body.encode("cp932"), http_charset="iso-8859-1")
    assert decoded.encoding == "cp932"
    assert title in decoded.text


def test_utf16_without_bom_or_label_is_recognised_from_its_first_bytes() -> None:
    for codec in ("utf-16-le", "utf-16-be"):
        decoded = decode_document(xml(JAPANESE, "utf-16").encode(codec))
        assert decoded.encoding == codec
        assert JAPANESE in decoded.text


def test_utf16_label_without_bom_picks_the_right_byte_order() -> None:
    decoded = decode_document(xml(JAPANESE).encode("utf-16-be"), http_charset="utf-16")
    assert (decoded.encoding, decoded.method) == ("utf-16-be", "http")
    assert JAPANESE in decoded.text


def test_a_utf16_label_on_a_utf8_body_is_not_believed() -> None:
    body = xml(JAPANESE).encode("utf-8")
    body += b"\n" * (len(body) % 2)  # an even length, so UTF-16 would "decode" it into junk
    decoded = decode_document(body, http_charset="utf-16")
    assert decoded.encoding == "utf-8"
    assert JAPANESE in decoded.text


def test_utf16_label_with_leading_whitespace_and_no_bom() -> None:
    decoded = decode_document(("\n" + xml(JAPANESE)).encode("utf-16-be"), http_charset="UTF-16")
    assert decoded.encoding == "utf-16-be"
    assert JAPANESE in decoded.text


def test_http_charset_wins_over_the_declaration_when_both_decode() -> None:
    text = "Café “déjà vu”"
    body = xml(text, "utf-8").encode("cp1252")  # declared utf-8, but these bytes are not
    decoded = decode_document(body, http_charset="windows-1252")
    assert (decoded.encoding, decoded.method) == ("cp1252", "http")
    assert text in decoded.text


def test_declaration_is_used_when_the_http_charset_does_not_decode() -> None:
    body = xml(JAPANESE, "Shift_JIS").encode("cp932")
    decoded = decode_document(body, http_charset="utf-8")
    assert (decoded.encoding, decoded.method) == ("cp932", "declared")
    assert JAPANESE in decoded.text


def test_valid_utf8_beats_a_legacy_label() -> None:
    body = xml("Ünïcödé and 日本", "iso-8859-1").encode("utf-8")
    decoded = decode_document(body, http_charset="iso-8859-1")
    assert decoded.encoding == "utf-8"
    assert "Ünïcödé and 日本" in decoded.text


def test_a_label_in_the_content_type_is_used() -> None:
    body = xml(JAPANESE).encode("euc-jp")
    decoded = decode_document(body, content_type="application/rss+xml; charset=euc-jp")
    assert (decoded.encoding, decoded.method) == ("euc_jp", "http")


@pytest.mark.parametrize("label", ["no-such-charset", "utf-7", "base64", "rot13", "x" * 80])
def test_unknown_or_unsafe_labels_are_ignored(label: str) -> None:
    body = xml("Grüße", label).encode("utf-8")
    decoded = decode_document(body, http_charset=label)
    assert decoded.encoding == "utf-8"
    assert "Grüße" in decoded.text


def test_undecodable_bytes_fall_back_without_raising() -> None:
    decoded = decode_document(b"\x81\x8d\x8f\x90\x9d" * 3)
    assert isinstance(decoded.text, str)
    assert decoded.method in {"detected", "fallback"}


def test_latin1_labels_decode_as_windows_1252() -> None:
    decoded = decode_document("“quoted” \u2013 dash".encode("cp1252"), http_charset="ISO-8859-1")
    assert decoded.text == "“quoted” \u2013 dash"


def test_resolve_codec() -> None:
    assert resolve_codec("SHIFT_JIS") == "cp932"
    assert resolve_codec("euc-jp") == "euc_jp"
    assert resolve_codec("x-euc-jp") == "euc_jp"
    assert resolve_codec("bogus") is None
    assert resolve_codec(None) is None
    assert charset_from_content_type('text/xml; charset="Shift_JIS"') == "Shift_JIS"
    assert charset_from_content_type("text/xml") is None


def test_to_utf8_xml_rewrites_the_declaration_and_drops_the_bom() -> None:
    body = codecs.BOM_UTF16_LE + xml(NEC_AND_IBM_EXTENSIONS, "UTF-16").encode("utf-16-le")
    converted = to_utf8_xml(body)
    assert converted.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    assert NEC_AND_IBM_EXTENSIONS.encode("utf-8") in converted


def test_to_utf8_xml_from_shift_jis_with_single_quotes_and_leading_space() -> None:
    body = ("\n <?xml version='1.0' encoding='Shift_JIS'?><a>" + JAPANESE + "</a>").encode("cp932")
    converted = to_utf8_xml(body)
    assert converted == ("<?xml version='1.0' encoding='utf-8'?><a>" + JAPANESE + "</a>").encode()
