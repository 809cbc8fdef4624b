//! The `berth` binary: parse argv, pick the role. Everything else lives in the library.

use berth::cli::{Cli, Command};
use clap::Parser;

fn main() {
    // The monitor runs once per container for the container's whole life: it skips clap
    // (whose command tree would be built, and kept resident, for one positional argument).
    let mut args = std::env::args_os();
    if args.next().is_some_and(|a0| berth::init::invoked_as_init(&a0)) {
        std::process::exit(berth::init::run(args.collect()));
    }
    let mut args = std::env::args_os();
    if args.nth(1).as_deref() == Some(std::ffi::OsStr::new("monitor")) {
        let code = match (args.next(), args.next()) {
            (Some(bundle), None) => berth::monitor::run(std::path::Path::new(&bundle)),
            _ => {
                eprintln!("usage: berth monitor <bundle>");
                2
            }
        };
        std::process::exit(code);
    }
    let cli = Cli::parse();
    let code = match cli.command {
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
        Command::Supervise(args) => {
            let _ = tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false).try_init();
            match berth::watchdog::supervise::run(args, cli.host.clone()) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("berth supervise: {e:#}");
                    1
                }
            }
        }
        Command::CheckConfig { config, fragment, board_profile } => {
            berth::kconfig::run(config.as_deref(), fragment, board_profile.as_deref())
        }
        Command::Board { command } => berth::board::run(command),
        Command::Tls { command } => match berth::tls::certs::run(command) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("berth tls: {e:#}");
                1
            }
        },
        Command::System { command: berth::cli::SystemCommand::Watchdog { state_dir } } => {
            let h = berth::watchdog::history::History::load(&state_dir);
            println!("{:<32} {:>9}  {:<24} REASON", "WHEN", "WAITED", "ENDED");
            for e in &h.entries {
                println!("{:<32} {:>7}ms  {:<24} {}", e.at, e.delay_ms, e.status, e.reason);
            }
            0
        }
        Command::System { command: berth::cli::SystemCommand::Check { repair, flags } } => {
            tracing_subscriber_init();
            match berth::check::run(&flags, repair) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("berth system check: {e:#}");
                    2
                }
            }
        }
        _ => berth::cli::main(cli),
    };
    std::process::exit(code);
}

/// Recovery run by `system check --repair` logs like the daemon (warnings and above).
fn tracing_subscriber_init() {
    let _ = tracing_subscriber::fmt().with_max_level(tracing::Level::WARN).with_writer(std::io::stderr).with_target(false).try_init();
}
