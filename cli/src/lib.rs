//! What both of Footfall's binaries do at their edges: set up logging, and report the error that
//! ends a command.
//!
//! A small crate of its own so that the aggregator need not depend on the collector (nor the
//! collector on the aggregator) to share these few lines, and so that the two binaries cannot
//! drift apart in how they speak to an operator.
//!
//! **One report per error.** Returning the error from `main` printed it with `{:?}`: the message,
//! then every cause again in a "Caused by" list (a message that already quotes its cause showed
//! it twice), then a 30-frame backtrace wherever `RUST_BACKTRACE` was set, which many shells and
//! CI images set for panics. [`report`] prints the message once, each cause only where it says
//! something the text before it did not, and a backtrace only when asked with
//! `RUST_LIB_BACKTRACE=1` (the switch Rust's error libraries use for exactly this).

use std::error::Error;
use std::fmt::{Display, Write as _};
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

/// Logs to standard error (standard output carries a command's output: CSV, JSON, what `sign`
/// signed), at the level `FOOTFALL_LOG` gives (`info` by default, e.g. `debug` or
/// `footfall_collector=debug`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("FOOTFALL_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// The exit status of a command: success, or failure after the error is printed once on
/// standard error.
pub fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let backtrace_asked =
                std::env::var_os("RUST_LIB_BACKTRACE").is_some_and(|v| !v.is_empty() && v != "0");
            eprint!(
                "{}",
                report(
                    error.as_ref(),
                    backtrace_asked.then(|| error.backtrace() as &dyn Display)
                )
            );
            ExitCode::FAILURE
        }
    }
}

/// `error: MESSAGE`, then `  caused by: CAUSE` for each cause the text so far does not already
/// hold, then the backtrace if one is given.
pub fn report(error: &(dyn Error + 'static), backtrace: Option<&dyn Display>) -> String {
    let mut said = error.to_string();
    let mut out = format!("error: {said}\n");
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !said.contains(&text) {
            let _ = writeln!(out, "  caused by: {text}");
            said.push('\n');
            said.push_str(&text);
        }
        source = cause.source();
    }
    if let Some(backtrace) = backtrace {
        let _ = writeln!(out, "\n{backtrace}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    fn refused() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused")
    }

    #[test]
    fn each_cause_is_printed_once_and_only_if_it_adds_something() {
        #[derive(Debug)]
        struct Quoting(std::io::Error);
        impl Display for Quoting {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "network error: {}", self.0)
            }
        }
        impl Error for Quoting {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&self.0)
            }
        }
        let error = Err::<(), _>(Quoting(refused()))
            .context("could not read the pages report")
            .unwrap_err();
        assert_eq!(
            report(error.as_ref(), None),
            "error: could not read the pages report\n  caused by: network error: connection refused\n"
        );
    }

    #[test]
    fn a_backtrace_only_when_given() {
        let error = anyhow::Error::new(refused()).context("applying the schema failed");
        let plain = report(error.as_ref(), None);
        assert!(!plain.contains("backtrace"), "{plain}");
        let with = report(error.as_ref(), Some(&"frame 0: main"));
        assert!(with.ends_with("\nframe 0: main\n"), "{with}");
    }
}
