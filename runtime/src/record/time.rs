//! The one way Sluice writes a time: RFC 3339 in UTC with milliseconds
//! (`2026-11-24T09:26:34.074Z`), in `meta`, envelopes and positions.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The current time.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// A time given in milliseconds since the epoch (negative ones as the epoch).
pub fn rfc3339_millis(ms: i64) -> String {
    let ms = u64::try_from(ms).unwrap_or(0);
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_are_written_in_utc_with_three_decimals() {
        assert_eq!(
            rfc3339_millis(1_767_323_045_250),
            "2026-01-02T03:04:05.250Z"
        );
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(-5), "1970-01-01T00:00:00.000Z");
        assert!(now_rfc3339().ends_with('Z'));
    }
}
