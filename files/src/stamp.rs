//! Dates and times as pismo writes them, all in UTC (no time zone database): `YYYYMMDD-HHMMSS`
//! in run ids, study names and the files of saved drawings, and `YYYY-MM-DD HH:MM` in
//! listings. The calendar is the `time` crate's (proleptic Gregorian).

use time::{OffsetDateTime, PrimitiveDateTime};

/// The UTC date and time `unix_secs` seconds after 1970-01-01 00:00. A time past the last
/// second the calendar holds (9999-12-31 23:59:59) is shown as that second.
fn utc(unix_secs: u64) -> OffsetDateTime {
    i64::try_from(unix_secs)
        .ok()
        .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
        .unwrap_or_else(|| PrimitiveDateTime::MAX.assume_utc())
}

/// `YYYYMMDD-HHMMSS` in UTC (also names the drawings `pismo draw` saves).
pub fn utc_stamp(unix_secs: u64) -> String {
    let t = utc(unix_secs);
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `YYYY-MM-DD HH:MM` in UTC, the dates `pismo runs` lists.
pub fn utc_minute(unix_secs: u64) -> String {
    let t = utc(unix_secs);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps_match_the_calendar() {
        for (secs, stamp) in [
            (0, "19700101-000000"),
            (951_782_400, "20000229-000000"),
            (951_825_600, "20000229-120000"),
            (1_700_000_000, "20231114-221320"),
            (1_709_251_199, "20240229-235959"),
            (1_795_734_301, "20261126-230501"),
            (1_796_654_260, "20261207-143740"),
            (4_107_542_399, "21000228-235959"),
            (4_107_542_400, "21000301-000000"),
            (253_402_300_799, "99991231-235959"),
        ] {
            assert_eq!(utc_stamp(secs), stamp, "{secs}");
        }
    }

    #[test]
    fn listed_dates_match_the_calendar() {
        assert_eq!(utc_minute(0), "1970-01-01 00:00");
        assert_eq!(utc_minute(951_825_600), "2000-02-29 12:00");
        assert_eq!(utc_minute(1_796_654_260), "2026-12-07 14:37");
        assert_eq!(utc_minute(253_402_300_799), "9999-12-31 23:59");
    }

    #[test]
    fn times_past_the_calendar_show_its_last_second() {
        for secs in [253_402_300_800, i64::MAX as u64, u64::MAX] {
            assert_eq!(utc_stamp(secs), "99991231-235959", "{secs}");
        }
    }
}
