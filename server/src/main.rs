//! The `lexgate` command: parses the command line, installs tracing and dispatches. `serve` and
//! `bench ask` go to the web layer ([`server::http`]); every other command to [`server::cli`].

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use server::cli::bench::BenchCommand;
use server::cli::{Cli, Command};
use server::http::app::Application;
use server::service::Platform;
use server::settings::Settings;

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let platform = Platform::open(settings).await?;
    let app = Application::build(&platform).await?;
    let host = platform.settings.bind.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h).to_owned();
    tracing::info!(port = app.port(), database = platform.backend_name(), "serving");
    println!("lexgate is serving at http://{host}:{}/", app.port());
    app.run_until_stopped().await?;
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut settings = server::cli::settings_from(&cli)?;
    // Every PDF this process reads is read by a child of this same binary, under limits.
    settings.pdf_worker = Some(std::env::current_exe().context("locating the lexgate binary")?);
    match &cli.command {
        Command::Serve { .. } => serve(settings).await,
        Command::Bench(BenchCommand::Ask { principal, concurrency, requests, cases, json }) => {
            server::http::bench::ask_command(settings, principal, cases, concurrency, *requests, json.as_deref()).await
        }
        command => server::cli::run(command, settings).await,
    }
}

fn main() -> ExitCode {
    // A PDF worker (see indexer::pdf_worker) does nothing else: no logging, no runtime.
    let mut args = std::env::args();
    if args.nth(1).as_deref() == Some(indexer::pdf_worker::WORKER_ARG) {
        let code = indexer::pdf_worker::worker_main(&args.next().unwrap_or_default());
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LEXGATE_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn,sea_orm_migration=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
