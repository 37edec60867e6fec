//! The part of C/Python `strftime` that chat templates use (`strftime_now("%d %b %Y")` in
//! Llama 3.1+), on a UTC Unix time, without a date-time dependency.

const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

struct DateTime {
    year: i64,
    /// 1..=12
    month: u32,
    /// 1..=31
    day: u32,
    /// 1..=366
    day_of_year: u32,
    /// 0 = Monday
    weekday: usize,
    hour: u32,
    minute: u32,
    second: u32,
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn date_time(unix_seconds: i64) -> DateTime {
    let days = unix_seconds.div_euclid(86_400);
    let second_of_day = unix_seconds.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    const DAYS_BEFORE_MONTH: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let day_of_year =
        DAYS_BEFORE_MONTH[month as usize - 1] + day + u32::from(month > 2 && is_leap(year));
    DateTime {
        year,
        month,
        day,
        day_of_year,
        // 1970-01-01 was a Thursday (index 3).
        weekday: (days + 3).rem_euclid(7) as usize,
        hour: second_of_day / 3600,
        minute: second_of_day / 60 % 60,
        second: second_of_day % 60,
    }
}

/// Formats like Python's `strftime` (glibc) for `%a %A %b %B %d %e %H %I %j %m %M %p %S %y %Y %%`,
/// with glibc's `%-d` style for no padding. Other directives are an error rather than a guess.
pub(crate) fn format_unix_seconds(unix_seconds: i64, format: &str) -> Result<String, String> {
    let t = date_time(unix_seconds);
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut directive = chars
            .next()
            .ok_or("strftime_now: format ends with a lone %")?;
        let unpadded = directive == '-';
        if unpadded {
            directive = chars.next().ok_or("strftime_now: format ends with %-")?;
        }
        let number = |value: u32, width: usize| {
            if unpadded {
                value.to_string()
            } else {
                format!("{value:0width$}")
            }
        };
        let hour12 = if t.hour % 12 == 0 { 12 } else { t.hour % 12 };
        let text = match directive {
            'a' => WEEKDAYS[t.weekday][..3].to_string(),
            'A' => WEEKDAYS[t.weekday].to_string(),
            'b' | 'h' => MONTHS[t.month as usize - 1][..3].to_string(),
            'B' => MONTHS[t.month as usize - 1].to_string(),
            'd' => number(t.day, 2),
            'e' => format!("{:2}", t.day),
            'H' => number(t.hour, 2),
            'I' => number(hour12, 2),
            'j' => number(t.day_of_year, 3),
            'm' => number(t.month, 2),
            'M' => number(t.minute, 2),
            'p' => if t.hour < 12 { "AM" } else { "PM" }.to_string(),
            'S' => number(t.second, 2),
            'y' => number(t.year.rem_euclid(100) as u32, 2),
            'Y' => t.year.to_string(),
            '%' => "%".to_string(),
            other => {
                return Err(format!(
                    "strftime_now: unsupported directive %{other} in {format:?}"
                ));
            }
        };
        out.push_str(&text);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::format_unix_seconds;

    // Expected strings are Python 3.11's datetime.fromtimestamp(t, timezone.utc).strftime(...).
    #[test]
    fn matches_python_strftime() {
        assert_eq!(
            format_unix_seconds(
                1_721_952_000,
                "%d %b %Y|%A %a %B %m %H:%M:%S %I %p %j %y %Y-%m-%d %%"
            )
            .unwrap(),
            "26 Jul 2024|Friday Fri July 07 00:00:00 12 AM 208 24 2024-07-26 %"
        );
        assert_eq!(
            format_unix_seconds(
                951_782_400 + 3600 * 15 + 61,
                "%d %b %Y|%A %a %B %m %H:%M:%S %I %p %j %y %-d %-m %e"
            )
            .unwrap(),
            "29 Feb 2000|Tuesday Tue February 02 15:01:01 03 PM 060 00 29 2 29"
        );
        assert_eq!(
            format_unix_seconds(-86_400 * 400, "%d %b %Y|%A %j").unwrap(),
            "27 Nov 1968|Wednesday 332"
        );
    }

    #[test]
    fn unknown_directive_is_an_error() {
        let err = format_unix_seconds(0, "%Q").unwrap_err();
        assert!(err.contains("%Q"), "{err}");
    }
}
