//! The functions transformers adds to a chat template's globals: `raise_exception` (and
//! recognising its error afterwards) and `strftime_now`.

use std::fmt::Write as _;

use chrono::{DateTime, TimeZone};
use minijinja::{Error, ErrorKind, Value};

/// Marks an error as coming from the template's own `raise_exception` call.
#[derive(Debug)]
struct RaisedException(String);

impl std::fmt::Display for RaisedException {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RaisedException {}

pub(super) fn raise_exception(message: String) -> Result<Value, Error> {
    Err(
        Error::new(ErrorKind::InvalidOperation, "raise_exception called")
            .with_source(RaisedException(message)),
    )
}

pub(super) fn raised_message(err: &Error) -> Option<String> {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(raised) = cause.downcast_ref::<RaisedException>() {
            return Some(raised.0.clone());
        }
        source = cause.source();
    }
    None
}

/// `strftime_now(format)`: the local time now, formatted as Python's
/// `datetime.now().strftime(format)` formats it (Llama 3.1 templates put the date into the
/// system prompt this way). A format chrono does not know is an error naming it.
pub(super) fn strftime_now(format: String) -> Result<String, Error> {
    strftime(&chrono::Local::now(), &format)
}

fn strftime<Tz: TimeZone>(time: &DateTime<Tz>, format: &str) -> Result<String, Error>
where
    Tz::Offset: std::fmt::Display,
{
    let mut out = String::new();
    write!(out, "{}", time.format(format)).map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("strftime_now: {format:?} is not a strftime format chrono knows"),
        )
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(unix_seconds: i64) -> DateTime<chrono::Utc> {
        DateTime::from_timestamp(unix_seconds, 0).expect("a representable time")
    }

    #[test]
    fn strftime_formats_known_dates() {
        // 2024-07-26 13:25:09 UTC, a Friday.
        let t = utc(1_722_000_309);
        assert_eq!(
            strftime(&t, "%d %b %Y|%Y-%m-%d %H:%M:%S|%A %B %j %y %I%p %e %h %%").unwrap(),
            "26 Jul 2024|2024-07-26 13:25:09|Friday July 208 24 01PM 26 Jul %"
        );
        assert_eq!(
            strftime(&utc(0), "%F %T %a").unwrap(),
            "1970-01-01 00:00:00 Thu"
        );
        assert_eq!(strftime(&utc(951_782_400), "%F").unwrap(), "2000-02-29");
    }

    #[test]
    fn an_unknown_strftime_code_is_an_error_naming_the_format() {
        let message = strftime(&utc(0), "%Y %Q").unwrap_err().to_string();
        assert!(message.contains("\"%Y %Q\""), "{message}");
    }

    #[test]
    fn strftime_now_formats_the_local_time() {
        let format = "%Y-%m-%d %H:%M %z";
        let before = chrono::Local::now().format(format).to_string();
        let now = strftime_now(format.to_string()).unwrap();
        let after = chrono::Local::now().format(format).to_string();
        assert!(
            now == before || now == after,
            "{now} is neither {before} nor {after}"
        );
    }
}
