//! The `tessera` binary: `serve`, `load` and `info`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = tessera_server::cli::Cli::parse();
    tessera_server::cli::init_tracing(cli.verbose);
    match tessera_server::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            // Also on stderr without log decoration, for scripts.
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {e:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
