//! Tracing setup: readable lines by default, JSON with `LOG_FORMAT=json`.

use tracing_subscriber::{fmt, EnvFilter};

use crate::settings::{LogFormat, Settings};

/// Installs the global subscriber for a process. Safe to call once per process.
pub fn init(settings: &Settings) {
    init_with(&settings.log_filter, settings.log_format);
}

/// Installs the global subscriber with an explicit filter and format (used before settings parse).
pub fn init_with(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.with_target(false).try_init(),
    };
}
