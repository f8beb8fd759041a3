//! Customer notices: the texts the platform sends customers, with `{placeholders}` staff may reword per
//! language (the defaults live here).

use crate::{DomainError, Language, macros::string_enum};

string_enum! {
    /// A kind of customer notice.
    pub enum NoticeKind (field = "kind") {
        /// A free trial started: `{until}`.
        TrialStarted => "trial_started",
        /// A payment was credited: `{amount}`, `{currency}`, `{until}`.
        PaymentCompleted => "payment_completed",
        /// A payment was refunded: `{amount}`, `{currency}`, `{until}`.
        PaymentRefunded => "payment_refunded",
        /// The subscription ends soon: `{left}`.
        ExpirySoon => "expiry_soon",
        /// The subscription ended.
        ExpiryEnded => "expiry_ended",
        /// The plan's traffic is used up.
        TrafficLimited => "traffic_limited",
        /// A purchase earned invite codes: `{count}`, `{days}`.
        InvitesIssued => "invites_issued",
        /// An invite code gave free access: `{days}`, `{until}`.
        InviteRedeemed => "invite_redeemed",
        /// An invited friend paid, earning the inviter days: `{days}`, `{until}`.
        InviteBonus => "invite_bonus",
        /// A loyalty level was reached: `{level}`, `{bonus}` (days), `{until}`.
        LoyaltyLevelUp => "loyalty_level_up",
        /// The loyalty grace period ends soon: `{level}`, `{until}`.
        LoyaltyGraceEnding => "loyalty_grace_ending",
    }
}

/// Longest notice text (Telegram's message limit).
pub const MAX_NOTICE_CHARS: usize = 4096;

impl NoticeKind {
    /// The placeholders this notice fills in.
    pub const fn placeholders(self) -> &'static [&'static str] {
        match self {
            Self::TrialStarted => &["until"],
            Self::PaymentCompleted | Self::PaymentRefunded => &["amount", "currency", "until"],
            Self::ExpirySoon => &["left"],
            Self::ExpiryEnded | Self::TrafficLimited => &[],
            Self::InvitesIssued => &["count", "days"],
            Self::InviteRedeemed | Self::InviteBonus => &["days", "until"],
            Self::LoyaltyLevelUp => &["level", "bonus", "until"],
            Self::LoyaltyGraceEnding => &["level", "until"],
        }
    }

    /// The built-in text in `language`.
    pub const fn default_text(self, language: Language) -> &'static str {
        match (self, language) {
            (Self::TrialStarted, Language::En) => "Your free trial is active until {until}. Enjoy!",
            (Self::TrialStarted, Language::Ru) => {
                "Ваш бесплатный период активен до {until}. Приятного пользования!"
            }
            (Self::PaymentCompleted, Language::En) => {
                "Your payment of {amount} {currency} was received: your CyberVPN subscription now runs until {until}."
            }
            (Self::PaymentCompleted, Language::Ru) => {
                "Платёж {amount} {currency} получен: подписка CyberVPN действует до {until}."
            }
            (Self::PaymentRefunded, Language::En) => {
                "Your payment of {amount} {currency} was refunded: your CyberVPN subscription now runs until {until}."
            }
            (Self::PaymentRefunded, Language::Ru) => {
                "Платёж {amount} {currency} возвращён: подписка CyberVPN действует до {until}."
            }
            (Self::ExpirySoon, Language::En) => {
                "Your CyberVPN subscription ends in {left}. Renew it to stay connected."
            }
            (Self::ExpirySoon, Language::Ru) => {
                "Ваша подписка CyberVPN закончится через {left}. Продлите её, чтобы не остаться без VPN."
            }
            (Self::ExpiryEnded, Language::En) => {
                "Your CyberVPN subscription has ended. Renew it to connect again."
            }
            (Self::ExpiryEnded, Language::Ru) => {
                "Ваша подписка CyberVPN закончилась. Продлите её, чтобы снова подключиться."
            }
            (Self::TrafficLimited, Language::En) => {
                "You have used all the traffic of your CyberVPN plan. It renews with your plan, or buy more."
            }
            (Self::TrafficLimited, Language::Ru) => {
                "Трафик вашего тарифа CyberVPN закончился. Он обновится с тарифом, или докупите трафик."
            }
            (Self::InvitesIssued, Language::En) => {
                "Thank you for your purchase! You received {count} invite code(s): each gives a friend {days} days of CyberVPN for free. Find them under Invites."
            }
            (Self::InvitesIssued, Language::Ru) => {
                "Спасибо за покупку! Вы получили приглашений: {count}. Каждое даёт другу {days} дн. CyberVPN бесплатно. Они в разделе «Приглашения»."
            }
            (Self::InviteRedeemed, Language::En) => {
                "Your invite was accepted: {days} days of CyberVPN for free, until {until}."
            }
            (Self::InviteRedeemed, Language::Ru) => {
                "Приглашение принято: {days} дн. CyberVPN бесплатно, до {until}."
            }
            (Self::InviteBonus, Language::En) => {
                "A friend you invited has subscribed: you get {days} extra days, your subscription now runs until {until}."
            }
            (Self::InviteBonus, Language::Ru) => {
                "Приглашённый вами друг оформил подписку: вам +{days} дн., подписка действует до {until}."
            }
            (Self::LoyaltyLevelUp, Language::En) => {
                "Thank you for staying with CyberVPN: you reached the {level} loyalty level! {bonus} bonus days are added, your subscription now runs until {until}."
            }
            (Self::LoyaltyLevelUp, Language::Ru) => {
                "Спасибо, что вы с CyberVPN: вы достигли уровня лояльности {level}! Начислено бонусных дней: {bonus}, подписка действует до {until}."
            }
            (Self::LoyaltyGraceEnding, Language::En) => {
                "Your {level} loyalty level is kept until {until}. Renew your CyberVPN subscription before then to keep it."
            }
            (Self::LoyaltyGraceEnding, Language::Ru) => {
                "Ваш уровень лояльности {level} сохранится до {until}. Продлите подписку CyberVPN до этого срока, чтобы не потерять его."
            }
        }
    }

    /// Checks a reworded text: 1 to 4096 characters, and only this notice's placeholders.
    pub fn validate(self, text: &str) -> Result<(), DomainError> {
        let chars = text.chars().count();
        if !(1..=MAX_NOTICE_CHARS).contains(&chars) {
            return Err(DomainError::invalid(
                "text",
                format!("must be 1 to {MAX_NOTICE_CHARS} characters"),
            ));
        }
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or_else(|| {
                DomainError::invalid(
                    "text",
                    "a `{` is not closed; placeholders look like {until}",
                )
            })?;
            let name = &after[..close];
            if !self.placeholders().contains(&name) {
                return Err(DomainError::invalid(
                    "text",
                    format!(
                        "unknown placeholder {{{name}}}; this notice has: {}",
                        self.placeholder_list()
                    ),
                ));
            }
            rest = &after[close + 1..];
        }
        Ok(())
    }

    /// The placeholders as `{a}, {b}` (or `none`).
    pub fn placeholder_list(self) -> String {
        if self.placeholders().is_empty() {
            return "none".to_owned();
        }
        self.placeholders()
            .iter()
            .map(|name| format!("{{{name}}}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Fills `{name}` placeholders of `template` from `values`; unknown ones stay as written.
pub fn render(template: &str, values: &[(&str, String)]) -> String {
    values
        .iter()
        .fold(template.to_owned(), |text, (name, value)| {
            text.replace(&format!("{{{name}}}"), value)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_use_only_their_placeholders_in_every_language() {
        for kind in NoticeKind::ALL {
            for language in Language::ALL {
                kind.validate(kind.default_text(*language)).unwrap();
            }
        }
    }

    #[test]
    fn rewording_is_checked_and_rendered() {
        let kind = NoticeKind::PaymentCompleted;
        assert!(
            kind.validate("Thanks! {amount} {currency}, until {until}")
                .is_ok()
        );
        assert!(kind.validate("Until {left}").is_err(), "not this notice's");
        assert!(kind.validate("Broken {until").is_err());
        assert!(kind.validate("").is_err());
        assert!(NoticeKind::ExpiryEnded.validate("Renew now").is_ok());
        assert_eq!(
            render(
                "{amount} {currency} until {until}",
                &[
                    ("amount", "9.99".into()),
                    ("currency", "USD".into()),
                    ("until", "2026-12-01".into())
                ]
            ),
            "9.99 USD until 2026-12-01"
        );
    }
}
