//! Email-open markers: the signed token in `/o/{token}.gif` and who fetched it.
//!
//! `footfall-collector sign email --campaign C --recipient R` makes a token; a mail embeds
//! `<img src="https://COLLECTOR/o/TOKEN.gif">`. The token carries campaign and recipient in the
//! clear (they are the operator's own labels) and an HMAC-SHA256 tag under FOOTFALL_SECRET
//! (purpose `EmailOpen`), so only tokens the operator made are recorded: a forged or tampered
//! one still gets the GIF but no row.
//!
//! Layout before base64url (no padding): version byte `1`, campaign length (one byte),
//! campaign, recipient, then the 16-byte tag over everything before it.
//!
//! Many opens are not a person opening the mail but a mail provider's image proxy fetching it
//! ([`is_image_proxy`]); those are recorded and flagged (`via_proxy`), so reports can tell them
//! apart.

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::signing::{Purpose, Signer, TAG_LEN};

const VERSION: u8 = 1;
/// Longest campaign name, in bytes.
pub const CAMPAIGN_MAX: usize = 128;
/// Longest recipient, in bytes.
pub const RECIPIENT_MAX: usize = 256;
/// Longest token text: anything longer cannot be one of ours and is not decoded.
const TOKEN_TEXT_MAX: usize = (2 + CAMPAIGN_MAX + RECIPIENT_MAX + TAG_LEN).div_ceil(3) * 4;

/// A validly signed email open: which mailing, to whom. No `Debug`: the recipient is personal.
pub struct EmailOpen {
    pub campaign: String,
    pub recipient: String,
}

#[derive(Debug, thiserror::Error)]
pub enum EmailTokenError {
    #[error("the campaign must be 1 to {CAMPAIGN_MAX} bytes without control characters")]
    BadCampaign,
    #[error("the recipient must be 1 to {RECIPIENT_MAX} bytes without control characters")]
    BadRecipient,
}

fn plain(text: &str, max: usize) -> bool {
    (1..=max).contains(&text.len()) && !text.chars().any(char::is_control)
}

/// The token for one recipient of one campaign.
pub fn token(campaign: &str, recipient: &str, signer: &Signer) -> Result<String, EmailTokenError> {
    if !plain(campaign, CAMPAIGN_MAX) {
        return Err(EmailTokenError::BadCampaign);
    }
    if !plain(recipient, RECIPIENT_MAX) {
        return Err(EmailTokenError::BadRecipient);
    }
    let mut bytes = Vec::with_capacity(2 + campaign.len() + recipient.len() + TAG_LEN);
    bytes.push(VERSION);
    bytes.push(u8::try_from(campaign.len()).expect("bounded above"));
    bytes.extend_from_slice(campaign.as_bytes());
    bytes.extend_from_slice(recipient.as_bytes());
    let tag = signer.tag(Purpose::EmailOpen, &bytes);
    bytes.extend_from_slice(&tag);
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The marker's path for a token.
pub fn marker_path(token: &str) -> String {
    format!("/o/{token}.gif")
}

/// The open a token stands for, if it is one this collector's secret signed.
pub fn open(token: &str, signer: &Signer) -> Option<EmailOpen> {
    if token.len() > TOKEN_TEXT_MAX {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    let (signed, tag) = bytes.split_at_checked(bytes.len().checked_sub(TAG_LEN)?)?;
    if !signer.verify(Purpose::EmailOpen, signed, tag) {
        return None;
    }
    let (&[VERSION, campaign_len], rest) = signed.split_first_chunk::<2>()? else {
        return None;
    };
    let (campaign, recipient) = rest.split_at_checked(usize::from(campaign_len))?;
    let campaign = String::from_utf8(campaign.to_vec()).ok()?;
    let recipient = String::from_utf8(recipient.to_vec()).ok()?;
    (plain(&campaign, CAMPAIGN_MAX) && plain(&recipient, RECIPIENT_MAX)).then_some(EmailOpen {
        campaign,
        recipient,
    })
}

/// Whether a fetch of the marker came from a mail provider's image proxy rather than the
/// reader's own mail client: Gmail (`GoogleImageProxy`), Yahoo and AOL (`YahooMailProxy`), and
/// Apple Mail Privacy Protection (a bare `Mozilla/5.0` user agent, or Apple's network 17/8).
pub fn is_image_proxy(user_agent: &str, ip: IpAddr) -> bool {
    const MARKERS: [&str; 2] = ["GoogleImageProxy", "YahooMailProxy"];
    let apple_network = match ip.to_canonical() {
        IpAddr::V4(v4) => v4.octets()[0] == 17,
        IpAddr::V6(_) => false,
    };
    MARKERS.iter().any(|m| user_agent.contains(m))
        || user_agent.trim() == "Mozilla/5.0"
        || apple_network
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::new(b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn a_token_opens_to_its_campaign_and_recipient() {
        let t = token("autumn-sale", "subscriber-42", &signer()).unwrap();
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "URL-safe: {t}"
        );
        let open = open(&t, &signer()).unwrap();
        assert_eq!(open.campaign, "autumn-sale");
        assert_eq!(open.recipient, "subscriber-42");
        assert_eq!(marker_path(&t), format!("/o/{t}.gif"));
        let long = token(
            &"c".repeat(CAMPAIGN_MAX),
            &"r".repeat(RECIPIENT_MAX),
            &signer(),
        )
        .unwrap();
        assert!(long.len() <= TOKEN_TEXT_MAX);
        assert_eq!(
            super::open(&long, &signer()).unwrap().recipient.len(),
            RECIPIENT_MAX
        );
    }

    #[test]
    fn forged_tampered_and_garbage_tokens_are_refused() {
        let t = token("autumn", "r-1", &signer()).unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(&t).unwrap();
        bytes[3] ^= 1;
        let tampered = URL_SAFE_NO_PAD.encode(&bytes);
        let foreign = token(
            "autumn",
            "r-1",
            &Signer::new(b"another secret, also 32 characters!"),
        )
        .unwrap();
        for bad in [
            tampered.as_str(),
            foreign.as_str(),
            "",
            "x",
            "!!!!",
            &t[..t.len() - 2],
            &"A".repeat(5000),
        ] {
            assert!(open(bad, &signer()).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn bad_labels_are_refused_when_signing() {
        assert!(matches!(
            token("", "r", &signer()),
            Err(EmailTokenError::BadCampaign)
        ));
        assert!(matches!(
            token("c", "a\nb", &signer()),
            Err(EmailTokenError::BadRecipient)
        ));
        assert!(token(&"c".repeat(CAMPAIGN_MAX + 1), "r", &signer()).is_err());
    }

    #[test]
    fn image_proxies_are_recognised() {
        let home: IpAddr = "198.51.100.7".parse().unwrap();
        let gmail = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)";
        assert!(is_image_proxy(gmail, home));
        assert!(is_image_proxy(
            "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
            home
        ));
        assert!(
            is_image_proxy("Mozilla/5.0", home),
            "Apple Mail Privacy Protection"
        );
        assert!(
            is_image_proxy("Mozilla/5.0 (iPhone)", "17.58.1.2".parse().unwrap()),
            "Apple's network"
        );
        assert!(!is_image_proxy(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15",
            home
        ));
        assert!(!is_image_proxy("Microsoft Outlook 16.0", home));
    }
}
