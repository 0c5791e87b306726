//! `google.protobuf.Timestamp` with the proto3 JSON form the spec requires.
//!
//! pbjson-types writes `2026-11-28T04:27:44.687073670+00:00`; proto3 JSON
//! says generated output is "Z-normalized" with 0, 3, 6 or 9 fractional
//! digits (`2026-11-28T04:27:44.687073670Z`), which is what grpc-gateway,
//! protobuf-java and Go's protojson write. pbjson-types has no option for
//! it, so build.rs maps the well-known type to this one (an extern path). On
//! the gRPC wire it is the same message (fields 1 and 2).

use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};

/// A point in time, UTC, as seconds and nanoseconds since the Unix epoch.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Message)]
pub struct Timestamp {
    /// Seconds since 1970-01-01T00:00:00Z.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Non-negative fractions of a second, 0 to 999,999,999.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    /// The time as chrono sees it; None when `nanos` is out of range or the
    /// time is beyond what chrono represents.
    pub fn to_datetime(self) -> Option<DateTime<Utc>> {
        let nanos = u32::try_from(self.nanos).ok()?;
        DateTime::from_timestamp(self.seconds, nanos)
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(time: DateTime<Utc>) -> Self {
        Self {
            seconds: time.timestamp(),
            // Below 2e9 (a leap second at most), so it fits.
            nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(999_999_999),
        }
    }
}

impl From<SystemTime> for Timestamp {
    fn from(time: SystemTime) -> Self {
        DateTime::<Utc>::from(time).into()
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let time = self.to_datetime().ok_or_else(|| {
            serde::ser::Error::custom(format!("timestamp out of range: {self:?}"))
        })?;
        // AutoSi: 0, 3, 6 or 9 fractional digits, as few as the value needs.
        serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Timestamp;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("an RFC 3339 timestamp")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Timestamp, E> {
                // Any offset is accepted on input, as the spec allows.
                let time = DateTime::parse_from_rfc3339(text).map_err(E::custom)?;
                Ok(time.with_timezone(&Utc).into())
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_z_normalised_with_0_3_6_or_9_digits() {
        for (seconds, nanos, json) in [
            (0, 0, "1970-01-01T00:00:00Z"),
            (1_479_000_000, 0, "2016-11-13T01:20:00Z"),
            (1_479_000_000, 10_000_000, "2016-11-13T01:20:00.010Z"),
            (1_479_000_000, 10_000, "2016-11-13T01:20:00.000010Z"),
            (1_479_000_000, 687_073_670, "2016-11-13T01:20:00.687073670Z"),
        ] {
            let timestamp = Timestamp { seconds, nanos };
            let written = serde_json::to_string(&timestamp).unwrap();
            assert_eq!(written, format!("\"{json}\""));
            assert_eq!(
                serde_json::from_str::<Timestamp>(&written).unwrap(),
                timestamp
            );
        }
    }

    #[test]
    fn offsets_are_accepted_on_input_and_nonsense_is_refused() {
        let parsed: Timestamp = serde_json::from_str("\"2016-11-13T02:20:00+01:00\"").unwrap();
        assert_eq!(
            parsed,
            Timestamp {
                seconds: 1_479_000_000,
                nanos: 0
            }
        );
        for bad in ["\"yesterday\"", "\"2016-11-13\"", "12"] {
            assert!(serde_json::from_str::<Timestamp>(bad).is_err(), "{bad}");
        }
        let out_of_range = Timestamp {
            seconds: 0,
            nanos: -1,
        };
        assert!(serde_json::to_string(&out_of_range).is_err());
    }
}
