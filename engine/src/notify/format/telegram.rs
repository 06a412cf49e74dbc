//! Telegram Bot API `sendMessage`: the target is `<bot token>:<chat id>` (the token itself
//! holds a `:`, so the chat id is after the last one); the text is HTML (`parse_mode: HTML`,
//! with `<`, `>`, `&` escaped) and at most 4096 characters, Telegram's limit.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{Batch, Context, bounded, parties, severity_name};
use crate::notify::secrets::SecretValue;

/// Longest message text.
pub const MAX_TEXT: usize = 4096;

/// A parsed target.
#[derive(Debug, Clone)]
pub struct Target {
    /// The bot token (`123456:ABC…`).
    pub token: SecretValue,
    /// The chat id (a number, or `@channel`).
    pub chat_id: String,
}

/// Parses `<bot token>:<chat id>`.
pub fn parse_target(value: &SecretValue) -> Option<Target> {
    let (token, chat) = value.expose().rsplit_once(':')?;
    let chat_ok = chat
        .strip_prefix('-')
        .unwrap_or(chat)
        .bytes()
        .all(|b| b.is_ascii_digit())
        || (chat.starts_with('@') && chat.len() > 1);
    let token_ok = token.contains(':')
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b':' || b == b'_' || b == b'-');
    (chat_ok && token_ok && !chat.is_empty()).then(|| Target {
        token: SecretValue::new(token),
        chat_id: chat.to_owned(),
    })
}

/// Escapes text for `parse_mode: HTML`.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The `sendMessage` body.
pub fn payload(batch: &Batch, ctx: &Context, chat_id: &str) -> Value {
    let mut text = format!("<b>{}</b>\n", escape(&batch.headline()));
    for a in &batch.alerts {
        let p = parties(a);
        let mut item = format!(
            "\n<b>{}</b> ({}, score {})\n{}\nattacker: {} · victim: {}\n",
            escape(&a.alert_type),
            severity_name(a.severity),
            a.score,
            escape(&bounded(&a.message, 500)),
            escape(p.attacker.as_deref().unwrap_or("-")),
            escape(p.victim.as_deref().unwrap_or("-")),
        );
        if let Some(link) = ctx.link(a) {
            let _ = writeln!(item, "<a href=\"{}\">open alert</a>", escape(&link));
        }
        if text.chars().count() + item.chars().count() > MAX_TEXT - 100 {
            text.push_str("\n…");
            break;
        }
        text.push_str(&item);
    }
    if batch.suppressed > 0 {
        let _ = write!(
            text,
            "\n{} alerts held back by the rate limit",
            batch.suppressed
        );
    }
    json!({
        "chat_id": chat_id,
        "text": text,
        "parse_mode": "HTML",
        "disable_web_page_preview": true,
    })
}
