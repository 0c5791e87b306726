//! [`JsonLines`]: each event as one JSON object, written directly rather
//! than through tracing-subscriber's JSON formatter (serde_json through an
//! adaptor that re-checks UTF-8 on every write, Debug-formatting values),
//! which cost about 1 us more a line.

use std::{fmt as text, time::SystemTime};

use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    registry::LookupSpan,
};

/// One JSON object per event: `timestamp`, `level`, `target`, then the
/// event's own fields (`message` among them) at the top level, as
/// tracing-subscriber's `.json().flatten_event(true)` writes them.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> text::Result {
        let metadata = event.metadata();
        let timestamp = humantime::format_rfc3339_micros(SystemTime::now());
        write!(
            writer,
            r#"{{"timestamp":"{timestamp}","level":"{}","target":"#,
            metadata.level()
        )?;
        write_json_string(&mut writer, metadata.target())?;
        let mut fields = JsonFields {
            writer: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str("}\n")
    }
}

/// Writes each field as `,"name":value`.
struct JsonFields<'a, 'w> {
    writer: &'a mut Writer<'w>,
    result: text::Result,
}

impl JsonFields<'_, '_> {
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> text::Result) {
        if self.result.is_ok() {
            self.result = self
                .writer
                .write_char(',')
                .and_then(|()| write_json_string(self.writer, field.name()))
                .and_then(|()| self.writer.write_char(':'))
                .and_then(|()| value(self.writer));
        }
    }
}

impl Visit for JsonFields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, |w| write_json_string(w, value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |w| write!(w, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity: those become strings.
        if value.is_finite() {
            self.field(field, |w| write!(w, "{value}"));
        } else {
            self.field(field, |w| write_json_string(w, &value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn text::Debug) {
        // Formatted messages and `?value` / `%value` fields, escaped as
        // they are formatted: no String per field.
        self.field(field, |w| {
            w.write_char('"')?;
            text::Write::write_fmt(&mut JsonEscaped(w), format_args!("{value:?}"))?;
            w.write_char('"')
        });
    }
}

/// Escapes what is written through it as the inside of a JSON string.
struct JsonEscaped<'a, W>(&'a mut W);

impl<W: text::Write> text::Write for JsonEscaped<'_, W> {
    fn write_str(&mut self, text: &str) -> text::Result {
        write_json_chars(self.0, text)
    }
}

/// `value` as a JSON string literal.
fn write_json_string(writer: &mut impl text::Write, value: &str) -> text::Result {
    writer.write_char('"')?;
    write_json_chars(writer, value)?;
    writer.write_char('"')
}

/// `value` escaped as the inside of a JSON string literal.
fn write_json_chars(writer: &mut impl text::Write, value: &str) -> text::Result {
    json_escaped(value, |piece| writer.write_str(piece))
}

/// Hands `value` to `write` in pieces that together are `value` escaped as
/// the inside of a JSON string literal (shared with the access line).
pub(super) fn json_escaped<E>(
    value: &str,
    mut write: impl FnMut(&str) -> Result<(), E>,
) -> Result<(), E> {
    let mut clean_from = 0;
    // Every byte that needs escaping is ASCII, so slicing around it is safe.
    for (at, byte) in value.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..0x20 => CONTROL_ESCAPES[usize::from(byte)],
            _ => continue,
        };
        write(&value[clean_from..at])?;
        write(escape)?;
        clean_from = at + 1;
    }
    write(&value[clean_from..])
}

/// `\u00XX` for each control character.
const CONTROL_ESCAPES: [&str; 0x20] = [
    "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007",
    "\\u0008", "\\u0009", "\\u000a", "\\u000b", "\\u000c", "\\u000d", "\\u000e", "\\u000f",
    "\\u0010", "\\u0011", "\\u0012", "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017",
    "\\u0018", "\\u0019", "\\u001a", "\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f",
];

#[cfg(test)]
mod tests {
    use std::{
        io::{self, Write},
        sync::{Arc, Mutex},
    };

    use tracing_subscriber::EnvFilter;

    use super::super::{LogFormat, subscriber};

    /// An output that keeps what reached it.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<u8>>>);

    impl Write for Recorder {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_are_valid_json_with_every_field() {
        let output = Recorder::default();
        let writer = output.clone();
        let subscriber = subscriber(
            LogFormat::Json,
            EnvFilter::new("info"),
            move || writer.clone(),
            false,
        );
        let awkward = "quote \" backslash \\ newline \n tab \t bell \u{7} é 漢";
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(text = awkward, count = 42_u64, delta = -7_i64, ok = true, ratio = 0.25, code = ?Some(3), debug_text = ?awkward, shown = %awkward, "hello {}", "world");
            tracing::warn!(nan = f64::NAN, message = "plain");
        });
        let text = String::from_utf8(output.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect(l))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        let first = &lines[0];
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["target"], module_path!());
        assert_eq!(first["message"], "hello world");
        assert_eq!(first["text"], awkward);
        assert_eq!(
            (first["count"].as_u64(), first["delta"].as_i64()),
            (Some(42), Some(-7))
        );
        assert_eq!(
            (first["ok"].as_bool(), first["ratio"].as_f64()),
            (Some(true), Some(0.25))
        );
        assert_eq!(first["code"], "Some(3)");
        // Debug and Display values are escaped as they are formatted.
        assert_eq!(first["debug_text"], format!("{awkward:?}"));
        assert_eq!(first["shown"], awkward);
        let stamp = first["timestamp"].as_str().unwrap();
        assert!(humantime::parse_rfc3339(stamp).is_ok(), "{stamp}");
        assert_eq!(
            (lines[1]["level"].as_str(), lines[1]["nan"].as_str()),
            (Some("WARN"), Some("NaN"))
        );
        assert_eq!(lines[1]["message"], "plain");
    }
}
