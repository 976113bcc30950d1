//! Latency histograms: one from the callers of a measurement, and its one-line report.

/// The latencies (microseconds) of every caller of a measurement, in one histogram.
pub(crate) async fn collect(
    mut set: tokio::task::JoinSet<anyhow::Result<Vec<u64>>>,
) -> anyhow::Result<hdrhistogram::Histogram<u64>> {
    let mut hist = hdrhistogram::Histogram::<u64>::new(3)?;
    while let Some(r) = set.join_next().await {
        for l in r?? {
            hist.record(l)?;
        }
    }
    Ok(hist)
}

/// Prints a latency histogram (microseconds) as a rate and percentiles.
pub(crate) fn report(label: &str, hist: &hdrhistogram::Histogram<u64>, secs: f64, what: &str) {
    println!(
        "{label}: {:>6.0} {what}/s, p50 {:.2} ms, p99 {:.2} ms  ({} {what})",
        hist.len() as f64 / secs,
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.len()
    );
}
