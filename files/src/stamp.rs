//! Timestamps in names: `YYYYMMDD-HHMMSS` in UTC, for run ids, study names and the files
//! of saved drawings, and the one calendar behind every date pismo prints: the proleptic
//! Gregorian calendar, in UTC (no time zone database).

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar.
pub fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so leap days end a year; 146097 days are 400 years.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era * 400 + yoe + u64::from(month <= 2);
    (year, month, day)
}

/// `YYYYMMDD-HHMMSS` in UTC (also names the drawings `pismo draw` saves).
pub fn utc_stamp(unix_secs: u64) -> String {
    let (y, mo, d) = civil_from_days(unix_secs / 86_400);
    let s = unix_secs % 86_400;
    format!(
        "{y:04}{mo:02}{d:02}-{:02}{:02}{:02}",
        s / 3_600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps_match_the_calendar() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        assert_eq!(utc_stamp(951_782_400), "20000229-000000");
        assert_eq!(utc_stamp(1_700_000_000), "20231114-221320");
        assert_eq!(utc_stamp(1_795_734_301), "20261126-230501");
        assert_eq!(utc_stamp(4_107_542_399), "21000228-235959");
        assert_eq!(utc_stamp(4_107_542_400), "21000301-000000");
    }
}
