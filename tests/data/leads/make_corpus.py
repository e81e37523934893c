"""Writes the labelled lead-extraction corpus (tests/data/leads/*.eml + labels.json).

Each message is built from a person (the ground truth, written by hand below) and a
layout of the kind real business mail has: reply and forward styles of Outlook, Gmail,
Thunderbird and Japanese clients, signature delimiters or sign-offs, HTML tables, web-form
notifications, legal disclaimers, mobile footers, ISO-2022-JP / Shift_JIS / UTF-8. The
labels come from the person, never from the extractor's output.

    .venv/bin/python tests/data/leads/make_corpus.py
"""

from __future__ import annotations

import json
import zlib
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr
from pathlib import Path

HERE = Path(__file__).parent
OWN = "acme-sales.example"  # the reader's organisation
FIELDS = ("first_name", "last_name", "email", "company", "title", "phone", "mobile", "website", "zip_code", "city", "state")

JA = [
    # last, first, last_kana, first_kana, company, dept, title, email, tel, mobile, url, zip, state, city, street
    ("山田", "太郎", "やまだ", "たろう", "株式会社山田商事", "営業部", "部長", "t.yamada@yamada-shoji.co.jp", "03-1234-5678", "090-1234-5678", "https://www.yamada-shoji.co.jp", "100-0005", "東京都", "千代田区", "丸の内1-1-1 丸の内ビル10F"),
    ("佐藤", "花子", "さとう", "はなこ", "ABCテクノロジー株式会社", "マーケティング部", "マネージャー", "hanako.sato@abc-tech.co.jp", "06-6123-4567", "080-2345-6789", "https://abc-tech.co.jp", "530-0001", "大阪府", "大阪市北区", "梅田2-4-9"),
    ("鈴木", "一郎", "すずき", "いちろう", "有限会社鈴木製作所", "", "代表取締役", "suzuki@suzuki-ss.jp", "052-123-4567", "", "http://www.suzuki-ss.jp", "460-0008", "愛知県", "名古屋市中区", "栄3-5-12"),
    ("高橋", "美咲", "たかはし", "みさき", "合同会社ミライデザイン", "", "CEO", "misaki@mirai-design.jp", "", "070-1111-2222", "https://mirai-design.jp", "150-0002", "東京都", "渋谷区", "渋谷2-21-1"),
    ("伊藤", "健", "いとう", "けん", "株式会社グローバルネット", "システム開発部", "課長", "ken.ito@global-net.co.jp", "045-987-6543", "090-9876-5432", "https://www.global-net.co.jp", "220-0012", "神奈川県", "横浜市西区", "みなとみらい3-3-1"),
    ("渡辺", "直樹", "わたなべ", "なおき", "一般社団法人日本ITビジネス協会", "事務局", "事務局長", "watanabe@jitba.or.jp", "03-5555-1212", "", "https://www.jitba.or.jp", "105-0011", "東京都", "港区", "芝公園4-2-8"),
    ("中村", "由美", "なかむら", "ゆみ", "医療法人さくら会", "", "事務長", "y-nakamura@sakura-kai.or.jp", "092-711-2233", "", "https://sakura-kai.or.jp", "810-0001", "福岡県", "福岡市中央区", "天神1-8-1"),
    ("小林", "誠", "こばやし", "まこと", "株式会社ネクストステージ", "営業本部", "本部長", "kobayashi@nextstage.jp", "011-222-3344", "090-5555-6666", "https://nextstage.jp", "060-0001", "北海道", "札幌市中央区", "北一条西4-2"),
    ("加藤", "翔太", "かとう", "しょうた", "東洋物産株式会社", "海外事業部", "主任", "s.kato@toyo-bussan.co.jp", "03-3211-4455", "080-7777-8888", "https://www.toyo-bussan.co.jp", "103-0027", "東京都", "中央区", "日本橋2-7-1"),
    ("吉田", "恵", "よしだ", "めぐみ", "株式会社クラウドワークス研究所", "", "取締役", "megumi.yoshida@cw-lab.jp", "075-211-3344", "", "https://cw-lab.jp", "604-8001", "京都府", "京都市中京区", "河原町通三条上る"),
    ("山本", "大輔", "やまもと", "だいすけ", "株式会社ヤマモト工業", "技術部", "エンジニア", "d-yamamoto@yamamoto-kogyo.co.jp", "048-600-1234", "", "https://www.yamamoto-kogyo.co.jp", "330-0846", "埼玉県", "さいたま市大宮区", "大門町3-42"),
    ("松本", "彩", "まつもと", "あや", "株式会社フューチャーリンク", "人事部", "部長", "aya.matsumoto@futurelink.co.jp", "03-6434-0000", "090-3333-4444", "https://futurelink.co.jp", "106-0032", "東京都", "港区", "六本木6-10-1"),
    ("井上", "隆", "いのうえ", "たかし", "井上建設株式会社", "", "代表取締役社長", "inoue@inoue-kensetsu.co.jp", "082-241-5566", "090-1212-3434", "https://www.inoue-kensetsu.co.jp", "730-0011", "広島県", "広島市中区", "基町6-78"),
    ("木村", "さくら", "きむら", "さくら", "株式会社スマイルフーズ", "商品企画部", "リーダー", "s-kimura@smile-foods.jp", "022-266-7788", "", "https://smile-foods.jp", "980-0811", "宮城県", "仙台市青葉区", "一番町4-1-25"),
    ("林", "浩二", "はやし", "こうじ", "株式会社ハヤシ・コンサルティング", "", "シニアマネージャー", "k.hayashi@hayashi-consulting.jp", "03-5200-8899", "080-4545-6767", "https://hayashi-consulting.jp", "104-0061", "東京都", "中央区", "銀座4-6-16"),
    ("清水", "香織", "しみず", "かおり", "静岡茶業株式会社", "総務部", "係長", "kaori.shimizu@shizuoka-cha.co.jp", "054-255-1122", "", "https://www.shizuoka-cha.co.jp", "420-0853", "静岡県", "静岡市葵区", "追手町9-6"),
]

EN = [
    # first, last, company, title, email, phone, mobile, url, street, city, state, zip, country
    ("John", "Smith", "Acme Widgets Inc.", "VP of Sales", "john.smith@acmewidgets.com", "+1 415-555-0132", "+1 415-555-0199", "https://www.acmewidgets.com", "500 Market Street", "San Francisco", "CA", "94105", "USA"),
    ("Emily", "Johnson", "Brightside Analytics LLC", "Director of Marketing", "emily@brightside-analytics.com", "(212) 555-0147", "", "https://brightside-analytics.com", "350 Fifth Avenue", "New York", "NY", "10118", "USA"),
    ("Michael", "O'Neill", "Harbor Logistics Ltd", "Operations Manager", "michael.oneill@harborlogistics.co.uk", "+44 20 7946 0321", "+44 7911 123456", "https://www.harborlogistics.co.uk", "", "", "", "", ""),
    ("Sophie", "Müller", "Nordlicht Software GmbH", "CTO", "s.mueller@nordlicht-software.de", "+49 30 901820", "+49 151 23456789", "https://nordlicht-software.de", "Friedrichstraße 123", "Berlin", "", "10117", "Germany"),
    ("David", "Chen", "Pacific Rim Trading Corp.", "Senior Account Manager", "dchen@pacificrimtrading.com", "+1 604-555-0178", "", "https://pacificrimtrading.com", "", "", "", "", ""),
    ("Sarah", "Williams", "Greenleaf Health Partners", "Practice Manager", "sarah.williams@greenleafhealth.com", "+1 512-555-0110", "+1 512-555-0190", "https://greenleafhealth.com", "1200 Congress Ave", "Austin", "TX", "78701", "USA"),
    ("Thomas", "Dubois", "Lumière Conseil SAS", "Managing Partner", "t.dubois@lumiere-conseil.fr", "+33 1 42 68 53 00", "+33 6 12 34 56 78", "https://www.lumiere-conseil.fr", "", "", "", "", ""),
    ("Jessica", "Brown", "Summit Peak Ventures", "Founder", "jess@summitpeak.vc", "", "+1 303-555-0145", "https://summitpeak.vc", "", "", "", "", ""),
    ("Robert", "Taylor", "Ironclad Security Inc.", "Chief Information Security Officer", "rtaylor@ironcladsec.com", "+1 703-555-0163", "", "https://www.ironcladsec.com", "1800 Tysons Blvd", "McLean", "VA", "22102", "USA"),
    ("Laura", "García", "Soluciones Andinas S.A.", "Head of Partnerships", "laura.garcia@solucionesandinas.com", "+34 91 123 45 67", "", "https://solucionesandinas.com", "", "", "", "", ""),
    ("James", "Anderson", "Northwind Traders Co.", "Purchasing Manager", "j.anderson@northwindtraders.com", "+1 206-555-0119", "+1 206-555-0187", "https://northwindtraders.com", "", "", "", "", ""),
    ("Olivia", "Martin", "Blue Ocean Media Ltd", "Creative Director", "olivia@blueoceanmedia.co.uk", "+44 161 496 0753", "", "https://www.blueoceanmedia.co.uk", "", "", "", "", ""),
    ("Daniel", "Kim", "Quantum Leap Robotics Inc.", "CEO", "daniel.kim@quantumleaprobotics.com", "+1 617-555-0121", "+1 617-555-0122", "https://quantumleaprobotics.com", "1 Kendall Square", "Cambridge", "MA", "02139", "USA"),
    ("Emma", "Wilson", "Silverline Consulting LLC", "Consultant", "emma.wilson@silverline-consulting.com", "+1 312-555-0140", "", "https://silverline-consulting.com", "", "", "", "", ""),
    ("Lukas", "Schneider", "Alpenblick Hotels AG", "General Manager", "lukas.schneider@alpenblick-hotels.ch", "+41 44 668 18 00", "", "https://alpenblick-hotels.ch", "", "", "", "", ""),
    ("Anna", "Kowalski", "Vistula Data Systems", "Product Manager", "anna.kowalski@vistula-data.com", "+1 773-555-0155", "+1 773-555-0156", "https://vistula-data.com", "", "", "", "", ""),
]

E164 = {}


def e164(number: str, region: str) -> str | None:
    import phonenumbers

    if not number:
        return None
    return phonenumbers.format_number(phonenumbers.parse(number, region), phonenumbers.PhoneNumberFormat.E164)


def ja_signature(p: tuple, style: int) -> str:
    last, first, lk, fk, company, dept, title, email, tel, mobile, url, zip_code, state, city, street = p
    name = f"{last} {first}"
    lines = []
    if style % 3 == 0:
        lines += [company, f"{dept} {title}".strip(), f"{name}（{lk} {fk}）"]
    elif style % 3 == 1:
        lines += [company, dept, f"{title}　{name}" if dept else f"{title} {name}"]
    else:
        lines += [f"{name}", f"{company} {dept}".strip(), title]
    lines.append(f"〒{zip_code} {state}{city}{street}")
    tel_line = f"TEL：{tel}" if tel else ""
    if tel:
        tel_line += "　FAX：" + tel[:-4] + "9999"
    if tel_line:
        lines.append(tel_line)
    if mobile:
        lines.append(f"携帯：{mobile}")
    lines.append(f"E-mail：{email}")
    lines.append(f"URL：{url}")
    return "\n".join(ln for ln in lines if ln)


def en_signature(p: tuple, style: int) -> str:
    first, last, company, title, email, phone, mobile, url, street, city, state, zip_code, country = p
    lines = []
    if style % 2 == 0:
        lines += [f"{first} {last}", title, company]
    else:
        lines += [f"{first} {last} | {title}", company]
    if street:
        lines.append(street)
        if state:
            lines.append(f"{city}, {state} {zip_code}")
        else:
            lines.append(f"{zip_code} {city}")
        if country:
            lines.append(country)
    if phone:
        lines.append(("Office: " if style % 2 else "T: ") + phone)
    if mobile:
        lines.append(("Mobile: " if style % 2 else "M: ") + mobile)
    lines.append(url.replace("https://", "") if style % 3 == 0 else url)
    return "\n".join(lines)


OUR_SIG_JA = "株式会社アクメセールス\n営業部 担当\n伊藤 次郎\nTEL：03-9999-0000\nhttps://acme-sales.example"
OUR_SIG_EN = "Jiro Ito\nAccount Executive\nAcme Sales K.K.\nTel: +81 3-9999-0000"
DISCLAIMER_JA = "本メールは機密情報を含む場合があります。誤って受信された場合はお手数ですが送信者にご連絡の上、削除してください。お問い合わせ：03-0000-1111"
DISCLAIMER_EN = "CONFIDENTIALITY NOTICE: This e-mail and any attachments are confidential. If you received it in error, please call +1 800-555-0100 and delete it."


def _text_part(body: str, charset: str) -> MIMEText:
    """A text/plain part as Japanese mailers write it: a `Shift_JIS` label on CP932 bytes
    (so ㈱ and ① survive), ISO-2022-JP when the text fits it."""
    if charset in ("shift_jis", "iso-2022-jp"):
        try:
            body.encode("iso2022_jp" if charset == "iso-2022-jp" else "shift_jis")
        except UnicodeEncodeError:
            import base64

            part = MIMEText("", "plain", "utf-8")
            del part["Content-Transfer-Encoding"]
            part.set_param("charset", "Shift_JIS")
            part["Content-Transfer-Encoding"] = "base64"
            part.set_payload(base64.encodebytes(body.encode("cp932")).decode())
            return part
    return MIMEText(body, "plain", charset)


def message(sender_name: str, sender: str, subject: str, body: str, *, charset: str, html: str | None = None, extra: dict | None = None) -> bytes:
    if html:
        msg = MIMEMultipart("alternative") if body else MIMEText(html, "html", charset)
        if body:
            msg.attach(MIMEText(body, "plain", charset))
            msg.attach(MIMEText(html, "html", charset))
    else:
        msg = _text_part(body, charset)
    header_charset = "utf-8" if charset == "shift_jis" else charset
    msg["From"] = formataddr((Header(sender_name, header_charset).encode(), sender)) if sender_name else sender
    msg["To"] = "jiro.ito@acme-sales.example"
    msg["Subject"] = Header(subject, header_charset).encode()
    msg["Date"] = "Thu, 19 Nov 2026 16:02:00 +0900"
    msg["Message-ID"] = f"<{zlib.crc32((sender + subject + body).encode())}@corpus.example>"
    for k, v in (extra or {}).items():
        msg[k] = v
    return msg.as_bytes()


def ja_messages(variant: int) -> list[tuple[str, bytes, dict, dict]]:
    out = []
    for i, p in enumerate(JA):
        last, first, lk, fk, company, dept, title, email, tel, mobile, url, zip_code, state, city, street = p
        label = {"first_name": first, "last_name": last, "email": email, "company": company, "title": title,
                 "phone": e164(tel, "JP"), "mobile": e164(mobile, "JP"), "website": url, "zip_code": zip_code, "city": city, "state": state}
        sig = ja_signature(p, i)
        greeting = "株式会社アクメセールス\n伊藤様\n\nいつもお世話になっております。\n" + f"{company}の{last}です。\n\n"
        text = greeting + "先日はお打ち合わせのお時間をいただき、ありがとうございました。\nお見積りの件、社内で検討いたしましたのでご連絡いたします。\n\n"
        ctx: dict = {}
        display = f"{last} {first}" if (i + variant) % 4 else f"{last}{first}"
        charset = ("iso-2022-jp", "utf-8", "shift_jis")[(i + variant) % 3]
        kind = (i + 3 * variant) % 8
        if kind == 0:
            body = text + "よろしくお願いいたします。\n\n━━━━━━━━━━━━━━━━━━━━\n" + sig + "\n━━━━━━━━━━━━━━━━━━━━\n"
        elif kind == 1:
            quoted = "\n".join("> " + ln for ln in ("ご提案ありがとうございます。", "", OUR_SIG_JA).__iter__() for ln in ln.split("\n"))
            body = text + "以上、よろしくお願いいたします。\n\n--\n" + sig + "\n\n2026年11月18日(水) 10:15 伊藤 次郎 <jiro.ito@acme-sales.example>:\n" + quoted + "\n"
        elif kind == 2:
            body = text + "よろしくお願い致します。\n\n" + sig + "\n\n" + DISCLAIMER_JA + "\n\n-----Original Message-----\n差出人: 伊藤 次郎 <jiro.ito@acme-sales.example>\n送信日時: 2026年11月18日 10:15\n宛先: " + email + "\n件名: ご提案\n\n" + OUR_SIG_JA + "\n"
        elif kind == 3:
            body = text.replace(company, company.replace("株式会社", "㈱")) + "何卒よろしくお願い申し上げます。\n\n" + sig.replace(company, company.replace("株式会社", "(株)")) + "\n\niPhoneから送信\n"
        elif kind == 4:
            rows = "".join(f"<tr><td>{ln}</td></tr>" for ln in sig.split("\n"))
            html = f"<html><body><p>{text.replace(chr(10), '<br>')}</p><p>よろしくお願いいたします。</p><table>{rows}</table></body></html>"
            out.append((f"ja_{i:02d}{'ab'[variant]}", message(display, email, "お見積りの件", "", charset="utf-8", html=html), label, ctx))
            continue
        elif kind == 5:
            form = (f"Webサイトからお問い合わせがありました。\n\n■会社名：{company}\n■部署名：{dept or 'なし'}\n■役職：{title}\n■お名前：{last} {first}\n"
                    f"■メールアドレス：{email}\n■電話番号：{tel or mobile}\n■郵便番号：{zip_code}\n■住所：{state}{city}{street}\n■お問い合わせ内容：\n資料を送ってください。\n")
            label = {**label, "website": None, "phone": e164(tel or "", "JP") if tel else None, "mobile": None if tel else e164(mobile, "JP")}
            out.append((f"ja_{i:02d}{'ab'[variant]}", message("お問い合わせフォーム", "no-reply@form.acme-sales.example", "【お問い合わせ】資料請求", form, charset=charset), label, ctx))
            continue
        elif kind == 6:
            fwd = ("新規の見込み客です。対応をお願いします。\n\n佐々木\n\n---------- Forwarded message ---------\n"
                   f"From: {last} {first} <{email}>\nDate: 2026年11月18日(水) 9:00\nSubject: 導入のご相談\nTo: <info@acme-sales.example>\n\n"
                   + text + "よろしくお願いいたします。\n\n" + sig + "\n")
            ctx = {"own_domains": [OWN]}
            out.append((f"ja_{i:02d}{'ab'[variant]}", message("佐々木 健一", "k.sasaki@acme-sales.example", "Fwd: 導入のご相談", fwd, charset="utf-8"), label, ctx))
            continue
        else:
            body = text + "よろしくお願いいたします。\n\n----------------------------------\n" + sig + "\n----------------------------------\n"
        out.append((f"ja_{i:02d}{'ab'[variant]}", message(display, email, "Re: お見積りの件", body, charset=charset), label, ctx))
    return out


def en_messages(variant: int) -> list[tuple[str, bytes, dict, dict]]:
    out = []
    for i, p in enumerate(EN):
        first, last, company, title, email, phone, mobile, url, street, city, state, zip_code, country = p
        region = {"co.uk": "GB", ".de": "DE", ".fr": "FR", ".ch": "CH"}
        reg = next((r for k, r in region.items() if email.endswith(k)), "US")
        if "solucionesandinas" in email:
            reg = "ES"
        label = {"first_name": first, "last_name": last, "email": email, "company": company, "title": title,
                 "phone": e164(phone, reg), "mobile": e164(mobile, reg), "website": url.replace("https://", "") if i % 3 == 0 else url,
                 "zip_code": zip_code or None, "city": city or None, "state": state or None}
        sig = en_signature(p, i)
        text = "Hi Jiro,\n\nThanks for the call yesterday. We would like a quote for 50 seats and a short demo next week.\nCould you send over the pricing sheet?\n\n"
        ctx: dict = {}
        kind = (i + 3 * variant) % 8
        display = [f"{first} {last}", f"{last}, {first}", f"{first.lower()} {last.lower()}", ""][(i + variant) % 4]
        if display == "" and "." not in email.split("@")[0]:
            display = f"{first} {last}"
        if kind == 0:
            body = text + "Best regards,\n\n" + sig + "\n"
        elif kind == 1:
            body = text + "Thanks,\n" + sig + "\n\nOn Wed, Nov 18, 2026 at 10:15 AM Jiro Ito <jiro.ito@acme-sales.example> wrote:\n> Hello,\n> please find our proposal attached.\n>\n" + "\n".join("> " + ln for ln in OUR_SIG_EN.split("\n")) + "\n"
        elif kind == 2:
            body = text + "Kind regards,\n" + sig + "\n\n" + DISCLAIMER_EN + "\n\n-----Original Message-----\nFrom: Jiro Ito <jiro.ito@acme-sales.example>\nSent: Wednesday, November 18, 2026 10:15 AM\nTo: " + email + "\nSubject: Proposal\n\n" + OUR_SIG_EN + "\n"
        elif kind == 3:
            body = text + "Cheers,\n" + sig + "\n\nSent from my iPhone\n"
        elif kind == 4:
            rows = "".join(f"<tr><td style='font-size:12px'>{ln}</td></tr>" for ln in sig.split("\n"))
            html = f"<html><body><div>{text.replace(chr(10), '<br>')}</div><div>Best,</div><table cellpadding=0>{rows}</table></body></html>"
            out.append((f"en_{i:02d}{'ab'[variant]}", message(display, email, "Quote request", "", charset="utf-8", html=html), label, ctx))
            continue
        elif kind == 5:
            form = (f"New contact form submission\n\nName: {first} {last}\nCompany: {company}\nJob Title: {title}\nEmail: {email}\n"
                    f"Phone: {phone or mobile}\nMessage: Please contact me about pricing.\n\n--\nSent by the website form\n")
            label = {**label, "website": None, "mobile": None if phone else label["mobile"], "zip_code": None, "city": None, "state": None}
            if not phone:
                label["phone"] = None
            out.append((f"en_{i:02d}{'ab'[variant]}", message("Website", "noreply@forms.acme-sales.example", "New form submission", form, charset="utf-8"), label, ctx))
            continue
        elif kind == 6:
            fwd = ("FYI - new inbound lead for you.\n\nKen\n\n---------- Forwarded message ---------\n"
                   f"From: {first} {last} <{email}>\nDate: Wed, Nov 18, 2026 at 9:00 AM\nSubject: Demo request\nTo: <info@acme-sales.example>\n\n"
                   + text + "Best regards,\n" + sig + "\n")
            ctx = {"own_domains": [OWN]}
            out.append((f"en_{i:02d}{'ab'[variant]}", message("Ken Sasaki", "ken.sasaki@acme-sales.example", "Fwd: Demo request", fwd, charset="utf-8"), label, ctx))
            continue
        else:
            body = text + "--\n" + sig + "\n"
        out.append((f"en_{i:02d}{'ab'[variant]}", message(display, email, "Re: Quote request", body, charset="utf-8"), label, ctx))
    return out


def main() -> None:
    labels = {}
    for name, raw, label, ctx in [m for v in (0, 1) for m in ja_messages(v) + en_messages(v)]:
        (HERE / f"{name}.eml").write_bytes(raw)
        labels[name] = {"expected": {f: label.get(f) or None for f in FIELDS}, "context": ctx}
    (HERE / "labels.json").write_text(json.dumps(labels, ensure_ascii=False, indent=1, sort_keys=True) + "\n")
    print(f"{len(labels)} messages")


if __name__ == "__main__":
    main()
