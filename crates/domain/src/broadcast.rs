//! Broadcasts: one message from staff to a group of customers in Telegram, delivered once to each.

use crate::{DomainError, macros::string_enum};

string_enum! {
    /// Who receives a broadcast (customers with a Telegram account who are not banned).
    pub enum BroadcastAudience (field = "audience") {
        /// Every customer.
        All => "all",
        /// Customers with a running paid subscription.
        Active => "active",
        /// Customers on a running free trial.
        Trial => "trial",
    }
}

string_enum! {
    /// Where a broadcast stands.
    pub enum BroadcastStatus (field = "status") {
        /// Written, previewed, not confirmed yet.
        Draft => "draft",
        /// Confirmed: being delivered.
        Sending => "sending",
        /// Every recipient was tried.
        Done => "done",
        /// Stopped by staff.
        Cancelled => "cancelled",
    }
}

string_enum! {
    /// What happened to one recipient's message.
    pub enum DeliveryOutcome (field = "outcome") {
        /// Telegram accepted it.
        Sent => "sent",
        /// The customer blocked the bot (or deleted their account).
        Blocked => "blocked",
        /// Telegram refused it for another reason.
        Failed => "failed",
    }
}

/// Longest broadcast text (Telegram's limit for a photo caption).
pub const MAX_CAPTION_CHARS: usize = 1024;
/// Longest broadcast text without a photo (Telegram's limit for a message).
pub const MAX_TEXT_CHARS: usize = 4096;

/// Checks a broadcast's text against Telegram's limits: 1 to 4096 characters, 1024 under a photo.
pub fn validate_text(text: &str, with_photo: bool) -> Result<(), DomainError> {
    let max = if with_photo {
        MAX_CAPTION_CHARS
    } else {
        MAX_TEXT_CHARS
    };
    let chars = text.chars().count();
    if (with_photo && chars == 0) || (1..=max).contains(&chars) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "text",
            format!("must be 1 to {max} characters"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_limits_follow_telegram() {
        assert!(validate_text("hi", false).is_ok());
        assert!(validate_text("", false).is_err());
        assert!(validate_text("", true).is_ok(), "a photo needs no caption");
        assert!(validate_text(&"я".repeat(4096), false).is_ok());
        assert!(validate_text(&"я".repeat(4097), false).is_err());
        assert!(validate_text(&"a".repeat(1025), true).is_err());
    }

    #[test]
    fn names_round_trip() {
        for audience in BroadcastAudience::ALL {
            assert_eq!(
                audience.as_str().parse::<BroadcastAudience>().unwrap(),
                *audience
            );
        }
        assert!("everyone".parse::<BroadcastAudience>().is_err());
    }
}
