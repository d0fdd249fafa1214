//! Helpers shared by the benchmark drivers.

/// The `p` quantile (0.0–1.0, nearest rank) of `sorted` latencies, divided
/// by 1000 (ns → µs, or µs → ms). 0 for no samples.
pub fn percentile<T: Copy + Into<u64>>(sorted: &[T], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let v: u64 = sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].into();
    v as f64 / 1000.0
}
