//! A latency histogram that a request adds to with one atomic increment,
//! emptied into EMF's `{"Values": [...], "Counts": [...]}` form, from which
//! CloudWatch computes percentiles.
//!
//! Buckets grow by 25% from 0.05 ms, so a value is reported within about
//! 12% (the bucket's geometric middle); 70 buckets reach past two minutes,
//! under EMF's limit of 100 values per metric. Longer values (a stream's
//! whole life) share the last bucket.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

const FIRST_BOUND_MS: f64 = 0.05;
const GROWTH: f64 = 1.25;
const BUCKETS: usize = 70;

#[derive(Debug)]
pub(crate) struct Histogram {
    counts: [AtomicU64; BUCKETS],
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Histogram {
    pub(crate) fn record(&self, latency: Duration) {
        self.counts[bucket(latency)].fetch_add(1, Ordering::Relaxed);
    }

    /// The (value in ms, count) of every non-empty bucket, emptying them.
    pub(crate) fn take(&self) -> Vec<(f64, u64)> {
        self.counts
            .iter()
            .enumerate()
            .filter_map(|(index, count)| {
                let count = count.swap(0, Ordering::Relaxed);
                (count > 0).then(|| (value_ms(index), count))
            })
            .collect()
    }
}

/// Each bucket's upper bound in nanoseconds: bucket `i` holds latencies up
/// to `FIRST_BOUND_MS * GROWTH^i` ms (above the bound of `i - 1`).
const UPPER_BOUNDS_NS: [u64; BUCKETS] = {
    let mut bounds = [0; BUCKETS];
    let mut bound = FIRST_BOUND_MS * 1_000_000.0;
    let mut index = 0;
    while index < BUCKETS {
        bounds[index] = bound as u64;
        bound *= GROWTH;
        index += 1;
    }
    bounds
};

/// A request's bucket: a binary search of the bounds (integers; no
/// logarithm per request).
fn bucket(latency: Duration) -> usize {
    let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
    UPPER_BOUNDS_NS
        .partition_point(|&bound| bound < nanos)
        .min(BUCKETS - 1)
}

/// The value that stands for bucket `index`: the geometric middle of its
/// bounds (the last bucket: its lower bound).
fn value_ms(index: usize) -> f64 {
    let exponent = if index == BUCKETS - 1 {
        index as f64 - 1.0
    } else {
        index as f64 - 0.5
    };
    // Three significant decimals are plenty for a 25%-wide bucket.
    (FIRST_BOUND_MS * GROWTH.powf(exponent) * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_within_their_bucket_width() {
        for ms in [0.06, 0.5, 1.0, 3.3, 12.0, 250.0, 4_000.0, 60_000.0] {
            let reported = value_ms(bucket(Duration::from_secs_f64(ms / 1000.0)));
            let error = (reported - ms).abs() / ms;
            assert!(error < 0.13, "{ms} ms reported as {reported} ms");
        }
        assert!(
            value_ms(BUCKETS - 1) > 120_000.0,
            "the last bucket starts past two minutes"
        );
    }

    #[test]
    fn buckets_are_where_the_logarithm_puts_them() {
        // The definition: the smallest i with ms <= 0.05 * 1.25^i.
        let by_logarithm = |ms: f64| {
            if ms <= FIRST_BOUND_MS {
                return 0;
            }
            let index = ((ms / FIRST_BOUND_MS).ln() / GROWTH.ln()).ceil();
            (index as usize).min(BUCKETS - 1)
        };
        let mut micros = 0_u64;
        while micros < 200_000_000 {
            let ms = micros as f64 / 1000.0;
            let found = bucket(Duration::from_micros(micros));
            // A value on a bound may fall either side of it in floating point.
            let expected = by_logarithm(ms);
            assert!(
                found.abs_diff(expected) <= 1,
                "{micros} us: {found} vs {expected}"
            );
            if found != expected {
                let bound = FIRST_BOUND_MS * GROWTH.powi(found.min(expected) as i32);
                assert!(
                    (ms - bound).abs() / bound < 1e-9,
                    "{micros} us is not on a bound"
                );
            }
            micros += 1 + micros / 50;
        }
    }

    #[test]
    fn take_reports_counts_once() {
        let histogram = Histogram::default();
        for _ in 0..3 {
            histogram.record(Duration::from_millis(2));
        }
        histogram.record(Duration::from_secs(3600));
        let taken = histogram.take();
        assert_eq!(taken.iter().map(|(_, count)| count).sum::<u64>(), 4);
        assert_eq!(taken.len(), 2);
        assert!(histogram.take().is_empty());
    }
}
