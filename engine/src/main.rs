//! The `berth` binary: parse argv, pick the role. Everything else lives in the library.

use berth::cli::{Cli, Command};
use clap::Parser;

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        // The monitor must stay small: no async runtime, no logging setup.
        Command::Monitor { bundle } => berth::monitor::run(&bundle),
        Command::Daemon(mut flags) => {
            // `-H` is global: the CLI's target, or the daemon's listen addresses.
            flags.hosts = cli.host.clone();
            match berth::daemon::run(&flags) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("berth daemon: {e:#}");
                    1
                }
            }
        }
        _ => berth::cli::main(cli),
    };
    std::process::exit(code);
}
