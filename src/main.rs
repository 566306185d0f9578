//! `finprint` binary: the command-line edge. Parses arguments, sets up logging, and hands off to
//! the library. Errors become one clear line on stderr and a non-zero exit code.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Watches fish tanks, recognises individual fish by their skin pattern, keeps per-fish tracks.
#[derive(Debug, Parser)]
#[command(name = "finprint", version, about)]
struct Cli {
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info`, `finprint=debug,ort=warn`.
    /// Overrides `RUST_LOG`.
    #[arg(long, global = true)]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon on the cameras of a config file until SIGTERM/SIGINT.
    Run(finprint::service::RunArgs),
    /// Process a recording as fast as possible into the same outputs as `run`.
    Replay(finprint::pipeline::ReplayArgs),
    /// Score predicted tracks against ground truth (MOTA, IDF1, HOTA, ...).
    Eval(finprint::eval::EvalArgs),
    /// Render a simulated tank with ground truth (video, trajectories, crops, data set).
    Synth(finprint::synth::SynthArgs),
    /// Enroll individuals into the gallery from a folder of photos (folder per individual).
    Enroll(finprint::identify::EnrollArgs),
}

fn init_logging(filter: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = match filter {
        Some(f) => EnvFilter::try_new(f).unwrap_or_else(|_| EnvFilter::new("info")),
        None => {
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,ort=warn"))
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log.as_deref());
    let result: anyhow::Result<()> = match cli.command {
        Command::Run(a) => finprint::service::run(a).map_err(anyhow::Error::from),
        Command::Replay(a) => finprint::pipeline::replay(a).map_err(anyhow::Error::from),
        Command::Eval(a) => finprint::eval::run_cli(a).map_err(anyhow::Error::from),
        Command::Synth(a) => finprint::synth::run_cli(a).map_err(anyhow::Error::from),
        Command::Enroll(a) => finprint::identify::enroll_cli(a).map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes, joined.
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    msg.push_str(": ");
                    msg.push_str(&c);
                }
            }
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}
