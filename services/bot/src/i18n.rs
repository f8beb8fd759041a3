//! Every customer-visible text, from the Fluent files in `locales/` (complete `en` and `ru`).

use std::{borrow::Cow, collections::HashMap};

use fluent_templates::{LanguageIdentifier, Loader, fluent_bundle::FluentValue};

fluent_templates::static_loader! {
    static LOCALES = {
        locales: "./locales",
        fallback_language: "en",
        // No Unicode isolation marks around arguments: Telegram shows them as garbage in some clients.
        customise: |bundle| bundle.set_use_isolating(false),
    };
}

/// A language the bot speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English (the fallback).
    En,
    /// Russian.
    Ru,
}

impl Lang {
    /// The language of an IETF tag (`ru-RU` → Ru); English for anything else.
    pub fn from_tag(tag: &str) -> Self {
        if tag
            .split(['-', '_'])
            .next()
            .is_some_and(|primary| primary.eq_ignore_ascii_case("ru"))
        {
            Self::Ru
        } else {
            Self::En
        }
    }

    /// The language stored as a number (1 English, 2 Russian), as the store keeps it.
    pub const fn number(self) -> i64 {
        match self {
            Self::En => 1,
            Self::Ru => 2,
        }
    }

    /// The language of [`Lang::number`]; English for anything else.
    pub const fn from_number(number: i64) -> Self {
        if number == 2 { Self::Ru } else { Self::En }
    }

    /// The primary subtag: `en` or `ru`.
    pub const fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Ru => "ru",
        }
    }

    fn id(self) -> LanguageIdentifier {
        match self {
            Self::En => fluent_templates::langid!("en"),
            Self::Ru => fluent_templates::langid!("ru"),
        }
    }
}

/// The text `key` in `lang`.
pub fn text(lang: Lang, key: &str) -> String {
    LOCALES.lookup(&lang.id(), key)
}

/// The text `key` in `lang` with its `{ $name }` arguments filled in.
pub fn text_with(lang: Lang, key: &str, args: &[(&'static str, String)]) -> String {
    let args: HashMap<Cow<'static, str>, FluentValue<'_>> = args
        .iter()
        .map(|(name, value)| (Cow::Borrowed(*name), FluentValue::from(value.clone())))
        .collect();
    LOCALES.lookup_with_args(&lang.id(), key, &args)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn keys(lang: &str) -> BTreeSet<String> {
        let path = format!("{}/locales/{lang}/bot.ftl", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter(|line| !line.starts_with([' ', '#']) && line.contains(" = "))
            .filter_map(|line| line.split(" = ").next().map(str::to_owned))
            .collect()
    }

    #[test]
    fn english_and_russian_have_the_same_texts() {
        let (en, ru) = (keys("en"), keys("ru"));
        assert!(en.len() > 50, "{en:?}");
        assert_eq!(en, ru);
    }

    #[test]
    fn texts_are_translated_and_filled_in_without_isolation_marks() {
        let en = text_with(Lang::En, "welcome", &[("name", "Ann".to_owned())]);
        let ru = text_with(Lang::Ru, "welcome", &[("name", "Аня".to_owned())]);
        assert!(en.starts_with("Welcome to CyberVPN, Ann!"), "{en}");
        assert!(ru.starts_with("Добро пожаловать в CyberVPN, Аня!"), "{ru}");
        assert!(!ru.contains('\u{2068}'));
        assert_eq!(Lang::from_tag("ru-RU"), Lang::Ru);
        assert_eq!(Lang::from_tag(""), Lang::En);
        assert_eq!(Lang::from_tag("de"), Lang::En);
    }
}
