""""Why is this in spam?" in the user's language, from a Diagnosis."""

from __future__ import annotations

from crm.domain.junk import Diagnosis

TEXT = {
    "en": {
        "method": "{method}: {result}{domain}{reason}",
        "for": " for {domain}",
        "none": "The receiving server recorded no sender authentication for this message.",
        "ok": "The sender's domain {domain} is authenticated.",
        "bad": "The sender's domain {domain} is not authenticated: the message may be forged.",
        "listed_bad": "{sender} is in your whitelist, but the message failed DMARC/SPF/DKIM for {domain} – possibly forged, so it stays in spam.",
        "listed_ok": "{sender} is in your whitelist and the message is authenticated: it will be moved to the inbox.",
        "score": "Spam filter ({filter}): score {score} (threshold {required}){rules}.",
        "rules": ", rules: {rules}",
    },
    "ja": {
        "method": "{method}: {result}{domain}{reason}",
        "for": "（{domain}）",
        "none": "受信サーバーはこのメッセージの送信者認証結果を記録していません。",
        "ok": "送信者のドメイン {domain} は認証されています。",
        "bad": "送信者のドメイン {domain} は認証されていません。なりすましの可能性があります。",
        "listed_bad": "{sender} はホワイトリストに登録されていますが、{domain} の DMARC/SPF/DKIM 認証に失敗しました。なりすましの可能性があるため、迷惑メールのままにしています。",
        "listed_ok": "{sender} はホワイトリストに登録されており、認証にも成功しています。受信トレイに移動します。",
        "score": "迷惑メールフィルター（{filter}）: スコア {score}（しきい値 {required}）{rules}。",
        "rules": "、ルール: {rules}",
    },
}


def explain(d: Diagnosis, language: str, whitelisted: bool = False) -> list[str]:
    t = TEXT.get(language, TEXT["en"])
    auth = d.authentication
    domain = auth.get("from_domain") or "?"
    lines = []
    if not auth.get("trusted_header"):
        lines.append(t["none"])
    else:
        for method in ("spf", "dkim", "dmarc"):
            check = auth[method]
            assert isinstance(check, dict)
            lines.append(
                t["method"].format(
                    method=method.upper(),
                    result=check["result"],
                    domain=t["for"].format(domain=check["domain"]) if check.get("domain") else "",
                    reason=f" ({check['reason']})" if check.get("reason") else "",
                )
            )
    if whitelisted:
        lines.append(t["listed_ok" if d.authenticated else "listed_bad"].format(sender=d.sender, domain=domain))
    else:
        lines.append(t["ok" if d.authenticated else "bad"].format(domain=domain))
    spam = d.spam
    if spam.get("filter"):
        rules = spam.get("rules") or []
        lines.append(t["score"].format(filter=spam["filter"], score=spam.get("score"), required=spam.get("required"), rules=t["rules"].format(rules=", ".join(rules)) if rules else ""))  # type: ignore[arg-type]
    return lines
