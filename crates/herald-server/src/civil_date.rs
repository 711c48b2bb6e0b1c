//! Calendar dates from Unix time, for the few places herald writes a date itself (HTTP `Date`
//! headers, WAMP-CRA timestamps, EspoCRM's debug lines) without a date library.

/// The proleptic Gregorian `(year, month, day)` of a day counted from 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
pub(crate) fn from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, u32::try_from(month).unwrap_or(1), u32::try_from(day).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::from_days;

    #[test]
    fn known_days() {
        assert_eq!(from_days(0), (1970, 1, 1));
        assert_eq!(from_days(-1), (1969, 12, 31));
        assert_eq!(from_days(11_016), (2000, 2, 29));
        assert_eq!(from_days(20_793), (2026, 12, 6));
    }
}
