//! `faena-api`: thin entry point; the application lives in the library so tests can start it.

use std::process::ExitCode;

#[actix_web::main]
async fn main() -> ExitCode {
    let settings = match faena_core::Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("faena-api: {e}");
            return ExitCode::FAILURE;
        }
    };
    faena_core::telemetry::init(&settings);
    let app = match faena_api::Application::build(&settings).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("faena-api: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(bind = %settings.api_bind, port = app.port(), "Faena API listening");
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("faena-api: {e}");
            ExitCode::FAILURE
        }
    }
}
