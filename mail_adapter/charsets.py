"""Turn bytes labelled with a (possibly wrong) charset into readable text, never raising.

Real mail lies about its charset. The traps handled here:
- ISO-2022-JP written by Windows carries NEC/IBM extensions (①, ㈱, Ⅲ) that Python's
  `iso2022_jp*` codecs reject; we transcode the JIS escape form to CP932 ourselves.
- "Shift_JIS" means CP932 in practice (Outlook, Windows); EUC-JP likewise gets its
  Microsoft superset.
- An unknown label (`x-unknown`, `bad-charset`) raises LookupError in the stdlib: fall
  back to detection with charset-normalizer.
"""

from __future__ import annotations

import codecs

from charset_normalizer import from_bytes

# Labels whose practical meaning is a Microsoft superset of what the label says.
_SUPERSETS = {
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "csshiftjis": "cp932",
    "euc-jp": "euc_jis_2004",
    "x-euc-jp": "euc_jis_2004",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "iso-8859-11": "cp874",
    "tis-620": "cp874",
    "unicode-1-1-utf-7": "utf-7",
}

_SINGLE_BYTE = {"cp1252", "iso-8859-15", "cp1250", "cp1251", "koi8-r", "iso-8859-2"}

# Where detection must guess, guess among what business mail actually uses.
_DETECTABLE = ["utf_8", "cp932", "euc_jp", "cp1252", "gb18030", "cp949", "big5", "cp1251", "cp1250"]

_ISO2022JP_LABELS = {"iso-2022-jp", "iso2022jp", "csiso2022jp", "iso-2022-jp-1", "iso-2022-jp-2", "iso-2022-jp-3", "iso-2022-jp-ms", "cp50220", "cp50221", "cp50222"}

_ESC = 0x1B


def _jis_to_sjis(j1: int, j2: int) -> bytes:
    """Map one JIS X 0208 code point (row/cell bytes 0x21..0x7E) to Shift_JIS bytes."""
    s1 = ((j1 + 1) >> 1) + (0x70 if j1 <= 0x5E else 0xB0)
    if j1 & 1:
        s2 = j2 + (0x1F if j2 <= 0x5F else 0x20)
    else:
        s2 = j2 + 0x7E
    return bytes((s1, s2))


def iso2022jp_to_text(data: bytes) -> str:
    """Decode ISO-2022-JP (and its Windows CP5022x variants) through CP932.

    Escape sequences: ESC ( B / ESC ( J → ASCII/Roman, ESC $ @ / ESC $ B → JIS X 0208
    (with NEC row 13 and IBM extensions as CP932 has them), ESC ( I → half-width katakana.
    Bytes that do not fit are replaced, never raised.
    """
    out = bytearray()
    mode = "ascii"
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b == _ESC and i + 2 < n + 0 and i + 2 <= n - 1:
            seq = data[i + 1 : i + 3]
            if seq in (b"(B", b"(J"):
                mode, i = "ascii", i + 3
                continue
            if seq in (b"$@", b"$B"):
                mode, i = "jis", i + 3
                continue
            if seq == b"(I":
                mode, i = "kana", i + 3
                continue
            if data[i + 1 : i + 4] == b"$(D" or data[i + 1 : i + 4] == b"$(Q" or data[i + 1 : i + 4] == b"$(O":
                mode, i = "jis", i + 4  # JIS X 0212/0213: best effort through the same table
                continue
        if b in (0x0E, 0x0F):  # SO/SI: half-width katakana shift in CP50222
            mode = "kana" if b == 0x0E else "ascii"
            i += 1
            continue
        if mode == "jis" and 0x21 <= b <= 0x7E and i + 1 < n and 0x21 <= data[i + 1] <= 0x7E:
            out += _jis_to_sjis(b, data[i + 1])
            i += 2
            continue
        if mode == "kana" and 0x21 <= b <= 0x5F:
            out.append(b + 0x80)
            i += 1
            continue
        out.append(b)
        i += 1
    return out.decode("cp932", errors="replace")


def _normalise_label(charset: str | None) -> str | None:
    if not charset:
        return None
    label = charset.strip().strip('"').strip("'").lower()
    return label or None


def decode_text(data: bytes, charset: str | None) -> str:
    """Decode mail text, trusting the label only as far as it deserves."""
    label = _normalise_label(charset)
    if label in _ISO2022JP_LABELS or (label is None and b"\x1b$" in data):
        return iso2022jp_to_text(data)
    if label is not None:
        codec = _SUPERSETS.get(label, label)
        try:
            codecs.lookup(codec)
        except LookupError:
            return detect_and_decode(data)
        if codec in _SINGLE_BYTE and not data.isascii():
            # UTF-8 labelled as Latin-1 is common; genuine Latin-1 is almost never valid UTF-8.
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                pass
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            # Mislabelled: UTF-8 sent as Latin-1 or the reverse is the usual case.
            if codec != "utf-8":
                try:
                    return data.decode("utf-8")
                except UnicodeDecodeError:
                    pass
            return detect_and_decode(data, fallback=codec)
        except Exception:  # noqa: BLE001 - some codecs raise odd errors on garbage
            return detect_and_decode(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return detect_and_decode(data)


def detect_and_decode(data: bytes, fallback: str = "utf-8") -> str:
    """Guess the charset of unlabelled or mislabelled bytes; replace what cannot be read."""
    if b"\x1b$" in data:
        return iso2022jp_to_text(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    best = from_bytes(data[:65536], cp_isolation=_DETECTABLE).best() if data else None
    encoding = best.encoding if best is not None else "cp1252"
    encoding = _SUPERSETS.get(encoding.lower(), encoding)
    try:
        return data.decode(encoding, errors="replace")
    except LookupError:
        return data.decode(fallback, errors="replace")
