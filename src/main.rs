use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = goldgate::cli::Cli::parse();
    match goldgate::main(cli) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(err) => {
            // `goldgate … | head` closing the pipe is not a failure.
            let broken_pipe = err.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {}", goldgate::error::message(&err));
            ExitCode::from(goldgate::error::exit_for(&err).code())
        }
    }
}
