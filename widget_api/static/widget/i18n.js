// The widget's texts in Japanese and English. Field names follow the API's lead fields.
"use strict";
const I18N = {
  ja: {
    title: "CRM", language: "言語", settings: "設定", connect: "CRM に接続", backend: "バックエンド URL", token: "API トークン",
    save_settings: "保存", already_captured: "このメールは登録済みです", existing: "この送信者は CRM に登録されています",
    update_empty: "空欄の項目を補完", create_anyway: "新規に作成", lead: "見込み客", save: "見込み客を保存",
    spam: "迷惑メール", not_spam: "迷惑メールではない", why_spam: "迷惑メールと判定された理由", invitation: "会議の招待",
    accept: "承諾", tentative: "仮承諾", decline: "辞退", loading: "読み込み中…", draft_ready: "下書きを表示しました",
    saved: "見込み客を保存しました", updated: "既存の見込み客を更新しました", moved: "受信トレイに移動しました",
    answered: "回答しました", unreachable: "バックエンドに接続できません。URL を確認してください。",
    bad_token: "トークンが無効です。設定を確認してください。", no_message: "メッセージが選択されていません。",
    suggestion: "候補", use: "使用", from_line: "出典", verified_no: "送信者を確認できません", in_calendar: "CRM カレンダーに登録済み",
    open_lead: "見込み客を開く", kind_new: "新しい招待", kind_update_minor: "更新", kind_update_major: "変更（再確認が必要）",
    kind_cancel: "キャンセル", kind_outdated: "古い招待", kind_unknown_cancel: "キャンセル（未登録）", kind_own: "自分の招待", kind_reply: "返信", kind_no_uid: "UID なし",
    first_name: "名", last_name: "姓", email: "メール", company: "会社名", title_field: "役職", phone: "電話", mobile: "携帯",
    website: "Web サイト", street: "番地", city: "市区町村", state: "都道府県", zip_code: "郵便番号", country: "国", description: "説明",
  },
  en: {
    title: "CRM", language: "Language", settings: "Settings", connect: "Connect to the CRM", backend: "Backend URL", token: "API token",
    save_settings: "Save", already_captured: "This message is already captured", existing: "This sender is already in the CRM",
    update_empty: "Fill empty fields", create_anyway: "Create anyway", lead: "Lead", save: "Save lead",
    spam: "Spam", not_spam: "Not spam", why_spam: "Why is this in spam?", invitation: "Invitation",
    accept: "Accept", tentative: "Tentative", decline: "Decline", loading: "Loading…", draft_ready: "Draft shown",
    saved: "Lead saved", updated: "Existing lead updated", moved: "Moved to the inbox",
    answered: "Answer sent", unreachable: "The backend cannot be reached. Check its URL.",
    bad_token: "The token is not valid. Check the settings.", no_message: "No message is selected.",
    suggestion: "Suggestion", use: "Use", from_line: "from", verified_no: "Sender not verified", in_calendar: "In the CRM calendar",
    open_lead: "Open the lead", kind_new: "New invitation", kind_update_minor: "Update", kind_update_major: "Changed (confirm again)",
    kind_cancel: "Cancelled", kind_outdated: "Outdated", kind_unknown_cancel: "Cancelled (not in the calendar)", kind_own: "Your own invitation", kind_reply: "Reply", kind_no_uid: "No UID",
    first_name: "First name", last_name: "Last name", email: "Email", company: "Company", title_field: "Title", phone: "Phone", mobile: "Mobile",
    website: "Website", street: "Street", city: "City", state: "State", zip_code: "Zip code", country: "Country", description: "Description",
  },
};
